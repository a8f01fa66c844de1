package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
)

// TestThrottleAdaptsToTheTenantsLimit runs a worker allowed 1000 creates/s against a tenant
// that allows 100/s. The adaptive limit must find the tenant's rate: every event created,
// none dead-lettered, few requests throttled once it has settled. Only what cannot flake is
// asserted; the figures are printed (the bench measures the goal: at most 5% of requests
// throttled at 90% or more of the tenant's limit).
func TestThrottleAdaptsToTheTenantsLimit(t *testing.T) {
	const (
		tenantRate = 100
		n          = 1500 // about 15 s at the tenant's rate
		settle     = 5 * time.Second
	)
	h := newHarness(t, emulator.Config{Rate: tenantRate, Burst: 5})
	h.cfg.Rate, h.cfg.Burst = 1000, 1
	// The first worker makes the streams; the events wait for the second, whose clock starts
	// with all of them there to send.
	h.start().stop(t)
	for i := range n {
		h.publish(fmt.Sprintf("t-%d", i), event(configOK, i))
	}
	h.start()
	start := time.Now()
	time.Sleep(time.Until(start.Add(settle)))
	early := h.emu.Stats()
	settled := time.Now()
	out := h.waitOutputs(n, 60*time.Second)
	end := h.emu.Stats()
	elapsed := time.Since(settled)

	if len(out.dlq) != 0 {
		t.Errorf("%d dead letters, want none", len(out.dlq))
	}
	if len(out.results) != n || end.Creates != n || end.Duplicates != 0 {
		t.Errorf("%d results, emulator %+v: want %d creates, no duplicate", len(out.results), end, n)
	}
	requests, throttled := end.Requests-early.Requests, end.Throttled-early.Throttled
	share := float64(throttled) / float64(max(requests, 1))
	perSecond := float64(end.Creates-early.Creates) / elapsed.Seconds()
	t.Logf("first %s: %d requests, %d throttled (%.1f%%); after: %d requests, %d throttled (%.1f%%), %.1f creates/s (%.0f%% of the tenant's %d/s)",
		settle, early.Requests, early.Throttled, 100*float64(early.Throttled)/float64(max(early.Requests, 1)),
		requests, throttled, 100*share, perSecond, perSecond, tenantRate)
	if share >= 0.20 {
		t.Errorf("%.1f%% of requests throttled after the first %s, want under 20%%", 100*share, settle)
	}
}
