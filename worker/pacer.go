package worker

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Adaptive limit, in the spirit of Vector's adaptive request concurrency but on the rate:
// additive increase while Graph accepts, multiplicative decrease when it throttles. The
// configured rate (HWSTATE_RATE) is the ceiling, never passed; the tenant's real limit,
// which depends on other apps and replicas, is found from below it.
const (
	// rateCut is what a 429 leaves of the rate. A gentle cut keeps the sawtooth between 90%
	// and 100% of the tenant's limit, so the average stays near 95% of it.
	rateCut = 0.9
	// saturated is how many 429s, and at least as many as successes, since the last cut show
	// a worker sending far above the tenant's limit: then the cut goes down to the rate
	// Graph accepted, but to no less than deepestCut, which finds a limit ten times lower in
	// two cuts. Otherwise what was accepted says little (the worker may have had little to
	// send, or too little CPU to send it), and the cut is rateCut.
	saturated  = 10
	deepestCut = 0.25
	// cutWindow is how often the rate may be cut at most: the 429s of requests already in
	// flight when the first came in say nothing new, so a burst of them is one cut.
	cutWindow = 200 * time.Millisecond
	// rateStep is what each accepted create adds to the rate (per second). Added per
	// success, the climb is 5% per second of the current rate whatever its scale: from a
	// cut to the limit in 2 s, a cycle of some 200 creates at 100/s for each 429, and a
	// cut too deep (a stall that looked like saturation) made good in seconds.
	rateStep = 0.05
	// rateFloor keeps a worker that was throttled hard from stopping altogether.
	rateFloor = 0.1
)

// pacer decides when the next Graph create may go: the adaptive rate limit, and a pause of
// every sender after Graph answers 429, because a throttled tenant counts each further request
// against the same quota and retrying at once only makes it worse.
type pacer struct {
	limiter *rate.Limiter
	metrics *Metrics

	mu          sync.Mutex
	pausedUntil time.Time
	ceiling     float64 // the configured rate
	current     float64 // the limiter's rate, kept here as a float to add small steps to
	lastCut     time.Time
	accepts     int // creates Graph accepted since lastCut
	throttles   int // and those it throttled
}

func newPacer(perSecond float64, burst int, m *Metrics) *pacer {
	return &pacer{
		limiter: rate.NewLimiter(rate.Limit(perSecond), burst),
		metrics: m,
		ceiling: perSecond,
		current: perSecond,
		lastCut: time.Now(),
	}
}

// wait blocks until a create may be sent, taking one token of the rate limit.
func (p *pacer) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		d := time.Until(p.pausedUntil)
		p.mu.Unlock()
		if d <= 0 {
			break
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	return p.limiter.Wait(ctx)
}

// throttled answers a 429: every sender waits d from now (unless a longer pause is already
// on), and the rate is cut, at most once per cutWindow: by rateCut, or down to the rate
// Graph accepted since the last cut when it throttled most of what was sent.
func (p *pacer) throttled(d time.Duration) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if until := now.Add(d); until.After(p.pausedUntil) {
		p.pausedUntil = until
	}
	// Tokens saved up before the 429 would all go the moment the pause ends, a burst into a
	// tenant that has just said it is full.
	if tokens := int(p.limiter.TokensAt(now)); tokens > 0 {
		p.limiter.AllowN(now, tokens)
	}
	p.throttles++
	since := now.Sub(p.lastCut)
	if since < cutWindow {
		return
	}
	next := p.current * rateCut
	if p.throttles >= max(p.accepts, saturated) {
		next = min(next, max(float64(p.accepts)/since.Seconds(), p.current*deepestCut))
	}
	p.lastCut, p.accepts, p.throttles = now, 0, 0
	p.setLocked(max(next, rateFloor))
}

// accepted answers a create Graph took (created or rejected): the rate climbs back towards
// the configured one.
func (p *pacer) accepted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.accepts++
	if p.current < p.ceiling {
		p.setLocked(min(p.current+rateStep, p.ceiling))
	}
}

func (p *pacer) setLocked(perSecond float64) {
	p.current = perSecond
	p.limiter.SetLimit(rate.Limit(perSecond))
	p.metrics.setRateLimit(perSecond)
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
