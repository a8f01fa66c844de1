package worker

import (
	"context"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// clock is a fake time for the pacer: it moves only when a test says so.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

// accept makes Graph accept n creates spread evenly over d.
func accept(p *pacer, c *clock, n int, d time.Duration) {
	for range n {
		c.advance(d / time.Duration(n))
		p.accepted()
	}
}

// throttle makes Graph answer 429 with a Retry-After of d, a cut window after anything before.
func throttle(p *pacer, c *clock, d time.Duration) {
	c.advance(cutWindow)
	p.throttled(d)
}

func TestPacerAdaptsTheRate(t *testing.T) {
	const s = time.Second
	// Counts that are 5/s over the horizon: 100 creates over 20 s, the first 0.3 s of them
	// out of it when the 429 comes 0.2 s later (a slot is 0.1 s).
	const fivePerSecond = 99.0 / 20
	cases := []struct {
		name      string
		ceiling   float64
		steps     func(p *pacer, c *clock)
		want      float64
		wantLevel float64 // 0: not checked
	}{
		{"starts at the configured rate", 100, func(*pacer, *clock) {}, 100, 0},
		{"a 429 cuts the rate by rateCut", 100, func(p *pacer, c *clock) {
			accept(p, c, 10, s)
			throttle(p, c, 10*time.Millisecond)
		}, 100 * rateCut, 0},
		{"a 429 keeps keepShare of what Graph accepted", 100, func(p *pacer, c *clock) {
			accept(p, c, 1900, 19*s)
			throttle(p, c, 10*time.Millisecond)
		}, keepShare * 1900 / 19.2, 1900 / 19.2},
		{"a long Retry-After cuts to what Graph accepted, however deep", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 2*s) // a sliding window's whole budget in a burst
			c.advance(18 * s)
			accept(p, c, 100, 2*s) // again, 20 s on: 100 over the horizon
			throttle(p, c, 18*s)
		}, keepShare * 100 / horizon.Seconds(), 100 / horizon.Seconds()},
		{"a first window's burst and its pause are the window's rate", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 2*s)
			throttle(p, c, 17800*time.Millisecond) // to the end of the window
		}, keepShare * 100 / horizon.Seconds(), 100 / horizon.Seconds()},
		{"30 concurrent 429s are one cut", 100, func(p *pacer, c *clock) {
			throttle(p, c, 0)
			for range 29 {
				p.throttled(0)
			}
		}, 100 * rateCut, 0},
		{"429s a window apart are two cuts", 100, func(p *pacer, c *clock) {
			throttle(p, c, 0)
			throttle(p, c, 0)
		}, 100 * rateCut * rateCut, 0},
		{"never below the floor", 0.15, func(p *pacer, c *clock) { throttle(p, c, time.Minute) }, rateFloor, 0},
		{"the climb levels off under the level, for holdCreates", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 20*s)
			throttle(p, c, 3*s)     // down to keepShare of the level, 5/s
			accept(p, c, 280, 56*s) // 4 s short of holdCreates at 5/s
		}, holdShare * fivePerSecond, fivePerSecond},
		{"then probes above it, slowly at first", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 20*s)
			throttle(p, c, 3*s)
			accept(p, c, holdCreates+65, (holdCreates+65)*s/5) // the pause, the hold, 10 s of probing
		}, holdShare * fivePerSecond * math.Exp(probeGain*10*10/2), fivePerSecond},
		{"a 429 while probing goes back under the level", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 20*s)
			throttle(p, c, 3*s)
			accept(p, c, holdCreates+65, (holdCreates+65)*s/5)
			p.current = 6 // as if the probe had gone that far
			throttle(p, c, 100*time.Millisecond)
		}, keepShare * fivePerSecond, fivePerSecond},
		{"a 429 before the hold is over is no probe's", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 20*s)
			throttle(p, c, 3*s)
			accept(p, c, 50, 10*s)
			p.current = 6 // above the level, but not probing
			throttle(p, c, 100*time.Millisecond)
		}, 6 * rateCut, 98.0 / 20},
		{"a 429 at or under the level brings it down to what Graph took", 50, func(p *pacer, c *clock) {
			accept(p, c, 100, 20*s)
			throttle(p, c, 3*s)
			accept(p, c, 40, 20*s) // 2/s, all of them over the horizon at the 429
			throttle(p, c, 100*time.Millisecond)
		}, holdShare * fivePerSecond * rateCut, 40.0 / 20},
		{"never above the configured rate", 100, func(p *pacer, c *clock) {
			throttle(p, c, 0)
			accept(p, c, 100_000, 1000*s)
		}, 100, 0},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m := NewMetrics(reg)
			m.setRateLimit(tt.ceiling)
			c := &clock{t: time.Unix(1_000_000, 0)}
			p := newPacerAt(tt.ceiling, tt.ceiling, 1, m, c.now)
			tt.steps(p, c)
			// 1% of slack: a climb approaches its level without reaching it, and the probe's
			// growth is counted per create, not continuously.
			near := func(got, want float64) bool { return math.Abs(got-want) <= want/100 }
			if got := p.current; !near(got, tt.want) {
				t.Errorf("rate %v, want %v", got, tt.want)
			}
			if got := float64(p.limiter.Limit()); !near(got, tt.want) {
				t.Errorf("limiter at %v, want %v", got, tt.want)
			}
			if got := testutil.ToFloat64(m.rateLimit); !near(got, tt.want) {
				t.Errorf("hwstate_rate_limit %v, want %v", got, tt.want)
			}
			if tt.wantLevel != 0 && !near(p.level, tt.wantLevel) {
				t.Errorf("level %v, want %v", p.level, tt.wantLevel)
			}
		})
	}
}

