package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/schema"
	"github.com/hwstate/hwstate/worker"
)

// Exactly once against Graph (CONTRACT.md section 3): an event created in Graph whose answer
// was lost is looked up before it is created again, and found.

// Each create-then-fail fault at 3%, with and without $filter support: no duplicate, and the
// events whose answer was lost are recorded as created, reconciled.
func TestAmbiguousFaultsCreateNothingTwice(t *testing.T) {
	for _, fault := range []string{emulator.Fault500, emulator.Fault504, emulator.FaultHang, emulator.FaultDrop} {
		for _, refuse := range []int{0, 400} {
			t.Run(fmt.Sprintf("%s/refuseFilter=%d", fault, refuse), func(t *testing.T) {
				h := newHarness(t, emulator.Config{AmbiguousRate: 0.03, AmbiguousFaults: []string{fault}, RefuseFilter: refuse, Seed: 7})
				h.client.Timeout = 500 * time.Millisecond // a hung create is given up soon
				h.start()
				all := h.publishEvents("ev", 300)
				out := h.waitOutputs(len(all), 60*time.Second)
				h.checkExactlyOnce(all, out)
				s := h.emu.Stats()
				reconciled := 0
				for _, rs := range out.results {
					for _, r := range rs {
						if r.Reconciled {
							reconciled++
						}
					}
				}
				t.Logf("%d ambiguous faults, %d results reconciled, %d lists", s.Ambiguous, reconciled, s.Lists)
				if s.Ambiguous == 0 || reconciled != int(s.Ambiguous) {
					t.Errorf("%d ambiguous faults, %d reconciled results: want one per fault", s.Ambiguous, reconciled)
				}
				if len(out.dlq) != 0 {
					t.Errorf("dead letters: %v", out.dlq)
				}
			})
		}
	}
}

// A redelivered event whose first delivery created it (the process died before recording it)
// is found in Graph and recorded as created, with no create sent.
func TestRedeliveredEventIsFoundInGraph(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	ctx := context.Background()
	s, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject}})
	if err != nil {
		t.Fatal(err)
	}
	h.publish("ev", event(configOK, 1))

	// The first delivery: a process that creates the event and dies before recording it.
	cons, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: worker.DefaultConsumer, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1)
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if _, err := h.client.Create(ctx, graph.Request{ConfigurationID: configOK, ClientRequestID: graph.ClientRequestID("ev"), Body: userStateBody(t, 1)}); err != nil {
			t.Fatal(err)
		}
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}

	h.start()
	out := h.waitOutputs(1, 20*time.Second)
	rs := out.results["ev"]
	if len(rs) != 1 || !rs[0].Reconciled || rs[0].Attempts != 0 || rs[0].GraphID == "" {
		t.Fatalf("results %+v, want one reconciled with 0 attempts", rs)
	}
	if st := h.emu.Stats(); st.Creates != 1 || st.Lists == 0 {
		t.Errorf("emulator %+v: want the one create of the first delivery and a lookup", st)
	}
}

// A Graph the worker cannot look events up in still gets an event whose create ended
// ambiguously created again: at least once, as before reconciliation.
func TestUnlistableGraphStillCreates(t *testing.T) {
	h := newHarness(t, emulator.Config{AmbiguousRate: 1, AmbiguousFaults: []string{emulator.Fault500}, Seed: 1})
	h.creator = createOnly{h.client}
	r := h.start()
	h.publish("ev", event(configOK, 1))
	proctest.WaitFor(t, 20*time.Second, "a second create", func() bool { return h.emu.Stats().Creates >= 2 })
	r.stop(t)
}

// createOnly hides the client's ListUserStates: a Graph the worker cannot look events up in.
type createOnly struct{ c *graph.Client }

func (c createOnly) Create(ctx context.Context, req graph.Request) (graph.Response, error) {
	return c.c.Create(ctx, req)
}

// userStateBody is the create body of event(configOK, i).
func userStateBody(t *testing.T, i int) []byte {
	t.Helper()
	ev, err := schema.Decode(event(configOK, i))
	if err != nil {
		t.Fatal(err)
	}
	return ev.UserState.AppendGraphBody(nil)
}
