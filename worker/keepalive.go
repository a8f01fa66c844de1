package worker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holdings are the messages the worker holds and has not yet acked or handed back. They are
// kept alive with in-progress acks so that waiting (for the rate limit, a Retry-After, an open
// breaker, a full store) never turns into a redelivery to another worker.
type holdings struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]time.Time // when the server last heard of each
}

func (h *holdings) add(m jetstream.Msg, now time.Time) {
	h.mu.Lock()
	if h.msgs == nil {
		h.msgs = make(map[jetstream.Msg]time.Time)
	}
	h.msgs[m] = now
	h.mu.Unlock()
}

func (h *holdings) remove(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.msgs, m)
	h.mu.Unlock()
}

// keepAlive sends an in-progress ack for every message held for a third of the ack wait
// since the server last heard of it, until ctx is done. The ack wait is the consumer's as
// the server holds it, read anew each round: another replica may have shortened it.
func (h *holdings) keepAlive(ctx context.Context, ackWait func() time.Duration, now func() time.Time) {
	var due []jetstream.Msg
	for {
		every := max(ackWait()/3, 30*time.Millisecond)
		if sleep(ctx, every/2) != nil {
			return
		}
		t := now()
		due = due[:0]
		h.mu.Lock()
		for m, last := range h.msgs {
			if t.Sub(last) >= every {
				due = append(due, m)
				h.msgs[m] = t
			}
		}
		h.mu.Unlock()
		for _, m := range due {
			// An error here means the connection is gone; a redelivery that may follow is
			// answered from the ledger, or waits for this process's claim.
			_ = m.InProgress()
		}
	}
}
