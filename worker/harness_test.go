package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const testToken = sandbox.DefaultToken

// harness is the sandbox on a test server (which a test may restart), and workers.
type harness struct {
	t      *testing.T
	sb     *proctest.Sandbox
	nats   *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	emu    *emulator.Emulator
	client *graph.Client
	// creator, when set, is what workers send creates through instead of client (a graph.Batcher).
	creator worker.Creator
	cfg     worker.Config
}

func newHarness(t *testing.T, emuCfg emulator.Config, natsOpts ...natstest.Option) *harness {
	t.Helper()
	ns := natstest.Start(t, natsOpts...)
	sb := proctest.NewSandbox(t, emuCfg, sandbox.WithNATS(ns.ClientURL()))
	return &harness{
		t: t, sb: sb, nats: ns, nc: sb.Conn, js: sb.JS, emu: sb.Emulator, // The client's token is the emulator's only when the test leaves the emulator's at its
		// default: a test of sign-in gives the emulator another.
		client: &graph.Client{BaseURL: sb.GraphURL, Tokens: graph.StaticToken(testToken), Timeout: 5 * time.Second},
		cfg:    worker.Config{Rate: 1000, Burst: 50, Concurrency: 16, AckWait: 10 * time.Second},
	}
}

// breakerTimeout is how long the breaker of the harness's workers stays open before a probe.
const breakerTimeout = 200 * time.Millisecond

// observedLogger is a logger that writes to the test's log and to logs, for a test to count
// what the worker said.
func (h *harness) observedLogger() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zap.DebugLevel)
	return zap.New(zapcore.NewTee(zaptest.NewLogger(h.t).Core(), core)), logs
}

// breakerOpens counts how often the worker's breaker opened: once when it tripped, once more
// for each probe that failed.
func breakerOpens(logs *observer.ObservedLogs) int {
	n := 0
	for _, e := range logs.FilterMessage("graph circuit breaker").All() {
		if e.ContextMap()["to"] == "open" {
			n++
		}
	}
	return n
}

// running is a worker started by a test.
type running struct{ *sandbox.Running }

// start runs a worker until the test ends or stop is called; it returns once the worker is ready.
func (h *harness) start(opts ...worker.Option) *running {
	h.t.Helper()
	opts = append([]worker.Option{
		worker.WithLogger(zaptest.NewLogger(h.t)),
		worker.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		worker.WithBreakerTimeout(breakerTimeout),
	}, opts...)
	var creator worker.Creator = h.client
	if h.creator != nil {
		creator = h.creator
	}
	w, err := h.sb.StartWorker(context.Background(), creator, h.cfg, opts...)
	if err != nil {
		h.t.Fatal(err)
	}
	r := &running{w}
	h.t.Cleanup(func() { r.stop(h.t) })
	return r
}

// stop signals shutdown and waits for Run to return; it may be called more than once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Stop(ctx); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// publish sends one event with the given id (none when empty).
func (h *harness) publish(id string, body []byte) {
	h.t.Helper()
	h.publishSubject(worker.DefaultSubject, id, body)
}

func (h *harness) publishSubject(subject, id string, body []byte) {
	h.t.Helper()
	if err := sandbox.Publish(context.Background(), h.js, subject, id, body); err != nil {
		h.t.Fatalf("publish %s to %s: %v", id, subject, err)
	}
}

// publishEvents publishes n valid events with the ids prefix-0 ... and returns the ids.
func (h *harness) publishEvents(prefix string, n int) []string {
	h.t.Helper()
	all := ids(prefix, n)
	for i, id := range all {
		h.publish(id, event(configOK, i))
	}
	return all
}

// outputs is everything in the result and DLQ streams, by event id.
type outputs struct {
	results map[string][]worker.Result
	dlq     map[string][]worker.DeadLetter
}

// waitOutputs waits until the result and DLQ streams hold n messages, then reads them all.
func (h *harness) waitOutputs(n int, limit time.Duration) outputs {
	h.t.Helper()
	proctest.WaitCount(h.t, h.js, n, limit)
	return h.readOutputs()
}

func (h *harness) streamMsgs(name string) uint64 {
	h.t.Helper()
	return proctest.StreamMsgs(h.t, h.js, name)
}

func (h *harness) readOutputs() outputs {
	h.t.Helper()
	o := proctest.ReadOutcomes(h.t, h.js)
	return outputs{results: o.Results, dlq: o.DeadLetters}
}

// Configuration ids with a meaning at the emulator in these tests.
const (
	configOK       = sandbox.ConfigOK
	configNotFound = "00000000-0000-4000-8000-000000000404"
	configReject   = "00000000-0000-4000-8000-000000000400"
	configFail     = "00000000-0000-4000-8000-000000000500"
)

// event is a valid event body for the configuration, distinct per i.
func event(config string, i int) []byte { return sandbox.Event(config, i) }

// checkCreatedOnce fails the test unless the event id, published as event(configOK, i), has
// one complete result of a create on the first attempt, and Graph holds it once.
func (h *harness) checkCreatedOnce(out outputs, id string, i int) {
	h.t.Helper()
	rs := out.results[id]
	if len(rs) != 1 {
		h.t.Fatalf("%s: %d results, want 1", id, len(rs))
	}
	r := rs[0]
	if r.HardwareConfigurationID != configOK || r.Status != 201 || r.Attempts != 1 ||
		r.ClientRequestID != graph.ClientRequestID(id) || r.GraphRequestID == "" || r.CompletedAt.IsZero() {
		h.t.Errorf("%s: incomplete result %+v", id, r)
	}
	if _, err := uuid.Parse(r.GraphID); err != nil {
		h.t.Errorf("%s: graphId %q: %v", id, r.GraphID, err)
	}
	var created map[string]any
	if err := json.Unmarshal(r.Created, &created); err != nil || created["id"] != r.GraphID || created["upn"] != fmt.Sprintf("u%d@contoso.com", i) {
		h.t.Errorf("%s: created %s (%v)", id, r.Created, err)
	}
	if c := h.emu.CreatesFor(r.ClientRequestID); c != 1 {
		h.t.Errorf("%s: %d creates at the emulator", id, c)
	}
}
