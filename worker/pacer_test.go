package worker

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// cut makes p see a 429 after a second in which Graph accepted accepted creates and
// throttled none.
func cut(p *pacer, accepted int) { cutThrottled(p, accepted, 0) }

// cutThrottled makes p see a 429 after a second in which Graph accepted accepted creates
// and throttled throttled more.
func cutThrottled(p *pacer, accepted, throttled int) {
	p.lastCut, p.accepts, p.throttles = time.Now().Add(-time.Second), accepted, throttled
	p.throttled(0)
}

func TestPacerAdaptsTheRate(t *testing.T) {
	cases := []struct {
		name    string
		ceiling float64
		steps   func(p *pacer)
		want    float64
	}{
		{"starts at the configured rate", 100, func(*pacer) {}, 100},
		{"a 429 cuts the rate by rateCut at least", 100, func(p *pacer) { cut(p, 1000) }, 100 * rateCut},
		{"an idle worker's cut is rateCut", 100, func(p *pacer) { cut(p, 10) }, 100 * rateCut},
		{"a few 429s are not saturation", 100, func(p *pacer) { cutThrottled(p, 0, saturated-2) }, 100 * rateCut},
		{"more successes than 429s are not saturation", 100, func(p *pacer) { cutThrottled(p, 60, 50) }, 100 * rateCut},
		{"saturated: down to what Graph accepted", 100, func(p *pacer) { cutThrottled(p, 40, 50) }, 40},
		{"saturated: by deepestCut at most", 100, func(p *pacer) { cutThrottled(p, 10, 50) }, 100 * deepestCut},
		{"saturated, yet by rateCut at least", 100, func(p *pacer) { cutThrottled(p, 95, 100) }, 100 * rateCut},
		{"30 concurrent 429s are one cut", 100, func(p *pacer) {
			cut(p, 1000)
			for range 29 {
				p.throttled(0)
			}
		}, 100 * rateCut},
		{"429s a window apart are two cuts", 100, func(p *pacer) {
			cut(p, 1000)
			cut(p, 1000)
		}, 100 * rateCut * rateCut},
		{"none within a window of the start", 100, func(p *pacer) { p.throttled(0) }, 100},
		{"never below the floor", 0.15, func(p *pacer) { cutThrottled(p, 0, 100) }, rateFloor},
		{"successes climb additively", 100, func(p *pacer) {
			cut(p, 1000)
			for range 10 {
				p.accepted()
			}
		}, 100*rateCut + 10*rateStep},
		{"never above the configured rate", 100, func(p *pacer) {
			cut(p, 1000)
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
			// 1% of slack: the second a cut looks back on is a little longer than one.
			near := func(got float64) bool { return math.Abs(got-tt.want) <= tt.want/100 }
			if got := p.current; !near(got) {
				t.Errorf("rate %v, want %v", got, tt.want)
			}
			if got := float64(p.limiter.Limit()); !near(got) {
				t.Errorf("limiter at %v, want %v", got, tt.want)
			}
			if got := testutil.ToFloat64(m.rateLimit); !near(got) {
				t.Errorf("hwstate_rate_limit %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPacerPauseHoldsEverySenderAndDropsSavedTokens(t *testing.T) {
	p := newPacer(10, 50, nil) // a full bucket of 50, refilled slowly
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
