package worker

import (
	"context"
	"math"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// A lane holds its messages in a queue, not a goroutine each: a few goroutines (handlers)
// take them in turn. A held message waiting for its turn costs its bytes, not a stack: a
// worker with a thousand messages held, or a thousand tenants with a backlog each, would
// otherwise keep a goroutine per message (and its Graph body, built before it waits for the
// rate limit), which is most of its memory and much of its garbage collection.
//
// A handler is "away" while it waits on something that takes no work of it: a Graph
// request, a backoff or Retry-After, a breaker that is open. Meanwhile another handler may
// start on the queue, so that an event waiting minutes for its retry never stands in front
// of the others, and so that slow Graph answers do not cap a lane's requests in flight
// (HWSTATE_CONCURRENCY does). At most handlerCount handlers are at work (not away) at once.
type handlers struct {
	mu      sync.Mutex
	queue   []jetstream.Msg
	working int // handlers not away
	limit   int
	// spawn starts a handler; set by the lane's pull before anything is queued.
	spawn func()
}

// handlerCount is how many handlers of a lane work at once: one per 5 creates a second of
// its rate (a handler's work besides waiting is a few JetStream round trips of a millisecond
// or so an event), at least minHandlers (one may wait for the rate limit while another
// answers a redelivery from the ledger), at most HWSTATE_CONCURRENCY.
func handlerCount(perSecond float64, concurrency int) int {
	return max(minHandlers, min(concurrency, int(math.Ceil(perSecond/5))))
}

const minHandlers = 2

// push queues a held message, and starts a handler for it if fewer than the limit work.
func (h *handlers) push(msg jetstream.Msg, limit int) {
	h.mu.Lock()
	h.queue = append(h.queue, msg)
	h.limit = limit
	start := h.working < h.limit
	if start {
		h.working++
	}
	h.mu.Unlock()
	if start {
		h.spawn()
	}
}

// next takes the next message for a handler, or tells it to end: nothing queued, or more
// handlers at work than the limit (one came back from away).
func (h *handlers) next() (jetstream.Msg, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.queue) == 0 || h.working > h.limit {
		h.working--
		return nil, false
	}
	msg := h.queue[0]
	h.queue[0] = nil
	h.queue = h.queue[1:]
	if len(h.queue) == 0 {
		h.queue = nil // let the array go once drained
	}
	return msg, true
}

// away runs wait with the calling handler counted as away, starting another for the queue
// meanwhile.
func (h *handlers) away(wait func() error) error {
	h.mu.Lock()
	h.working--
	start := len(h.queue) > 0 && h.working < h.limit
	if start {
		h.working++
	}
	h.mu.Unlock()
	if start {
		h.spawn()
	}
	defer func() {
		h.mu.Lock()
		h.working++
		h.mu.Unlock()
	}()
	return wait()
}

// serve is a handler: it handles the lane's queued messages until there are none (or too
// many handlers are at work), freeing a hold slot after each.
func (w *Worker) serve(ctx, hard context.Context, l *lane, done func()) {
	for {
		msg, ok := l.work.next()
		if !ok {
			return
		}
		w.handle(ctx, hard, l, msg)
		l.held.Add(-1)
		done()
	}
}

// away runs wait with the event's handler away (see handlers), when it has one.
func away(ev *event, wait func() error) error {
	if ev.lane == nil || ev.lane.work.spawn == nil {
		return wait()
	}
	return ev.lane.work.away(wait)
}
