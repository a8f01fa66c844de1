package main_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// hwstate is the binary the process tests run, built on first use.
var hwstate *proctest.Binary

func TestMain(m *testing.M) { proctest.Main(m, &hwstate) }

const testToken = "process-test-token"

// rig is JetStream (one server or a cluster), the Graph emulator, and the environment that
// points `hwstate run` at them.
type rig struct {
	t     *testing.T
	js    jetstream.JetStream
	sb    *proctest.Sandbox
	graph *emulator.Emulator
	env   []string
}

func newRig(t *testing.T, servers []*natstest.Server, emu emulator.Config) *rig {
	t.Helper()
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
	}
	url := strings.Join(urls, ",")
	if emu.Token == "" {
		emu.Token = testToken
	}
	sb := proctest.NewSandbox(t, emu, sandbox.WithNATS(url, servers[0].ClientOptions()...))
	return &rig{t: t, js: sb.JS, sb: sb, graph: sb.Emulator, env: []string{
		"HWSTATE_NATS_URL=" + url,
		"HWSTATE_GRAPH_BASE_URL=" + sb.GraphURL,
		"HWSTATE_GRAPH_TOKEN=" + testToken,
		"HWSTATE_HTTP_ADDR=127.0.0.1:0",
		"HWSTATE_RATE=2000",
		"HWSTATE_BURST=50",
		"HWSTATE_ACK_WAIT=5s",
		// Short, so that the claims a killed process held expire soon (twice this plus 5 s).
		"HWSTATE_GRAPH_TIMEOUT=2s",
		"HWSTATE_LOG_LEVEL=info",
	}}
}

// start runs `hwstate run` with the rig's environment and extra variables (which win) and
// returns once the worker is bound to its consumer.
func (r *rig) start(extra ...string) *proctest.Process {
	r.t.Helper()
	p := proctest.Start(r.t, hwstate.Path(r.t), append(slices.Clone(r.env), extra...), "run")
	p.WaitOutput(r.t, `"msg":"worker started"`, 60*time.Second)
	return p
}

// newServerRig is a rig on a JetStream server of its own.
func newServerRig(t *testing.T, emu emulator.Config) *rig {
	t.Helper()
	return newRig(t, []*natstest.Server{natstest.Start(t)}, emu)
}

// startWithEvents starts `hwstate run` with extra variables, as start does, and publishes n
// valid events to it; it returns the process and the events' ids.
func (r *rig) startWithEvents(n int, extra ...string) (*proctest.Process, []string) {
	r.t.Helper()
	p := r.start(extra...)
	return p, r.publish(n)
}

// publish publishes n valid events ev-0 ... and returns their ids.
func (r *rig) publish(n int) []string {
	r.t.Helper()
	ids := proctest.IDs(n)
	proctest.Publish(r.t, r.js, ids, func(i int) []byte { return sandbox.Event(sandbox.ConfigOK, i) })
	return ids
}

// waitDone waits for one outcome per id and checks each event has exactly one.
func (r *rig) waitDone(ids []string, limit time.Duration) proctest.Outcomes {
	r.t.Helper()
	proctest.WaitCount(r.t, r.js, len(ids), limit)
	out := proctest.ReadOutcomes(r.t, r.js)
	out.CheckExactlyOnce(r.t, ids)
	return out
}

// waitMidFlow waits until at least done outcomes are recorded and fails unless some are still
// to come, so that what the test does next happens mid-flow.
func (r *rig) waitMidFlow(done, of int) int {
	r.t.Helper()
	proctest.WaitCount(r.t, r.js, done, 60*time.Second)
	got := proctest.Count(r.t, r.js)
	if got >= of {
		r.t.Fatalf("all %d events done before the test could act: not mid-flow", of)
	}
	return got
}

// checkCreates fails unless every event was created in Graph exactly once: a crash between
// Graph's 201 and the ledger write is reconciled on the next delivery, never created again.
func (r *rig) checkCreates(ids []string) {
	r.t.Helper()
	r.sb.Settle(r.t)
	for _, id := range ids {
		if c := r.graph.CreatesFor(graph.ClientRequestID(id)); c != 1 {
			r.t.Errorf("%s: created %d times in Graph", id, c)
		}
	}
	if s := r.graph.Stats(); s.Duplicates != 0 {
		r.t.Errorf("emulator counts %d duplicate creates", s.Duplicates)
	}
}

// reconciled counts the results recorded from a lookup in Graph instead of a create.
func reconciled(out proctest.Outcomes) int {
	n := 0
	for _, rs := range out.Results {
		for _, res := range rs {
			if res.Reconciled {
				n++
			}
		}
	}
	return n
}

