package worker_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// The faults of the NATS side and the limits of CONTRACT.md section 3: each test names the
// fault and asserts the invariant, every event exactly once in results or the DLQ, read back
// from the streams, and no duplicate create at the emulator.

// checkExactlyOnce asserts each id has exactly one outcome and Graph saw no duplicate.
func (h *harness) checkExactlyOnce(ids []string, out outputs) {
	h.t.Helper()
	for _, id := range ids {
		if got := len(out.results[id]) + len(out.dlq[id]); got != 1 {
			h.t.Errorf("%s: %d results and %d dead letters, want one outcome", id, len(out.results[id]), len(out.dlq[id]))
		}
	}
	if s := h.emu.Stats(); s.Duplicates != 0 {
		h.t.Errorf("emulator saw %d duplicate creates: %+v", s.Duplicates, s)
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// A full JetStream store: no outcome can be recorded, so no create is sent, readiness says
// 503, and every held event is completed once space returns.
func TestFullStoreHoldsEventsUntilSpaceReturns(t *testing.T) {
	const store = 4 << 20
	h := newHarness(t, emulator.Config{}, natstest.WithServerOptions(func(o *server.Options) { o.JetStreamMaxStore = store }))
	h.cfg.Rate, h.cfg.Burst = 200, 10
	r := h.start()
	first := h.publishEvents("a", 50)
	h.waitOutputs(len(first), 30*time.Second)

	// Fill what is left of the store with a stream of filler.
	ctx := context.Background()
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: "FILLER", Subjects: []string{"filler"}}); err != nil {
		t.Fatal(err)
	}
	// The second events wait at a Graph that is down while the store fills, so that they
	// are not all done before it is full: their outcomes come once Graph is back.
	cfg := h.emu.Config()
	cfg.Outage = true
	h.emu.SetConfig(cfg)
	second := ids("b", 50)
	for i, id := range second {
		h.publish(id, event(configOK, 1000+i))
	}
	filler := make([]byte, 32<<10)
	for {
		if _, err := h.js.Publish(ctx, "filler", filler); err != nil {
			break
		}
	}
	cfg.Outage = false
	h.emu.SetConfig(cfg)
	proctest.WaitFor(t, 20*time.Second, "readiness to fail once the store filled", func() bool { return !r.Ready() })
	if err := h.js.DeleteStream(ctx, "FILLER"); err != nil {
		t.Fatal(err)
	}
	out := h.waitOutputs(len(first)+len(second), 60*time.Second)
	h.checkExactlyOnce(append(first, second...), out)
	proctest.WaitFor(t, 30*time.Second, "readiness once space returned", r.Ready)
}

// Ids over 256 bytes and bodies near a lowered max payload: every event still gets an
// outcome whose output fits, the long ids in their sha256- form.
func TestHugeIDsAndBodiesGetAnOutcome(t *testing.T) {
	const maxPayload = 16 << 10
	h := newHarness(t, emulator.Config{}, natstest.WithServerOptions(func(o *server.Options) { o.MaxPayload = maxPayload }))
	h.start()
	huge := strings.Repeat("x", 8<<10)
	// nearMax is an invalid event (an unknown property) of n bytes.
	nearMax := func(n int) []byte {
		head := `{"hardwareConfigurationId":"` + configOK + `","pad":"`
		return []byte(head + strings.Repeat("p", n-len(head)-2) + `"}`)
	}
	h.publish(huge, event(configOK, 1))
	h.publish(huge+"2", nearMax(maxPayload-(8<<10)-512))
	h.publish("long-body", nearMax(maxPayload-512))
	h.publish(strings.Repeat("y", 256), event(configOK, 2)) // at the limit: valid
	out := h.waitOutputs(4, 30*time.Second)
	for _, id := range []string{sha256ID(huge), sha256ID(huge + "2"), "long-body"} {
		d := out.dlq[id]
		if len(d) != 1 || d[0].Reason != worker.InvalidEvent {
			t.Errorf("%.40s: dead letters %+v, want one invalid_event", id, d)
		}
	}
	if len(out.results[strings.Repeat("y", 256)]) != 1 {
		t.Errorf("an id of 256 bytes is valid: results %v", out.results)
	}
}

