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
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
)

// Creator sends one create to Graph. *graph.Client is one; tests plug in others.
type Creator interface {
	Create(ctx context.Context, req graph.Request) (graph.Response, error)
}

// Worker is one hwstate process's share of the work on the durable consumers.
type Worker struct {
	js    jetstream.JetStream
	cfg   Config
	opts  options
	owner string // names this process in the claims it writes

	log     *zap.Logger
	held    holdings
	claims  claims
	ledger  atomic.Pointer[ledger]
	store   storeHealth
	metrics *Metrics
	lanes   lanes
	// replicas are the other workers on the consumers, which share each tenant's rate.
	replicas replicas

	// ackWait is the shortest of the consumers' AckWaits as the server holds them: another
	// replica may have set one, and keep-alives must follow it, not this process's setting.
	ackWait atomic.Int64
	// gone is signalled when a consumer or a stream is found gone (repair).
	gone  chan struct{}
	ready atomic.Bool
}

// New builds a worker that sends every event's create through creator (single-tenant mode);
// Run starts it. With WithTenants, creator is unused and each tenant gets its own.
func New(js jetstream.JetStream, creator Creator, cfg Config, opts ...Option) *Worker {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	cfg = cfg.withDefaults()
	w := &Worker{
		js:      js,
		cfg:     cfg,
		opts:    o,
		owner:   uuid.NewString(),
		log:     o.logger,
		metrics: o.metrics,
		gone:    make(chan struct{}, 1),
	}
	w.store.metrics, w.store.log, w.store.now = o.metrics, o.logger, o.now
	w.ackWait.Store(int64(cfg.AckWait))
	w.lanes.bySubject = make(map[string]*lane)
	if o.tenants == nil {
		w.lanes.getOrAdd(cfg.Subject, func() *lane { return w.newLane("", cfg.Subject, cfg.Consumer, &listing{creator: creator}) })
	}
	return w
}

// Ready reports whether the worker is bound to its consumers, pulling, and JetStream takes
// its writes: a worker that cannot record outcomes should get no traffic.
func (w *Worker) Ready() bool { return w.ready.Load() && w.lanes.bound() && w.store.healthy() }

// serverAckWait is the shortest consumer AckWait as last read from the server.
func (w *Worker) serverAckWait() time.Duration { return time.Duration(w.ackWait.Load()) }

// Run pulls and processes events until ctx is done, then finishes the creates already sent
// (for at most ShutdownGrace), hands back everything else, and returns nil. It returns an
// error only when it cannot start.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.setup(ctx); err != nil {
		return err
	}
	if w.opts.tenants != nil {
		w.SetTenants(w.opts.tenants.initial)
	}
	for _, l := range w.lanes.all() {
		if err := w.bindLane(ctx, l); err != nil {
			return err
		}
	}
	w.log.Info("worker started",
		zap.String("stream", w.cfg.Stream), zap.String("consumer", w.cfg.Consumer), zap.Int("lanes", w.lanes.count()),
		zap.Float64("rate", w.cfg.Rate), zap.Int("concurrency", w.cfg.Concurrency),
		zap.Int("fetch_batch", w.cfg.fetchBatch(w.cfg.Rate, w.serverAckWait())), zap.Duration("ack_wait", w.serverAckWait()))

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
	leave := w.shareRate(hard)
	for _, l := range w.lanes.all() {
		w.startPacer(ctx, hard, l)
	}
	go w.held.keepAlive(hard, w.serverAckWait, w.opts.now)
	go w.claims.renew(hard, w)
	go w.watchConsumers(hard)
	go w.repair(hard)

	w.ready.Store(true)
	var wg sync.WaitGroup
	w.lanes.run(ctx, hard, &wg, w)
	<-ctx.Done()
	w.ready.Store(false)
	w.lanes.wait()
	wg.Wait()
	leave()
	w.log.Info("worker stopped")
	return nil
}