// A worker SIGKILLed three times mid-flow at 500 events/s and restarted each time loses
// nothing and doubles nothing: the events a kill left created in Graph but unrecorded are
// found in Graph on their next delivery (reconciled), not created again.
func TestProcessSIGKILL(t *testing.T) {
	proctest.SkipShort(t)
	// Latency keeps creates in flight, so a kill may land between Graph's 201 and the ledger
	// write, or (between creates) not.
	r := newServerRig(t, emulator.Config{Latency: 2 * time.Millisecond})
	const n = 3000
	p, ids := r.startWithEvents(n, "HWSTATE_RATE=500")
	start := time.Now()
	for kill := range 3 {
		at := r.waitMidFlow((kill+1)*n/5+rand.IntN(n/10), n)
		p.Kill()
		t.Logf("kill %d: at least %d of %d done", kill+1, at, n)
		p = r.start("HWSTATE_RATE=500")
	}
	out := r.waitDone(ids, 2*time.Minute)
	r.checkCreates(ids)
	s := r.graph.Stats()
	t.Logf("%d events through 3 SIGKILLs in %s: %d creates, %d duplicates, %d reconciled results, %d lists, %d requests",
		n, time.Since(start).Round(time.Millisecond), s.Creates, s.Duplicates, reconciled(out), s.Lists, s.Requests)
}

// SIGTERM mid-flow: the process finishes what it sent, hands back the rest and exits 0
// within the ack wait; a new process does the rest, every event exactly once, no duplicate.
func TestProcessSIGTERM(t *testing.T) {
	proctest.SkipShort(t)
	r := newServerRig(t, emulator.Config{Latency: 5 * time.Millisecond})
	const n, ackWait = 2000, 10 * time.Second
	p, ids := r.startWithEvents(n, "HWSTATE_ACK_WAIT="+ackWait.String())
	r.waitMidFlow(n/4, n)
	sent := time.Now()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := p.Wait(ackWait)
	if err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit code %d, %v; want 0 within the ack wait (%s)", code, err, ackWait)
	}
	took := time.Since(sent)
	mid := proctest.Count(t, r.js)
	if mid >= n {
		t.Fatalf("all %d done by the time it exited: not mid-flow", n)
	}
	r.start("HWSTATE_ACK_WAIT=" + ackWait.String())
	r.waitDone(ids, 2*time.Minute)
	r.checkCreates(ids)
	t.Logf("SIGTERM: exited 0 in %s with %d of %d done; the rest after a restart, no duplicate (%+v)",
		took.Round(time.Millisecond), mid, n, r.graph.Stats())
}

// Three processes share one durable consumer; one is SIGKILLed mid-flow and the other two
// take over its messages after the ack wait.
func TestProcessReplicas(t *testing.T) {
	proctest.SkipShort(t)
	r := newServerRig(t, emulator.Config{Latency: 2 * time.Millisecond})
	const n = 3000
	procs := []*proctest.Process{r.start(), r.start(), r.start()}
	ids := r.publish(n)
	at := r.waitMidFlow(n/3, n)
	procs[0].Kill()
	start := time.Now()
	out := r.waitDone(ids, 2*time.Minute)
	r.checkCreates(ids)
	t.Logf("3 replicas, one killed with at least %d of %d done: the rest in %s, %d reconciled, %+v",
		at, n, time.Since(start).Round(time.Millisecond), reconciled(out), r.graph.Stats())
}

// The worker's breaker as `hwstate run` sets it up (the default of worker.WithBreakerTimeout,
// which run has no setting for).
const (
	breakerTimeout = 10 * time.Second
	// breakerOpened is the line the worker logs each time the breaker opens.
	breakerOpened = `"msg":"graph circuit breaker","from":`
)

