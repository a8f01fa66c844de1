package worker

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Adaptive limit: the configured rate (HWSTATE_RATE) is the ceiling, never passed; the
// tenant's real limit, which depends on other apps and replicas, is found below it and then
// held, in the spirit of TCP CUBIC: a 429 remembers the level Graph is known to take, the
// rate climbs back to just under it fast, holds there, and only then probes above, slowly at
// first. A plain AIMD sawtooth does not do for a tenant's sliding window: its first 429s come
// after a whole window's budget went in a burst, so they say nothing of the rate to hold, and
// a climb per accepted create is slow exactly when the rate is low.
const (
	// slot is the resolution of the count over the horizon: the count is low by at most a
	// slot's worth of the horizon (0.5%), not a second's (5%).
	slot = 100 * time.Millisecond
	// horizon is how far back what Graph accepted is counted: Intune's window is 20 s, and
	// whatever the tenant's shape, what it took over a whole window it can take again.
	horizon = 20 * time.Second
	// keepShare of what Graph accepted over the horizon is the least a cut leaves: no 429 is
	// a reason to send less than the tenant has just been taking. Below 1 because a rate
	// exactly at a sliding window's limit races the requests of a window ago.
	keepShare = 0.98
	// rateCut is what a 429 leaves of the rate, when that is more than keepShare of the
	// accepted rate: near the limit, a gentle cut.
	rateCut = 0.9
	// longPause is a Retry-After that says the tenant's budget is spent for a while, not
	// just grazed: the rate sent was far above what it takes (a window's budget sent in a
	// burst). The rate then goes straight down to what Graph accepted over the horizon, and
	// the pause, not a long series of cuts, absorbs the excess.
	longPause = 2 * time.Second
	// cutWindow is how often the rate may be cut at most: the 429s of requests already in
	// flight when the first came in say nothing new, so a burst of them is one cut.
	cutWindow = 200 * time.Millisecond
	// holdShare of the remembered level is where the climb after a cut levels off: close
	// enough to use nearly all of the budget, under it by more than a sliding window's race.
	holdShare = 0.99
	// climbTime is the time constant of the climb back to holdShare of the remembered
	// level: per second, the same share of the distance whatever the scale of the rate.
	climbTime = 2 * time.Second
	// holdCreates is how many creates' worth of time (at the remembered level) the rate stays
	// under that level after a cut and its pause before probing above it. A probe of a
	// sliding window costs about three 429s (the window has to be overfilled before it says
	// no, and the excess takes a window to leave it), so at most about 1% of requests go to
	// probing, at 5/s (60 s) as at 100/s (3 s). Counted from the pause's end: time paused is
	// no evidence the level is safe.
	holdCreates = 300
	// maxHold bounds that wait when the level is low or unknown (a 429 before anything was
	// accepted): three of Intune's windows.
	maxHold = 60 * time.Second
	// probeGain is how the probe above the remembered level speeds up: its growth per second
	// is probeGain x the seconds it has lasted (1% a second after 5 s, 10% after 50 s), slow
	// near the level that drew the last 429, fast when the tenant's limit has risen far.
	probeGain = 0.002
	// maxStep bounds the time one climb step counts: a pause or an idle worker is no climb.
	maxStep = time.Second
	// rateFloor keeps a worker that was throttled hard from stopping altogether.
	rateFloor = 0.1
	// startRate is where a worker that has learned nothing of its tenant begins at least:
	// Intune's published write limit per app per tenant (100 per 20 s). Starting at the
	// configured rate instead finds the tenant's limit by being throttled, hard.
	startRate = 5.0
	// startShare: slow start begins at a tenth of the configured rate when that is above
	// startRate. The configured rate is the operator's bound on what the tenant takes; a
	// tenth of it keeps a worker set to ten times its tenant's limit at the limit, while one
	// set near the limit (and fed at it) is at it within half a second instead of falling
	// behind for good.
	startShare = 10
	// slowStartGain is how fast the rate grows from startRate until the first 429, TCP's
	// slow start applied to a rate: each create Graph takes adds slowStartGain per second to
	// the rate, which so grows by e^slowStartGain per second of sending at it (twenty-fold):
	// a worker set far above its tenant's limit finds it within a second or two, and
	// overshoots it by what a fraction of a second's growth adds.
	slowStartGain = 5.0
)

