package worker

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPacerAdaptsTheRate(t *testing.T) {
	cases := []struct {
		name    string
		ceiling float64
		steps   func(p *pacer)
		want    float64
	}{
		{"starts at the configured rate", 100, func(*pacer) {}, 100},
		{"a 429 cuts the rate", 100, func(p *pacer) { p.throttled(0) }, 100 * rateCut},
		{"30 concurrent 429s are one cut", 100, func(p *pacer) {
			for range 30 {
				p.throttled(0)
			}
		}, 100 * rateCut},
		{"429s a window apart are two cuts", 100, func(p *pacer) {
			p.throttled(0)
			p.lastCut = p.lastCut.Add(-cutWindow)
			p.throttled(0)
		}, 100 * rateCut * rateCut},
		{"never below the floor", 0.11, func(p *pacer) { p.throttled(0) }, rateFloor},
		{"successes climb additively", 100, func(p *pacer) {
			p.throttled(0)
			for range 10 {
				p.accepted()
			}
		}, 100*rateCut + 10*rateStep},
		{"never above the configured rate", 100, func(p *pacer) {
			p.throttled(0)
			for range 10000 {
				p.accepted()
			}
		}, 100},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			m.setRateLimit(tt.ceiling)
			p := newPacer(tt.ceiling, 1, m)
			tt.steps(p)
			if got := p.rate(); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("rate %v, want %v", got, tt.want)
			}
			if got := float64(p.limiter.Limit()); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("limiter at %v, want %v", got, tt.want)
			}
			if got := testutil.ToFloat64(m.rateLimit); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("hwstate_rate_limit %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPacerPauseHoldsEverySenderAndDropsSavedTokens(t *testing.T) {
	p := newPacer(100, 50, nil) // a full bucket of 50
	const pause = 150 * time.Millisecond
	start := time.Now()
	p.throttled(pause)
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < pause {
		t.Errorf("sent after %s, within the pause of %s", waited, pause)
	}
	// The saved burst is gone: what is in the bucket now was earned during the pause, at
	// most pause x rate, not the 50 saved up before the 429.
	if tokens := p.limiter.Tokens(); tokens >= 50 {
		t.Errorf("%.0f tokens after the pause: the burst saved before the 429 survived", tokens)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p.throttled(time.Hour)
	cancel()
	if err := p.wait(ctx); err == nil {
		t.Error("wait returned nil for a cancelled context during a pause")
	}
}
