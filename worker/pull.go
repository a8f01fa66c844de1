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

// idleFetchWait is how long a tenant's pull waits once its lane has been idle (multi-tenant
// mode): a thousand idle lanes pulling twice a second would keep the server busy for nothing,
// and a message arriving ends the wait at once, so only shutdown waits longer.
const idleFetchWait = 5 * time.Second

// pull fetches a lane's messages while there is room to hold them, and queues them for the
// lane's handlers (hold.go). ctx ends pulling; hard ends the handlers' Graph requests and
// recording (Run).
func (w *Worker) pull(ctx, hard context.Context, wg *sync.WaitGroup, l *lane) {
	slots := make(chan struct{}, maxAckPending)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	l.work.spawn = func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.serve(ctx, hard, l, func() { <-slots })
		}()
	}
	wait := fetchWait
	for {
		// Auto pulls are sized from the rate in force (CONTRACT.md section 4): a throttled
		// tenant, or a replica's share of one, pulls less.
		perSecond := l.pacer.Load().inForce()
		hold, size := w.holdLimit(l), w.cfg.fetchBatch(perSecond, l.serverAckWait())
		// Wait for a quarter of a pull's room before pulling, so a busy worker makes few large
		// pulls rather than many of one message. Nothing is pulled while JetStream refuses
		// writes (the outcomes could not be recorded) or the consumer is being made again.
		low := max(1, min(size, hold)/4)
		if w.store.wait(ctx) != nil || l.waitBound(ctx) != nil {
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
		batch, err := l.consumer().Fetch(n, jetstream.FetchMaxWait(wait))
		if err != nil {
			release(n)
			w.pullFailed(ctx, l, err)
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			w.held.add(msg, w.opts.now())
			l.held.Add(1)
			if ctx.Err() != nil {
				ev, _ := w.receive(l, msg)
				w.handBack(ev)
				l.held.Add(-1)
				<-slots
				continue
			}
			l.work.push(msg, handlerCount(perSecond, w.cfg.Concurrency))
		}
		release(n - got)
		if wait = fetchWait; got == 0 && l.tenant != "" {
			wait = idleFetchWait
		}
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			w.pullFailed(ctx, l, err)
		}
	}
}

// pullFailed answers a failed pull: a consumer or stream that is gone is made again; anything
// else is waited out.
func (w *Worker) pullFailed(ctx context.Context, l *lane, err error) {
	if isGone(err) {
		w.repairIfGone(l, err)
		return
	}
	l.log.Warn("pull failed", zap.Error(err))
	_ = sleep(ctx, time.Second)
}

// isGone says an error means the consumer or a stream no longer exists.
func isGone(err error) bool {
	return errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrNoResponders)
}

// consumerPoll is how often the consumers' state is read: their AckWait (keep-alives follow
// it), whether they still exist, and the figures for /metrics. It must stay well under the
// shortest ack wait a replica may set.
const consumerPoll = time.Second

// watchConsumers reads the consumers' info every consumerPoll until ctx is done: the one
// consumer's in single-tenant mode; in multi-tenant mode the list of the stream's consumers
// (a request per 256 of them, not one per tenant), and, every sweepEvery, the subjects holding
// events, so that events of unlisted tenants get lanes that dead-letter them.
func (w *Worker) watchConsumers(ctx context.Context) {
	round := w.watchConsumer
	if w.opts.tenants != nil {
		round = w.tenantsWatch() // tenancy.go
	}
	for {
		round(ctx)
		w.refreshAckWait()
		if sleep(ctx, consumerPoll) != nil {
			return
		}
	}
}

// watchConsumer reads the one lane's consumer info (single-tenant mode).
func (w *Worker) watchConsumer(ctx context.Context) {
	for _, l := range w.lanes.all() {
		info, err := l.consumer().Info(ctx)
		if err != nil {
			w.repairIfGone(l, err)
			continue
		}
		w.observe(l, info)
	}
}

// observe takes in a lane's consumer info as the server holds it.
func (w *Worker) observe(l *lane, info *jetstream.ConsumerInfo) {
	if aw := info.Config.AckWait; aw > 0 && aw != l.serverAckWait() {
		l.log.Info("consumer ack wait changed on the server; keep-alives follow it",
			zap.Duration("ack_wait", aw), zap.Duration("was", l.serverAckWait()))
		l.ackWait.Store(int64(aw))
	}
	l.figures().consumer(info)
}

// binding is the consumer a lane pulls from, and whether it is known to exist.
type binding struct {
	mu    sync.Mutex
	cons  jetstream.Consumer
	bound chan struct{} // closed while bound
}

func (l *lane) consumer() jetstream.Consumer {
	l.bind.mu.Lock()
	defer l.bind.mu.Unlock()
	return l.bind.cons
}

func (l *lane) setConsumer(cons jetstream.Consumer) {
	l.bind.mu.Lock()
	defer l.bind.mu.Unlock()
	l.bind.cons = cons
	if !l.boundLocked() {
		close(l.bind.bound)
	}
}

func (l *lane) isBound() bool {
	l.bind.mu.Lock()
	defer l.bind.mu.Unlock()
	return l.boundLocked()
}

func (l *lane) boundLocked() bool {
	select {
	case <-l.bind.bound:
		return true
	default:
		return false
	}
}

// waitBound blocks while the lane's consumer is being made again.
func (l *lane) waitBound(ctx context.Context) error {
	l.bind.mu.Lock()
	bound := l.bind.bound
	l.bind.mu.Unlock()
	select {
	case <-bound:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// unbind marks the lane's consumer as gone.
func (l *lane) unbind() {
	l.bind.mu.Lock()
	if l.boundLocked() {
		l.bind.bound = make(chan struct{})
	}
	l.bind.mu.Unlock()
}

// repairIfGone asks for the streams and a lane's consumer (l, when not nil) to be made again
// when err says one is gone.
func (w *Worker) repairIfGone(l *lane, err error) {
	if !isGone(err) {
		return
	}
	if l != nil {
		l.unbind()
	}
	select {
	case w.gone <- struct{}{}:
	default:
	}
}

// repair makes the streams, bucket and unbound consumers again whenever one is found gone,
// with one warning each time, until ctx is done.
func (w *Worker) repair(ctx context.Context) {
	for {
		select {
		case <-w.gone:
		case <-ctx.Done():
			return
		}
		w.log.Warn("a consumer or a stream is gone; making them again")
		for {
			err := w.rebind(ctx)
			if err == nil {
				break
			}
			w.log.Debug("setup failed; trying again", zap.Error(err))
			if sleep(ctx, time.Second) != nil {
				return
			}
		}
	}
}

// rebind makes the streams and bucket, and binds every lane whose consumer is gone.
func (w *Worker) rebind(ctx context.Context) error {
	if err := w.setup(ctx); err != nil {
		return err
	}
	for _, l := range w.lanes.all() {
		if !l.isBound() {
			if err := w.bindLane(ctx, l); err != nil {
				return err
			}
		}
	}
	return nil
}
