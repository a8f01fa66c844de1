package sandbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// The stack comes up on loopback, takes events, counts and reads them back in order, and a
// worker on it creates them in the emulator, each once.
func TestSandboxEndToEnd(t *testing.T) {
	sb, err := sandbox.New(sandbox.WithEmulator(emulator.Config{}))
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if n, err := sandbox.Count(ctx, sb.JS, sandbox.Outputs...); err != nil || n != 0 {
		t.Fatalf("outputs before any stream: %d, %v; want 0 and no error", n, err)
	}
	if _, err := sandbox.CreateInputStream(ctx, sb.JS, time.Hour); err != nil {
		t.Fatal(err)
	}
	ids := []string{"a", "b", "c"}
	if err := sandbox.PublishAll(ctx, sb.JS, ids, func(i int) []byte { return sandbox.Event(sandbox.ConfigOK, i) }, 0); err != nil {
		t.Fatal(err)
	}
	var read []string
	err = sandbox.Each(ctx, sb.JS, worker.DefaultStream, func(m jetstream.Msg) error {
		read = append(read, m.Headers().Get(jetstream.MsgIDHeader))
		return nil
	})
	if err != nil || fmt.Sprint(read) != fmt.Sprint(ids) {
		t.Fatalf("read %v, %v; want %v", read, err, ids)
	}

	w, err := sb.StartWorker(ctx, sb.Client(5*time.Second), worker.Config{Rate: 1000, Burst: 10})
	if err != nil {
		t.Fatal(err)
	}
	for {
		n, err := sandbox.Count(ctx, sb.JS, sandbox.Outputs...)
		if err != nil {
			t.Fatal(err)
		}
		if n == uint64(len(ids)) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d of %d outcomes", n, len(ids))
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := w.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	o, err := sandbox.ReadOutcomes(ctx, sb.JS)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if len(o.Results[id]) != 1 {
			t.Errorf("%s: %d results, want 1", id, len(o.Results[id]))
		}
	}
	if len(o.DeadLetters) != 0 || len(o.WrongIDs) != 0 || sb.Emulator.Stats().Creates != 3 {
		t.Errorf("dead letters %v, wrong ids %v, emulator %+v", o.DeadLetters, o.WrongIDs, sb.Emulator.Stats())
	}
}
