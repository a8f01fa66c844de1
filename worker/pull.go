package worker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// fetchWait bounds one pull request, and so how long shutdown waits for the pull in progress
// (a pull is let run out rather than cancelled: messages the server sends for a cancelled
// pull would wait out the ack wait). An idle worker pulls twice a second.
const fetchWait = 500 * time.Millisecond

// pull fetches messages while there is room to hold them, one goroutine per message. ctx
// ends pulling; hard ends the handlers' Graph requests and recording (Run).
func (w *Worker) pull(ctx, hard context.Context, wg *sync.WaitGroup) {
	slots := make(chan struct{}, maxAckPending)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	for {
		ackWait := w.serverAckWait()
		hold, size := w.cfg.holdLimit(ackWait), w.cfg.fetchBatch(ackWait)
		// Wait for a quarter of a pull's room before pulling, so a busy worker makes few large
		// pulls rather than many of one message. Nothing is pulled while JetStream refuses
		// writes (the outcomes could not be recorded) or the consumer is being made again.
		low := max(1, min(size, hold)/4)
		if w.store.wait(ctx) != nil || w.waitBound(ctx) != nil {
			return
		}
		n := 0
		for n < low {
			if len(slots) >= hold {
				// The hold limit follows the server's ack wait and may have shrunk.
				if sleep(ctx, 10*time.Millisecond) != nil {
					release(n)
					return
				}
				continue
			}
			select {
			case slots <- struct{}{}:
				n++
			case <-ctx.Done():
				release(n)
				return
			}
		}
		for n < size && len(slots) < hold {
			slots <- struct{}{}
			n++
		}
		batch, err := w.consumer().Fetch(n, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			release(n)
			w.pullFailed(ctx, err)
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			w.held.add(msg, w.opts.now())
			if ctx.Err() != nil {
				ev, _ := w.receive(msg)
				w.handBack(ev)
				<-slots
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				w.handle(ctx, hard, msg)
			}()
		}
		release(n - got)
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			w.pullFailed(ctx, err)
		}
	}
}

// pullFailed answers a failed pull: a consumer or stream that is gone is made again; anything
// else is waited out.
func (w *Worker) pullFailed(ctx context.Context, err error) {
	if isGone(err) {
		w.repairIfGone(err)
		return
	}
	w.log.Warn("pull failed", zap.Error(err))
	_ = sleep(ctx, time.Second)
}

// isGone says an error means the consumer or a stream no longer exists.
func isGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders)
}

// consumerPoll is how often the consumer's state is read: its AckWait (keep-alives follow
// it), whether it still exists, and the figures for /metrics. It must stay well under the
// shortest ack wait a replica may set.
const consumerPoll = time.Second

// watchConsumer reads the consumer's info every consumerPoll until ctx is done.
func (w *Worker) watchConsumer(ctx context.Context) {
	for {
		info, err := w.consumer().Info(ctx)
		switch {
		case err == nil:
			if aw := info.Config.AckWait; aw > 0 && aw != w.serverAckWait() {
				w.log.Info("consumer ack wait changed on the server; keep-alives follow it",
					zap.Duration("ack_wait", aw), zap.Duration("was", w.serverAckWait()))
				w.ackWait.Store(int64(aw))
			}
			w.metrics.consumer(info)
		default:
			w.repairIfGone(err)
		}
		if sleep(ctx, consumerPoll) != nil {
			return
		}
	}
}

// binding is the consumer the worker pulls from, and whether it is known to exist.
type binding struct {
	mu    sync.Mutex
	cons  jetstream.Consumer
	bound chan struct{} // closed while bound
	gone  chan struct{} // signalled when the consumer or a stream is found gone
}

func (w *Worker) consumer() jetstream.Consumer {
	w.bind.mu.Lock()
	defer w.bind.mu.Unlock()
	return w.bind.cons
}

func (w *Worker) setConsumer(cons jetstream.Consumer) {
	w.bind.mu.Lock()
	defer w.bind.mu.Unlock()
	w.bind.cons = cons
	if !w.boundLocked() {
		close(w.bind.bound)
	}
}

func (w *Worker) isBound() bool {
	w.bind.mu.Lock()
	defer w.bind.mu.Unlock()
	return w.boundLocked()
}

func (w *Worker) boundLocked() bool {
	select {
	case <-w.bind.bound:
		return true
	default:
		return false
	}
}

// waitBound blocks while the consumer is being made again.
func (w *Worker) waitBound(ctx context.Context) error {
	w.bind.mu.Lock()
	bound := w.bind.bound
	w.bind.mu.Unlock()
	select {
	case <-bound:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// repairIfGone asks for the streams and consumer to be made again when err says one is gone.
func (w *Worker) repairIfGone(err error) {
	if !isGone(err) {
		return
	}
	w.bind.mu.Lock()
	if w.boundLocked() {
		w.bind.bound = make(chan struct{})
	}
	w.bind.mu.Unlock()
	select {
	case w.bind.gone <- struct{}{}:
	default:
	}
}

// repair makes the streams, consumer and bucket again whenever one is found gone, with one
// warning each time, until ctx is done.
func (w *Worker) repair(ctx context.Context) {
	for {
		select {
		case <-w.bind.gone:
		case <-ctx.Done():
			return
		}
		w.log.Warn("the consumer or a stream is gone; making them again")
		for {
			cons, err := w.setup(ctx)
			if err == nil {
				w.setConsumer(cons)
				break
			}
			w.log.Debug("setup failed; trying again", zap.Error(err))
			if sleep(ctx, time.Second) != nil {
				return
			}
		}
	}
}
