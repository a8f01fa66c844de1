package worker

import (
	"context"
	"sync"
)

// claims lets one delivery of an event at a time be handled in this process. JetStream can
// deliver an event again while the first delivery is still being handled: after a server
// restart it forgets the in-progress acks that kept the first alive. Both would find the
// ledger empty and create twice; the second waits instead, then finds the first's record.
type claims struct {
	mu   sync.Mutex
	busy map[string]chan struct{} // closed when the event's handler is done
}

// claim waits until no other delivery of the event is being handled and claims it; release
// ends the claim. It fails only when ctx is done first.
func (c *claims) claim(ctx context.Context, eventID string) (release func(), err error) {
	for {
		c.mu.Lock()
		done, busy := c.busy[eventID]
		if !busy {
			if c.busy == nil {
				c.busy = make(map[string]chan struct{})
			}
			done = make(chan struct{})
			c.busy[eventID] = done
			c.mu.Unlock()
			return func() {
				c.mu.Lock()
				delete(c.busy, eventID)
				c.mu.Unlock()
				close(done)
			}, nil
		}
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