// TestPacerPauseHoldsTokensReservedBefore: a sender already queued for a token when a 429
// comes does not send at its token's time, inside the pause, but after the pause.
func TestPacerPauseHoldsTokensReservedBefore(t *testing.T) {
	p := newPacer(1, 1, nil) // a token a second
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	sent := make(chan time.Time, 1)
	go func() {
		_ = p.wait(context.Background()) // queues for the token due in a second
		sent <- time.Now()
	}()
	// The sender has its token reserved once the limiter owes one: TokensAt a time before
	// its last update is the count the reservation left.
	for p.limiter.TokensAt(time.Time{}) >= 0 {
		select {
		case <-sent:
			t.Fatal("sent at once: the test needs the sender queued for a token")
		default:
			runtime.Gosched()
		}
	}
	const pause = 1500 * time.Millisecond // past the reserved token's time
	paused := time.Now()
	p.throttled(pause)
	if at := <-sent; at.Sub(paused) < pause {
		t.Errorf("sent %s into a pause of %s", at.Sub(paused), pause)
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

// sendTo makes the worker send at the pacer's rate for d, to a tenant that takes up to limit
// a second: Graph accepts min(rate, limit) a second.
func sendTo(p *pacer, c *clock, limit float64, d time.Duration) {
	for end := c.t.Add(d); c.t.Before(end); {
		c.advance(time.Duration(float64(time.Second) / min(p.current, limit)))
		p.accepted()
	}
}

// A pacer that knows nothing of its tenant starts at startRate and grows by e^slowStartGain
// a second while it sends at its rate and Graph accepts, up to the ceiling; the first 429
// ends the slow start at what Graph took. One that learned a level before starts just
// under it.
func TestPacerStarts(t *testing.T) {
	const s = time.Second
	const unlimited = 1e9
	cases := []struct {
		name      string
		learned   float64
		steps     func(p *pacer, c *clock)
		low, high float64 // the rate after the steps
		wantLevel float64
	}{
		{"slow start begins at startRate", 0, func(*pacer, *clock) {}, startRate, startRate, 0},
		// e^slowStartGain a second, less what the growth by steps of one create loses.
		{"and grows while Graph accepts", 0, func(p *pacer, c *clock) {
			sendTo(p, c, unlimited, s)
		}, 10 * startRate, startRate * math.Exp(slowStartGain), 0},
		{"up to the ceiling", 0, func(p *pacer, c *clock) {
			sendTo(p, c, unlimited, 4*s)
		}, 1000, 1000, 0},
		{"not while the worker has little to send", 0, func(p *pacer, c *clock) {
			accept(p, c, 20, 10*s) // 2/s: four times that at most, counted over half a second
		}, startRate, 4 * 2.5, 0},
		{"the first 429 ends it just under the rate that drew it", 0, func(p *pacer, c *clock) {
			for p.current <= 100 { // a tenant that takes 100/s answers 429 once sent more
				sendTo(p, c, unlimited, 10*time.Millisecond)
			}
			p.throttled(10 * time.Millisecond)
			sendTo(p, c, 100, 2*s) // the climb under the level, within the hold
		}, holdShare * rateCut * 100, holdShare * rateCut * 110, rateCut * 105},
		{"a 429 before Graph took anything: just under the rate that drew it", 0, func(p *pacer, c *clock) {
			p.throttled(10 * time.Millisecond)
		}, keepShare * rateCut * startRate, keepShare * rateCut * startRate, rateCut * startRate},
		{"a learned level: just under it, holding", 40, func(p *pacer, c *clock) {
			sendTo(p, c, unlimited, 5*s) // within the hold
		}, holdShare * 40, holdShare * 40, 40},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1e9, 0)}
			p := newPacerAt(startRate, 1000, 1, nil, c.now)
			p.learn(tt.learned)
			tt.steps(p, c)
			if got := p.current; got < tt.low*0.999 || got > tt.high*1.001 {
				t.Errorf("rate %.3f, want %.3f to %.3f", got, tt.low, tt.high)
			}
			if got := p.learned(); math.Abs(got-tt.wantLevel) > tt.wantLevel*0.06+1e-9 {
				t.Errorf("level %.3f, want %.3f", got, tt.wantLevel)
			}
		})
	}
}