// pacer decides when the next Graph create may go: the adaptive rate limit, and a pause of
// every sender after Graph answers 429, because a throttled tenant counts each further request
// against the same quota and retrying at once only makes it worse.
type pacer struct {
	limiter *rate.Limiter
	metrics *Metrics
	now     func() time.Time // time.Now; a fake clock in tests
	turn    chan struct{}    // held by the one sender waiting on the limiter
	// onLevel, when set, is told each level a 429 teaches (the tenant's: this pacer's level
	// over its share), so that it outlives the process and reaches the other replicas. It is
	// called with the pacer locked: it must not block.
	onLevel func(level float64)

	mu          sync.Mutex
	pausedUntil time.Time
	ceiling     float64 // the configured rate
	current     float64 // the limiter's rate, kept here as a float to add small steps to
	level       float64 // what Graph is known to take from this pacer, remembered at the last cut (0: none yet)
	// share is this pacer's part of what the tenant takes (1/N with N replicas alive, share.go):
	// the rates above, the level and the counts below are all this pacer's part.
	share float64
	// started is when the pacer began sending: its first token (its making, until then).
	// The counts of what Graph took are over the time since, not over time spent waiting
	// for work, which would make a worker that just began look as if Graph took little.
	started   time.Time
	sending   bool // a token was taken: started is the first one's time
	lastCut   time.Time
	holdFrom  time.Time // the end of the pause that came with the last cut: the hold starts there
	lastClimb time.Time
	// accepts counts the creates Graph accepted per slot of the horizon, a ring indexed by
	// slot since the Unix epoch.
	accepts [horizon / slot]struct {
		slot int64
		n    float64 // scaled with the share, as the rest: a count at this pacer's part of the tenant
	}
}

func newPacer(perSecond float64, burst int, m *Metrics) *pacer {
	return newPacerAt(perSecond, perSecond, burst, m, time.Now)
}

// newPacerAt is a pacer whose rate starts at start (at most the ceiling, perSecond) and
// grows from there until the first 429 (slow start).
func newPacerAt(start, perSecond float64, burst int, m *Metrics, now func() time.Time) *pacer {
	start = min(start, perSecond)
	t := now()
	return &pacer{
		limiter:   rate.NewLimiter(rate.Limit(start), burst),
		turn:      make(chan struct{}, 1),
		metrics:   m,
		now:       now,
		started:   t,
		lastClimb: t,
		ceiling:   perSecond,
		current:   start,
		share:     1,
	}
}

// learn starts the pacer at a tenant's level learned before (by this worker before a
// restart, or by another replica of it), its share of it: just under that, holding there
// before probing above, as after a cut, instead of slow-starting towards it.
func (p *pacer) learn(level float64) {
	if level <= 0 {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.level = p.share * level
	p.holdFrom, p.lastClimb = now, now
	p.setLocked(min(max(holdShare*p.level, rateFloor), p.ceiling))
}

// adopt takes the tenant's level another replica learned from a 429 while this one runs:
// its share of it is this pacer's level; a rate above it comes down under it at once, one
// below climbs to it, and either holds there before probing, as after a cut of its own.
// A replica's 429 says the tenant is full for every replica.
func (p *pacer) adopt(level float64) {
	if level <= 0 {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.level = p.share * level
	p.holdFrom, p.lastClimb = later(p.holdFrom, now), now
	p.setLocked(max(min(p.current, holdShare*p.level), rateFloor))
}

// setShare makes share the pacer's part of the tenant: the rate, the level and what Graph
// took scale with it, so that N replicas together keep to what one alone had learned, and a
// replica gone gives its part back to the others.
func (p *pacer) setShare(share float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if share <= 0 || share == p.share {
		return
	}
	k := share / p.share
	p.share = share
	p.level *= k
	for i := range p.accepts {
		p.accepts[i].n *= k
	}
	p.setLocked(min(max(p.current*k, rateFloor), p.ceiling))
}

// later is the later of two times.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// showRate puts the rate in force in the metrics: where slow start or a learned level begins.
func (p *pacer) showRate() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.metrics.setRateLimit(p.current)
}

func (p *pacer) setOnLevel(f func(float64)) {
	p.mu.Lock()
	p.onLevel = f
	p.mu.Unlock()
}

// inForce is the rate in force, per second.
func (p *pacer) inForce() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

// learned is the level the pacer holds to: what Graph is known to take (0: nothing known).
func (p *pacer) learned() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level
}

