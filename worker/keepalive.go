package worker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// holdings are the messages the worker holds and has not yet acked or handed back. They are
// kept alive with in-progress acks so that waiting (for the rate limit, a Retry-After, an open
// breaker) never turns into a redelivery to another worker.
type holdings struct {
	mu   sync.Mutex
	msgs map[jetstream.Msg]struct{}
}

func (h *holdings) add(m jetstream.Msg) {
	h.mu.Lock()
	if h.msgs == nil {
		h.msgs = make(map[jetstream.Msg]struct{})
	}
	h.msgs[m] = struct{}{}
	h.mu.Unlock()
}

func (h *holdings) remove(m jetstream.Msg) {
	h.mu.Lock()
	delete(h.msgs, m)
	h.mu.Unlock()
}

// keepAlive sends an in-progress ack for every held message each interval until ctx is done.
func (h *holdings) keepAlive(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var batch []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		h.mu.Lock()
		batch = batch[:0]
		for m := range h.msgs {
			batch = append(batch, m)
		}
		h.mu.Unlock()
		for _, m := range batch {
			// An error here means the connection is gone; the redelivery that may follow is
			// answered from the ledger.
			_ = m.InProgress()
		}
	}
}
