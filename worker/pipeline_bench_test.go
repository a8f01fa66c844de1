package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// BenchmarkPipeline takes b.N events from JetStream to their results through a zero-latency
// emulator with no rate limit: the worker's own cost per event, ledger and results on. The
// JetStream server and the emulator run in the same process, so the profile
// (-cpuprofile) shows all three; `hwstate bench` measures the worker alone.
func BenchmarkPipeline(b *testing.B) {
	sb := proctest.NewSandbox(b, emulator.Config{})
	ctx := context.Background()
	if _, err := sandbox.CreateInputStream(ctx, sb.JS, 0); err != nil {
		b.Fatal(err)
	}
	proctest.Publish(b, sb.JS, proctest.IDs(b.N), func(i int) []byte { return event(configOK, i) })

	b.ReportAllocs()
	b.ResetTimer()
	w, err := sb.StartWorker(ctx, sb.Client(0), worker.Config{Rate: 1e6, Burst: 1000, Concurrency: 64})
	if err != nil {
		b.Fatal(err)
	}
	proctest.WaitFor(b, 10*time.Minute, "every event's result", func() bool {
		n, err := sandbox.Count(ctx, sb.JS, worker.DefaultResultStream)
		if err != nil {
			b.Fatal(err)
		}
		return n >= uint64(b.N)
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	if err := w.Stop(ctx); err != nil {
		b.Fatal(err)
	}
}
