package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/worker"
)

// TestThrottleLowersTheRateInForce runs a worker allowed 1000 creates/s against a tenant
// that allows 100/s. Graph's 429s bring the rate in force below the configured one, and
// every event is still created once, none dead-lettered. By how much the rate drops is the
// pacer's unit tests' (pacer_test.go, on a fake clock); how close it comes to the tenant's
// budget and how many requests are throttled on the way are figures of `hwstate bench`
// (scenarios tenant and tenant-bucket).
func TestThrottleLowersTheRateInForce(t *testing.T) {
	const configured, n = 1000, 300
	h := newHarness(t, emulator.Config{Rate: 100, Burst: 5})
	h.cfg.Rate, h.cfg.Burst = configured, 1
	h.cfg.MaxAttempts = 1000 // an event unlucky enough to meet ten 429s is not what this tests
	reg := prometheus.NewRegistry()
	h.start(worker.WithMetrics(worker.NewMetrics(reg)))
	for i := range n {
		h.publish(fmt.Sprintf("t-%d", i), event(configOK, i))
	}
	out := h.waitOutputs(n, 60*time.Second)

	if len(out.dlq) != 0 {
		t.Errorf("%d dead letters, want none", len(out.dlq))
	}
	s := h.emu.Stats()
	if len(out.results) != n || s.Creates != n || s.Duplicates != 0 {
		t.Errorf("%d results, emulator %+v: want %d creates, no duplicate", len(out.results), s, n)
	}
	if s.Throttled == 0 {
		t.Fatalf("emulator %+v: no 429, the test proves nothing", s)
	}
	if got := rateLimit(t, reg); got >= configured {
		t.Errorf("hwstate_rate_limit %v after %d 429s, want below the configured %v", got, s.Throttled, float64(configured))
	}
}

// A restarted worker starts at the level its predecessor learned from Graph's 429s, kept in
// the ledger bucket, not slow-starting from Intune's published 5/s.
func TestRestartedWorkerStartsAtTheLearnedLevel(t *testing.T) {
	h := newHarness(t, emulator.Config{Rate: 100, Burst: 5})
	h.cfg.Rate, h.cfg.Burst, h.cfg.MaxAttempts = 1000, 1, 1000
	r := h.start()
	for i := range 300 {
		h.publish(fmt.Sprintf("t-%d", i), event(configOK, i))
	}
	h.waitOutputs(300, 60*time.Second)
	if h.emu.Stats().Throttled == 0 {
		t.Fatal("no 429: nothing learned, the test proves nothing")
	}
	r.stop(t)

	kv, err := h.js.KeyValue(context.Background(), worker.DefaultLedgerBucket)
	if err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(context.Background(), "pacer.level")
	if err != nil {
		t.Fatalf("the learned level is not in the ledger bucket: %v", err)
	}
	var kept struct{ Level float64 }
	if err := json.Unmarshal(e.Value(), &kept); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	h.start(worker.WithMetrics(worker.NewMetrics(reg)))
	// Just under the level kept (99% of it), not slow start's 5/s.
	if got := rateLimit(t, reg); kept.Level <= 5 || got < 0.98*kept.Level || got > kept.Level {
		t.Errorf("hwstate_rate_limit %v at start, want just under the learned level %v", got, kept.Level)
	}
}

// rateLimit is the worker's rate in force, as its metrics say.
func rateLimit(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "hwstate_rate_limit" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no hwstate_rate_limit")
	return 0
}