// wait blocks until a create may be sent, taking one token of the rate limit.
func (p *pacer) wait(ctx context.Context) error {
	for {
		p.mu.Lock()
		d := p.pausedUntil.Sub(p.now())
		p.mu.Unlock()
		if d > 0 {
			if err := sleep(ctx, d); err != nil {
				return err
			}
			continue
		}
		// One sender at a time waits on the limiter: a token is reserved at the rate in force
		// when its turn comes. Many reserving at once would queue their tokens far ahead at
		// the rate of that moment, which a rate growing (slow start) or cut since no longer
		// is.
		select {
		case p.turn <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		err := p.limiter.Wait(ctx)
		<-p.turn
		if err != nil {
			return err
		}
		p.mu.Lock()
		if !p.sending {
			p.sending, p.started = true, p.now()
		}
		p.mu.Unlock()
		// A token reserved before a 429 must not send into the pause, nor all at once when
		// it ends (a whole concurrency's worth, each drawing its own 429): after a pause
		// that began meanwhile, queue for a token again.
		p.mu.Lock()
		paused := p.pausedUntil.After(p.now())
		p.mu.Unlock()
		if !paused {
			return nil
		}
	}
}

// throttled answers a 429: every sender waits d from now (unless a longer pause is already
// on), and the rate is cut, at most once per cutWindow, never below keepShare of what
// Graph accepted over the horizon.
func (p *pacer) throttled(d time.Duration) {
	now := p.now()
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
	if !p.lastCut.IsZero() && now.Sub(p.lastCut) < cutWindow {
		return
	}
	taken := p.acceptedRateLocked(now, 0)
	if now.Sub(p.started) < time.Second {
		// The count over the horizon is spread over at least a second, which a pacer this
		// young has not been sending for: what Graph took over the last moments says more.
		// (A replica that took its peers' level on joining and drew a 429 at once learned a
		// tenth of the tenant's, and every replica held there for a minute.)
		taken = max(taken, p.recentRateLocked(now))
	}
	next := max(p.current*rateCut, keepShare*taken)
	if p.level == 0 && p.current < p.ceiling {
		// The end of slow start: the rate grew while Graph took it, and the last moments say
		// what it takes better than the horizon, which holds the climb from startRate.
		// Measured over the last moments, what Graph took lags a rate growing twenty-fold a
		// second by half, so the rate that drew the 429 says more: it was just over the
		// limit, by what grew while the answer came back.
		taken = max(taken, p.recentRateLocked(now), rateCut*p.current)
		next = keepShare * taken
	}
	if d >= longPause {
		// What was accepted is all Graph will take until the pause ends: young, over the
		// time to then (a first window's burst then a pause to its end is the window's
		// rate, not the burst's).
		taken = p.acceptedRateLocked(now, d)
		next = keepShare * taken
	}
	// The level to come back to. A 429 while probing above it (after the hold) says the level was right (or
	// low, if Graph took more): straight back under it, not a fraction of the probe's rate,
	// which a sliding window already filled would keep answering 429. Otherwise (the first
	// 429, or one at or under the level: the limit has dropped, or was never known) the
	// level is what Graph took.
	switch {
	case p.level > 0 && p.current > p.level && now.Sub(p.holdFrom) > p.holdForLocked():
		p.level = max(taken, p.level)
		next = min(next, keepShare*p.level)
	case p.level > 0 && now.Sub(p.holdFrom) > p.holdForLocked():
		// A 429 at or under the level once the hold is over is most often a probe filling
		// the tenant (a peer replica's), or the jitter of requests sent at the tenant's own
		// rate against a bucket of burst 1, not the limit dropping; and every replica takes
		// the level this one writes: a step down of keepShare at most, so that it does not
		// cost what the count over the horizon lags (cuts and climbs in it: a tenth of the
		// level). At a thousand tenants of 5/s each, 429s went from 0.77% to 0.44% at the
		// same budget. Within the hold no
		// replica probes (each holds after the last cut, its own or a peer's), so a 429 then
		// says the level is too high, and it comes down to what Graph took, as for one
		// replica alone (slow start's end overshoots more with several growing at once).
		// A limit that did drop is found over several 429s, while the rate in force comes
		// down by rateCut at each.
		p.level = max(taken, keepShare*p.level, rateFloor)
	default:
		p.level = max(taken, rateFloor)
	}
	p.lastCut, p.lastClimb, p.holdFrom = now, now, p.pausedUntil
	p.setLocked(min(max(next, rateFloor), p.ceiling))
	if p.onLevel != nil {
		p.onLevel(p.level / p.share)
	}
}

// accepted answers a create Graph took (created or rejected): it counts towards the horizon,
// and the rate climbs: back to just under the remembered level, then, after holdTime without
// a 429, above it.
func (p *pacer) accepted() {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	i := now.UnixNano() / int64(slot)
	b := &p.accepts[i%int64(len(p.accepts))]
	if b.slot != i {
		b.slot, b.n = i, 0
	}
	b.n++
	if p.current >= p.ceiling {
		return
	}
	step := min(now.Sub(p.lastClimb), maxStep).Seconds()
	p.lastClimb = now
	if p.level == 0 { // never throttled: slow start
		// Each create Graph took adds slowStartGain/s, so the rate grows by e^slowStartGain
		// a second while the worker sends at it; never past four times what Graph took
		// lately, so that a worker with little to send does not grow a rate it has never
		// tried and then send it all at once. That bound stops the growth, never cuts the
		// rate: the first answers, counted over half a second, are a fraction of the rate
		// that sent them, and cutting to four times that set a worker started at 40/s back
		// to 8/s, a lag a worker fed at its configured rate never made up.
		p.setLocked(min(p.current+slowStartGain, max(4*p.recentRateLocked(now), p.current), p.ceiling))
		return
	}
	next := p.current
	if probing := now.Sub(p.holdFrom) - p.holdForLocked(); probing > 0 {
		next *= 1 + probeGain*probing.Seconds()*step
	} else if hold := holdShare * p.level; next < hold {
		next += (hold - next) * min(step/climbTime.Seconds(), 1)
	}
	p.setLocked(min(next, p.ceiling))
}

// holdForLocked is how long the rate holds under the level after a cut's pause.
func (p *pacer) holdForLocked() time.Duration {
	return min(time.Duration(holdCreates/p.level*float64(time.Second)), maxHold)
}

// acceptedRateLocked is what Graph accepted over the horizon, per second: over the time
// since the start and ahead more, when that is shorter (but at least a second). Low by up to
// a slot's worth, never high, which is the side a floor may err on (a sliding window takes
// no more than its limit).
func (p *pacer) acceptedRateLocked(now time.Time, ahead time.Duration) float64 {
	i, n := now.UnixNano()/int64(slot), 0.0
	for _, b := range p.accepts {
		if b.slot > i-int64(len(p.accepts)) && b.slot <= i {
			n += b.n
		}
	}
	return n / min(max(now.Sub(p.started)+ahead, time.Second), horizon).Seconds()
}

// recentSlots is how far back recentRateLocked counts: half a second, short enough to
// follow a rate that grows twenty-fold a second.
const recentSlots = 5

// recentRateLocked is what Graph accepted over the last recentSlots, per second.
func (p *pacer) recentRateLocked(now time.Time) float64 {
	i, n := now.UnixNano()/int64(slot), 0.0
	for _, b := range p.accepts {
		if b.slot > i-recentSlots && b.slot <= i {
			n += b.n
		}
	}
	from := time.Unix(0, (i-recentSlots+1)*int64(slot))
	if from.Before(p.started) {
		from = p.started
	}
	return n / max(now.Sub(from), slot).Seconds()
}

func (p *pacer) setLocked(perSecond float64) {
	p.current = perSecond
	p.limiter.SetLimitAt(p.now(), rate.Limit(perSecond))
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
