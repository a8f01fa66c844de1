package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/worker"
)

const testToken = "test-token"

// harness is a real JetStream server, the Graph emulator over loopback HTTP, and workers.
type harness struct {
	t      *testing.T
	nats   *natstest.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	emu    *emulator.Emulator
	client *graph.Client
	// creator, when set, is what workers send creates through instead of client (a graph.Batcher).
	creator worker.Creator
	cfg     worker.Config
}

func newHarness(t *testing.T, emuCfg emulator.Config) *harness {
	t.Helper()
	ns := natstest.Start(t)
	nc, js := natstest.Connect(t, ns.ClientURL())
	if emuCfg.Token == "" {
		emuCfg.Token = testToken
	}
	emu := emulator.New(emuCfg)
	srv := httptest.NewServer(emu)
	t.Cleanup(srv.Close)
	return &harness{
		t: t, nats: ns, nc: nc, js: js, emu: emu,
		client: &graph.Client{BaseURL: srv.URL + "/beta", Tokens: graph.StaticToken(testToken), Timeout: 5 * time.Second},
		cfg:    worker.Config{Rate: 1000, Burst: 50, Concurrency: 16, AckWait: 10 * time.Second},
	}
}

// running is a worker started by a test.
type running struct {
	w      *worker.Worker
	cancel context.CancelFunc
	done   chan error
}

// start runs a worker until the test ends or stop is called; it returns once the worker is ready.
func (h *harness) start(opts ...worker.Option) *running {
	h.t.Helper()
	opts = append([]worker.Option{
		worker.WithLogger(zaptest.NewLogger(h.t)),
		worker.WithBackoff(20*time.Millisecond, 200*time.Millisecond),
		worker.WithBreakerTimeout(200 * time.Millisecond),
	}, opts...)
	var creator worker.Creator = h.client
	if h.creator != nil {
		creator = h.creator
	}
	w := worker.New(h.js, creator, h.cfg, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	h.t.Cleanup(func() { r.stop(h.t) })
	deadline := time.Now().Add(10 * time.Second)
	for !w.Ready() {
		select {
		case err := <-r.done:
			h.t.Fatalf("worker ended before it was ready: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			h.t.Fatal("worker not ready in 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return r
}

// stop signals shutdown and waits for Run to return; it may be called more than once.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop within 30s")
	}
}

// publish sends one event with the given id (none when empty).
func (h *harness) publish(id string, body []byte) {
	h.t.Helper()
	m := nats.NewMsg(worker.DefaultSubject)
	m.Data = body
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		h.t.Fatalf("publish %s: %v", id, err)
	}
}

// outputs is everything in the result and DLQ streams, by event id.
type outputs struct {
	results map[string][]worker.Result
	dlq     map[string][]worker.DeadLetter
}

// waitOutputs waits until the result and DLQ streams hold n messages, then reads them all.
func (h *harness) waitOutputs(n int, limit time.Duration) outputs {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := h.streamMsgs(worker.DefaultResultStream) + h.streamMsgs(worker.DefaultDLQStream)
		if got >= uint64(n) {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%d of %d outcomes after %s", got, n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h.readOutputs()
}

func (h *harness) streamMsgs(name string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), name)
	if err != nil {
		return 0
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatalf("stream %s: %v", name, err)
	}
	return info.State.Msgs
}

func (h *harness) readOutputs() outputs {
	h.t.Helper()
	o := outputs{results: map[string][]worker.Result{}, dlq: map[string][]worker.DeadLetter{}}
	collect(h, worker.DefaultResultStream, func(r worker.Result) string { return r.EventID }, o.results)
	collect(h, worker.DefaultDLQStream, func(d worker.DeadLetter) string { return d.EventID }, o.dlq)
	return o
}

// collect reads every body of a stream into by, keyed by event id, checking that each carries
// its event id as its Nats-Msg-Id.
func collect[T any](h *harness, stream string, eventID func(T) string, by map[string][]T) {
	h.t.Helper()
	h.each(stream, func(m jetstream.Msg) {
		var v T
		mustUnmarshal(h.t, m.Data(), &v)
		id := eventID(v)
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != id {
			h.t.Errorf("%s: Nats-Msg-Id %q, want the event id %q", stream, got, id)
		}
		by[id] = append(by[id], v)
	})
}

func (h *harness) each(stream string, fn func(jetstream.Msg)) {
	h.t.Helper()
	n := h.streamMsgs(stream)
	if n == 0 {
		return
	}
	ctx := context.Background()
	cons, err := h.js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		h.t.Fatal(err)
	}
	for seen := uint64(0); seen < n; {
		batch, err := cons.Fetch(int(min(n-seen, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			h.t.Fatal(err)
		}
		for m := range batch.Messages() {
			fn(m)
			seen++
		}
		if err := batch.Error(); err != nil {
			h.t.Fatalf("read %s: %v", stream, err)
		}
	}
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("unmarshal %s: %v", data, err)
	}
}

// Configuration ids with a meaning at the emulator in these tests.
const (
	configOK       = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"
	configNotFound = "00000000-0000-4000-8000-000000000404"
	configReject   = "00000000-0000-4000-8000-000000000400"
)

// event is a valid event body for the configuration, distinct per i.
func event(config string, i int) []byte {
	return fmt.Appendf(nil, `{"hardwareConfigurationId":%q,"userState":{"upn":"u%d@contoso.com","userEmail":"u%d@contoso.com","userName":"User %d","lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":%d}}`,
		config, i, i, i, i%100)
}
