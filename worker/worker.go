// Package worker consumes hwstate events from JetStream, turns each valid one into a Graph
// create, and records exactly one outcome per event (a result or a dead letter) before it
// acknowledges the message. It owns the manners towards Graph: the rate limit, the bound on
// creates in flight, retries with backoff, and the circuit breaker; and the promise that
// nothing is lost or created twice (CONTRACT.md section 3).
//
// One event's life reads top to bottom in event.go; each step lives in the file named for it.
package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
)

// Creator sends one create to Graph. *graph.Client is one; tests plug in others.
type Creator interface {
	Create(ctx context.Context, req graph.Request) (graph.Response, error)
}

// Worker is one hwstate process's share of the work on the durable consumer.
type Worker struct {
	js      jetstream.JetStream
	creator Creator
	cfg     Config
	opts    options
	owner   string // names this process in the claims it writes

	log     *zap.Logger
	pacer   *pacer
	breaker *gobreaker.CircuitBreaker[graph.Response]
	sending chan struct{} // a slot per Graph request in flight
	held    holdings
	claims  claims
	ledger  atomic.Pointer[ledger]
	store   storeHealth
	metrics *Metrics
	// listing is whether reconciliation can ask Graph; cleared (with one warning) when
	// Graph refuses the list call, after which events that might exist are created anyway.
	listing     atomic.Bool
	warnListing sync.Once

	// ackWait is the consumer's AckWait as the server holds it: another replica may have
	// set it, and keep-alives must follow it, not this process's setting.
	ackWait atomic.Int64
	bind    binding
	ready   atomic.Bool
}

// New builds a worker; Run starts it.
func New(js jetstream.JetStream, creator Creator, cfg Config, opts ...Option) *Worker {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	w := &Worker{
		js:      js,
		creator: creator,
		cfg:     cfg,
		opts:    o,
		owner:   uuid.NewString(),
		log:     o.logger,
		pacer:   newPacerAt(max(startRate, cfg.Rate/startShare), cfg.Rate, cfg.Burst, o.metrics, o.now),
		sending: make(chan struct{}, cfg.Concurrency),
		metrics: o.metrics,
	}
	w.store.metrics, w.store.log, w.store.now = o.metrics, o.logger, o.now
	w.ackWait.Store(int64(cfg.AckWait))
	w.bind.bound, w.bind.gone = make(chan struct{}), make(chan struct{}, 1)
	_, canList := creator.(Lister)
	w.listing.Store(canList)
	w.breaker = gobreaker.NewCircuitBreaker[graph.Response](gobreaker.Settings{
		Name:        "graph",
		MaxRequests: 1,
		// Trip on the share of failures over the last ten seconds, not on a short run of
		// them: one configuration that always fails must not look like Graph being down while
		// other creates succeed. But a long unbroken run trips it too: when Graph goes down
		// after a busy spell, the window is full of successes and the share would take
		// seconds to reach, while the failures counted meanwhile dead-letter events for an
		// outage (TestProcessGraphOutage).
		Interval:     10 * time.Second,
		BucketPeriod: time.Second,
		Timeout:      o.breakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= breakerMinRequests ||
				(c.Requests >= breakerMinRequests && c.TotalFailures*10 >= c.Requests*8)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			w.log.Warn("graph circuit breaker", zap.Stringer("from", from), zap.Stringer("to", to))
			w.metrics.breakerState(to)
		},
	})
	return w
}

// breakerMinRequests is how many requests the breaker must see before it judges Graph, and
// how many failures in a row with no success between say Graph is down.
const breakerMinRequests = 10

// Ready reports whether the worker is bound to its consumer, pulling, and JetStream takes
// its writes: a worker that cannot record outcomes should get no traffic.
func (w *Worker) Ready() bool { return w.ready.Load() && w.isBound() && w.store.healthy() }

// serverAckWait is the consumer's AckWait as last read from the server.
func (w *Worker) serverAckWait() time.Duration { return time.Duration(w.ackWait.Load()) }

// Run pulls and processes events until ctx is done, then finishes the creates already sent
// (for at most ShutdownGrace), hands back everything else, and returns nil. It returns an
// error only when it cannot start.
func (w *Worker) Run(ctx context.Context) error {
	cons, err := w.setup(ctx)
	if err != nil {
		return err
	}
	w.log.Info("worker started",
		zap.String("stream", w.cfg.Stream), zap.String("consumer", w.cfg.Consumer),
		zap.Float64("rate", w.cfg.Rate), zap.Int("concurrency", w.cfg.Concurrency),
		zap.Int("fetch_batch", w.cfg.fetchBatch(w.serverAckWait())), zap.Duration("ack_wait", w.serverAckWait()))

	// hard ends what shutdown lets finish: requests already sent to Graph and the recording
	// of their outcomes. It ends ShutdownGrace after ctx at the latest.
	hard, stopHard := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHard()
	defer context.AfterFunc(ctx, func() {
		grace := time.NewTimer(w.cfg.ShutdownGrace)
		defer grace.Stop()
		select {
		case <-grace.C:
			w.log.Warn("shutdown grace over: handing back what has no answer yet", zap.Duration("grace", w.cfg.ShutdownGrace))
			stopHard()
		case <-hard.Done():
		}
	})()
	w.setConsumer(cons)
	w.loadLevel(ctx, w.ledgerNow().kv)
	levels := make(chan float64, 1)
	w.pacer.setOnLevel(levelReporter(levels))
	go w.saveLevels(hard, levels)
	go w.held.keepAlive(hard, w.serverAckWait, w.opts.now)
	go w.claims.renew(hard, w)
	go w.watchConsumer(hard)
	go w.repair(hard)
	w.pacer.showRate()

	w.ready.Store(true)
	var wg sync.WaitGroup
	w.pull(ctx, hard, &wg)
	w.ready.Store(false)
	wg.Wait()
	w.log.Info("worker stopped")
	return nil
}
