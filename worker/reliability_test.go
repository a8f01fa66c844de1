package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// The NATS server stops and starts again on the same store, twice, while the worker is busy:
// the pull loop, the ledger and the publishes ride it out, every event ends exactly once,
// and no event is created twice, since the worker itself never crashed.
func TestNATSRestartMidFlow(t *testing.T) {
	h := newHarness(t, emulator.Config{Latency: 2 * time.Millisecond})
	h.start()
	const n = 3000
	ids := proctest.IDs(n)
	proctest.Publish(t, h.js, ids, func(i int) []byte { return event(configOK, i) })
	start := time.Now()
	for restart := range 2 {
		want := uint64((restart + 1) * n / 3)
		proctest.WaitFor(t, time.Minute, fmt.Sprintf("%d results", want), func() bool { return h.streamMsgs(worker.DefaultResultStream) >= want })
		at := h.streamMsgs(worker.DefaultResultStream)
		if at >= n {
			t.Fatal("all done before the restart: not mid-flow")
		}
		down := time.Now()
		h.nats.Restart(t)
		t.Logf("restart %d with %d of %d done: server back in %s", restart+1, at, n, time.Since(down).Round(time.Millisecond))
	}
	proctest.WaitCount(t, h.js, n, 2*time.Minute)
	proctest.ReadOutcomes(t, h.js).CheckExactlyOnce(t, ids)
	s := h.emu.Stats()
	if s.Creates != n || s.Duplicates != 0 {
		t.Errorf("emulator %+v, want %d creates and no duplicate", s, n)
	}
	t.Logf("%d events through 2 NATS restarts in %s: %+v", n, time.Since(start).Round(time.Millisecond), s)
}