// A pacer's share of its tenant (share.go): the rate, the level and what Graph took scale
// with it; a level a peer learned comes in at this pacer's share of it; and with peers, a
// 429 under the level lowers it by keepShare at most.
func TestPacerShares(t *testing.T) {
	const s = time.Second
	const unlimited = 1e9
	cases := []struct {
		name            string
		steps           func(p *pacer, c *clock)
		rate, wantLevel float64
	}{
		{"a half share halves the rate and the level", func(p *pacer, c *clock) {
			p.setShare(0.5)
		}, holdShare * 20, 20},
		{"a replica gone gives its part back", func(p *pacer, c *clock) {
			p.setShare(1.0 / 3)
			p.setShare(0.5)
		}, holdShare * 20, 20},
		{"and what Graph took with them", func(p *pacer, c *clock) {
			accept(p, c, 100, 10*s) // 10/s
			p.setShare(0.5)
			p.mu.Lock()
			defer p.mu.Unlock()
			if got := p.acceptedRateLocked(c.now(), 0); !near(got, 5) {
				t.Errorf("Graph took %v/s at half the share, want 5", got)
			}
		}, holdShare * 20, 20},
		{"a peer's lower level: under it at once", func(p *pacer, c *clock) {
			p.setShare(0.5)
			p.adopt(30)
		}, holdShare * 15, 15},
		{"a peer's higher level: the rate climbs to it", func(p *pacer, c *clock) {
			p.setShare(0.5)
			p.adopt(60)
			sendTo(p, c, unlimited, 10*s) // within the hold: up to it, not above
		}, holdShare * 30, 30},
		{"with peers, a 429 under the level after the hold lowers it by keepShare at most", func(p *pacer, c *clock) {
			p.setShare(0.5)
			accept(p, c, 50, 5*s)            // 10/s, half the level
			p.holdFrom = c.t.Add(-time.Hour) // as if the hold were long over
			throttle(p, c, 10*time.Millisecond)
		}, rateCut * holdShare * 20, keepShare * 20},
		{"within the hold, to what Graph took", func(p *pacer, c *clock) {
			p.setShare(0.5)
			accept(p, c, 50, 5*s)
			throttle(p, c, 10*time.Millisecond)
		}, rateCut * holdShare * 20, 50 / 5.2},
		{"alone, to what Graph took", func(p *pacer, c *clock) {
			accept(p, c, 50, 5*s)
			throttle(p, c, 10*time.Millisecond)
		}, rateCut * holdShare * 40, 50 / 5.2}, // 50 over 5 s, and a cut window before the 429
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			c := &clock{t: time.Unix(1e9, 0)}
			p := newPacerAt(startRate, 1000, 1, nil, c.now)
			p.learn(40)
			tt.steps(p, c)
			if got := p.current; !near(got, tt.rate) {
				t.Errorf("rate %.3f, want %.3f", got, tt.rate)
			}
			if got := p.learned(); !near(got, tt.wantLevel) {
				t.Errorf("level %.3f, want %.3f", got, tt.wantLevel)
			}
		})
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= want/100 }

// Slow start's bound (four times what Graph took lately) stops the growth and never cuts
// the rate: the first answers of a worker that waited for work are a fraction of the rate
// that sent them, and a cut to four times that set a worker fed at its configured rate
// behind for good.
func TestPacerSlowStartIsNeverCut(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	p := newPacerAt(40, 400, 1, nil, c.now)
	c.advance(time.Second) // idle until the first event, and Graph's first answer
	p.accepted()
	if p.current < 40 {
		t.Errorf("rate %.1f after the first answer, want at least the 40 slow start began at", p.current)
	}
	sendTo(p, c, 1e9, time.Second)
	if p.current < 400 {
		t.Errorf("rate %.1f a second on, want the configured 400", p.current)
	}
}

// What Graph took is counted from the pacer's first send, not over the time it waited for
// work: a worker's first answers are the rate it sends at, and slow start grows from them.
func TestPacerCountsFromTheFirstSend(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	p := newPacerAt(40, 400, 1, nil, c.now)
	c.advance(10 * time.Second) // no work yet
	if err := p.wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	accept(p, c, 4, 100*time.Millisecond) // 40/s, as sent
	if p.current <= 40 {
		t.Errorf("rate %.1f after Graph took 40/s from the first send, want slow start growing", p.current)
	}
}