// Graph down mid-flow with HWSTATE_MAX_ATTEMPTS=3, until the breaker has opened and a probe
// has failed: the breaker holds the events, nothing is dead-lettered, no more requests reach
// Graph than the breaker lets through, and all are created once it is back.
func TestProcessGraphOutage(t *testing.T) {
	proctest.SkipShort(t)
	// Most of it is waiting for the breaker's timeout: it runs beside the other tests that
	// mostly wait.
	t.Parallel()
	r := newServerRig(t, emulator.Config{Latency: 2 * time.Millisecond})
	const n = 1500
	p, ids := r.startWithEvents(n, "HWSTATE_MAX_ATTEMPTS=3")
	r.waitMidFlow(n/5, n)
	// The breaker opens when the failures trip it, and again when its probe fails.
	tripped, probeFailed := breakerOpened+`"closed","to":"open"`, breakerOpened+`"half-open","to":"open"`
	trips, probes := strings.Count(p.Output(), tripped), strings.Count(p.Output(), probeFailed)
	cfg := r.graph.Config()
	cfg.Outage = true
	r.graph.SetConfig(cfg)
	before, down := r.graph.Stats(), time.Now()
	p.WaitOutputCount(t, tripped, trips+1, time.Minute)
	atTrip := r.graph.Stats()
	p.WaitOutputCount(t, probeFailed, probes+1, time.Minute)
	during, elapsed := r.graph.Stats(), time.Since(down)
	cfg.Outage = false
	r.graph.SetConfig(cfg)
	out := r.waitDone(ids, 2*time.Minute)
	if len(out.DeadLetters) != 0 {
		t.Errorf("%d dead letters for an outage", len(out.DeadLetters))
	}
	r.checkCreates(ids)
	// Once the breaker has opened, what reaches Graph is what was in flight then, and one
	// probe per breaker timeout at the most. (How many failures it takes to trip it depends
	// on how the last successes interleave with the first failures.)
	bound := uint64(worker.DefaultConcurrency + int(elapsed/breakerTimeout) + 1)
	got := during.Requests - atTrip.Requests
	if got > bound {
		t.Errorf("%d requests reached Graph after the breaker opened in a %s outage, more than the %d it lets through", got, elapsed.Round(time.Millisecond), bound)
	}
	t.Logf("Graph down for %s: %d requests reached it, %d before the breaker opened and %d after (at most %d)",
		elapsed.Round(time.Millisecond), during.Requests-before.Requests, atTrip.Requests-before.Requests, got, bound)
}

// The NATS server stops and starts again on the same store mid-flow: the process reconnects
// (it retries for ever) and carries on, every event exactly once, no duplicate create.
func TestProcessNATSRestart(t *testing.T) {
	proctest.SkipShort(t)
	ns := natstest.Start(t)
	r := newRig(t, []*natstest.Server{ns}, emulator.Config{Latency: 2 * time.Millisecond})
	const n = 2000
	p, ids := r.startWithEvents(n)
	at := r.waitMidFlow(n/3, n)
	down := time.Now()
	ns.Restart(t)
	back := time.Since(down)
	r.waitDone(ids, 2*time.Minute)
	r.checkCreates(ids)
	if p.Exited() {
		t.Error("the worker exited when NATS restarted")
	}
	t.Logf("NATS restarted (back in %s) with at least %d of %d done; the rest in %s, %+v",
		back.Round(time.Millisecond), at, n, (time.Since(down) - back).Round(time.Millisecond), r.graph.Stats())
}

// checkReplicated checks the input, result and DLQ streams, the ledger bucket's stream and
// the durable consumer each have want replicas.
func (r *rig) checkReplicated(ctx context.Context, want int) {
	r.t.Helper()
	for _, name := range []string{worker.DefaultStream, worker.DefaultResultStream, worker.DefaultDLQStream, "KV_" + worker.DefaultLedgerBucket} {
		s, err := r.js.Stream(ctx, name)
		if err != nil {
			r.t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			r.t.Fatalf("stream %s info %+v: %v", name, info, err)
		}
		if got := len(info.Cluster.Replicas) + 1; got != want || info.Config.Replicas != want {
			r.t.Errorf("stream %s: %d replicas (configured %d), want %d", name, got, info.Config.Replicas, want)
		}
	}
	cons, err := r.js.Consumer(ctx, worker.DefaultStream, worker.DefaultConsumer)
	if err != nil {
		r.t.Fatal(err)
	}
	if info := cons.CachedInfo(); info.Cluster == nil || len(info.Cluster.Replicas)+1 != want {
		r.t.Errorf("consumer: cluster %+v, want %d replicas", info.Cluster, want)
	}
}

// A three-node cluster with R3 streams, consumer and ledger; the node leading the input
// stream is stopped mid-flow. The worker knows all three URLs and carries on.
func TestProcessClusterNodeDown(t *testing.T) {
	proctest.SkipShort(t)
	nodes := natstest.Cluster(t)
	r := newRig(t, nodes, emulator.Config{})
	const n = 2000
	_, ids := r.startWithEvents(n, "HWSTATE_REPLICAS=3")
	at := r.waitMidFlow(n/4, n)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := r.js.Stream(ctx, worker.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil || info.Cluster == nil {
		t.Fatalf("stream info %+v: %v", info, err)
	}
	r.checkReplicated(ctx, 3)
	var leader *natstest.Server
	for _, s := range nodes {
		if s.Name() == info.Cluster.Leader {
			leader = s
		}
	}
	if leader == nil {
		t.Fatalf("no node named %q", info.Cluster.Leader)
	}
	leader.Stop()
	start := time.Now()
	r.waitDone(ids, 2*time.Minute)
	r.checkCreates(ids)
	t.Logf("cluster: stream leader %s stopped with at least %d of %d done; the rest in %s, %+v",
		info.Cluster.Leader, at, n, time.Since(start).Round(time.Millisecond), r.graph.Stats())
}