// A consumer deleted while the worker runs is made again, and the events go on.
func TestDeletedConsumerIsMadeAgain(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	h.cfg.Rate, h.cfg.Burst = 100, 5
	r := h.start()
	all := ids("ev", 200)
	for i, id := range all[:100] {
		h.publish(id, event(configOK, i))
	}
	ctx := context.Background()
	s, err := h.js.Stream(ctx, worker.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsumer(ctx, worker.DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	for i, id := range all[100:] {
		h.publish(id, event(configOK, 100+i))
	}
	out := h.waitOutputs(len(all), 60*time.Second)
	h.checkExactlyOnce(all, out)
	if !r.Ready() {
		t.Error("not ready after the consumer was made again")
	}
}

// Two replicas with different ack waits (a rolling config change): the one with the long
// setting keeps its messages alive at the server's shorter ack wait, and nothing is created twice.
func TestReplicasWithDifferentAckWaitsCreateOnce(t *testing.T) {
	h := newHarness(t, emulator.Config{Latency: 300 * time.Millisecond})
	h.cfg.Rate, h.cfg.Burst, h.cfg.Concurrency = 20, 1, 4
	h.cfg.AckWait = time.Minute
	h.start()
	h.cfg.AckWait = time.Second
	h.start()
	all := h.publishEvents("ev", 60)
	out := h.waitOutputs(len(all), 60*time.Second)
	h.checkExactlyOnce(all, out)
}

// A Retry-After of a day is cut to MaxRetryAfter.
func TestDayLongRetryAfterIsCut(t *testing.T) {
	h := newHarness(t, emulator.Config{ThrottleFirst: 1, RetryAfter: 24 * time.Hour})
	h.cfg.MaxRetryAfter = 200 * time.Millisecond
	h.start()
	h.publish("ev", event(configOK, 1))
	out := h.waitOutputs(1, 20*time.Second)
	if rs := out.results["ev"]; len(rs) != 1 || rs[0].Attempts != 2 {
		t.Errorf("results %+v, want one after 2 attempts", rs)
	}
}

// Shutdown while creates hang: the worker exits within the grace, hands the events back,
// and a new worker completes them without a duplicate.
func TestShutdownWithHangingCreatesEndsWithinTheGrace(t *testing.T) {
	h := newHarness(t, emulator.Config{Latency: time.Hour})
	h.cfg.ShutdownGrace = 500 * time.Millisecond
	r := h.start()
	all := h.publishEvents("ev", 5)
	proctest.WaitFor(t, 10*time.Second, "creates in flight", func() bool { return h.emu.Stats().Requests >= uint64(len(all)) })
	start := time.Now()
	r.stop(t)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %s with a grace of 500ms", d)
	}
	h.emu.SetConfig(emulator.Config{Token: testToken})
	h.start()
	out := h.waitOutputs(len(all), 60*time.Second)
	h.checkExactlyOnce(all, out)
}

// An input stream deleted and made again within the dedup window: a new event with a
// fallback id gets its own outcome, not dropped as a duplicate of the old event's.
func TestFallbackIDsSurviveARecreatedStream(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	r := h.start()
	h.publish("", event(configOK, 1))
	h.waitOutputs(1, 20*time.Second)
	r.stop(t)
	if err := h.js.DeleteStream(context.Background(), worker.DefaultStream); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.publish("", event(configOK, 2))
	out := h.waitOutputs(2, 20*time.Second)
	id := worker.DefaultStream + "-1"
	if rs := out.results[id]; len(rs) != 2 || rs[0].GraphID == rs[1].GraphID {
		t.Fatalf("results for %s: %+v, want one per stream incarnation", id, rs)
	}
}

// A result whose created entity would not fit the server's max payload keeps only its id.
func TestResultFitsTheMaxPayload(t *testing.T) {
	const maxPayload = 7 << 10
	h := newHarness(t, emulator.Config{}, natstest.WithServerOptions(func(o *server.Options) { o.MaxPayload = maxPayload }))
	h.start()
	long := strings.Repeat("n", 1000)
	body := fmt.Sprintf(`{"hardwareConfigurationId":%q,"userState":{"upn":"%s@contoso.com","userEmail":"%s@contoso.com","userName":%q,"lastStateUpdateDateTime":"2017-01-01T00:02:58Z","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":2}}`,
		configOK, long[:900], long[:900], long)
	h.publish("big", []byte(body))
	out := h.waitOutputs(1, 20*time.Second)
	rs := out.results["big"]
	if len(rs) != 1 || !rs[0].CreatedTruncated || string(rs[0].Created) != fmt.Sprintf(`{"id":%q}`, rs[0].GraphID) {
		t.Fatalf("results %+v, want created cut to its id", rs)
	}
}

// sha256ID is the form an id over 256 bytes takes in outputs.
func sha256ID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:])
}
