package worker

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// pacer decides when the next Graph create may go: the configured rate, and a pause of every
// sender after Graph answers 429, because a throttled tenant counts each further request
// against the same quota and retrying at once only makes it worse.
type pacer struct {
	limiter *rate.Limiter

	mu          sync.Mutex
	pausedUntil time.Time
}

func newPacer(perSecond float64, burst int) *pacer {
	return &pacer{limiter: rate.NewLimiter(rate.Limit(perSecond), burst)}
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

// pause holds every sender back for d from now, unless a longer pause is already on.
func (p *pacer) pause(d time.Duration) {
	until := time.Now().Add(d)
	p.mu.Lock()
	if until.After(p.pausedUntil) {
		p.pausedUntil = until
	}
	p.mu.Unlock()
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
