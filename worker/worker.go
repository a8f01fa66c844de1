// Package worker consumes hwstate events from JetStream, turns each valid one into a Graph
// create, and records exactly one outcome per event (a result or a dead letter) before it
// acknowledges the message. It owns the manners towards Graph: the rate limit, the bound on
// creates in flight, retries with backoff, and the circuit breaker.
package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

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

	log     *zap.Logger
	pacer   *pacer
	breaker *gobreaker.CircuitBreaker[graph.Response]
	sending chan struct{} // a slot per create in flight
	held    holdings
	claims  claims
	ledger  *ledger
	metrics *Metrics

	streamCreated time.Time
	ready         atomic.Bool
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
		log:     o.logger,
		pacer:   newPacer(cfg.Rate, cfg.Burst, o.metrics),
		sending: make(chan struct{}, cfg.Concurrency),
		metrics: o.metrics,
	}
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

// Ready reports whether the worker is bound to its consumer and pulling.
func (w *Worker) Ready() bool { return w.ready.Load() }

// Run pulls and processes events until ctx is done, then finishes the creates already sent,
// hands back everything else, and returns nil. It returns an error only when it cannot start.
func (w *Worker) Run(ctx context.Context) error {
	cons, err := w.setup(ctx)
	if err != nil {
		return err
	}
	w.log.Info("worker started",
		zap.String("stream", w.cfg.Stream), zap.String("consumer", w.cfg.Consumer),
		zap.Float64("rate", w.cfg.Rate), zap.Int("concurrency", w.cfg.Concurrency),
		zap.Int("fetch_batch", w.cfg.fetchBatch()), zap.Duration("ack_wait", w.cfg.AckWait))

	aliveCtx, stopAlive := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAlive()
	go w.held.keepAlive(aliveCtx, max(w.cfg.AckWait/3, 100*time.Millisecond))

	w.metrics.setRateLimit(w.cfg.Rate)
	if w.metrics != nil {
		go w.watchConsumer(aliveCtx, cons)
	}

	w.ready.Store(true)
	var wg sync.WaitGroup
	w.pull(ctx, cons, &wg)
	w.ready.Store(false)
	wg.Wait()
	w.log.Info("worker stopped")
	return nil
}

// watchConsumer keeps the consumer's pending and ack-pending figures current for /metrics.
func (w *Worker) watchConsumer(ctx context.Context, cons jetstream.Consumer) {
	for {
		if info, err := cons.Info(ctx); err == nil {
			w.metrics.consumer(info)
		}
		if sleep(ctx, 5*time.Second) != nil {
			return
		}
	}
}

// fetchWait bounds one pull request, and so how long shutdown waits for the pull in progress.
const fetchWait = 2 * time.Second

// pull fetches messages while there is room to hold them, one goroutine per message.
func (w *Worker) pull(ctx context.Context, cons jetstream.Consumer, wg *sync.WaitGroup) {
	hold := w.cfg.holdLimit()
	size := w.cfg.fetchBatch()
	// Wait for a quarter of a pull's room before pulling, so a busy worker makes few large
	// pulls rather than many of one message.
	low := max(1, min(size, hold)/4)
	slots := make(chan struct{}, hold)
	release := func(n int) {
		for range n {
			<-slots
		}
	}
	for {
		n := 0
		for n < low {
			select {
			case slots <- struct{}{}:
				n++
			case <-ctx.Done():
				release(n)
				return
			}
		}
	fill:
		for n < size {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		batch, err := cons.Fetch(n, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			release(n)
			w.log.Warn("pull failed", zap.Error(err))
			if sleep(ctx, time.Second) != nil {
				return
			}
			continue
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			w.held.add(msg)
			if ctx.Err() != nil {
				w.handBack(msg)
				<-slots
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-slots }()
				w.handle(ctx, msg)
			}()
		}
		release(n - got)
		if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
			w.log.Debug("pull ended", zap.Error(err))
		}
	}
}

// handBack returns a message to JetStream for immediate redelivery to whoever pulls next.
func (w *Worker) handBack(msg jetstream.Msg) {
	if err := msg.Nak(); err != nil {
		w.log.Warn("hand back failed; redelivered after the ack wait", zap.Error(err))
	}
	w.held.remove(msg)
	w.metrics.handedBack()
}

// eventID names an event: the producer's Nats-Msg-Id or, failing that, its place in the stream.
type eventID struct {
	value    string
	fallback bool
}

func idOf(msg jetstream.Msg, meta *jetstream.MsgMetadata) eventID {
	if h := msg.Headers().Get(jetstream.MsgIDHeader); h != "" {
		return eventID{value: h}
	}
	return eventID{value: fmt.Sprintf("%s-%d", meta.Stream, meta.Sequence.Stream), fallback: true}
}

// finishTimeout bounds recording an outcome; it is not cut short by shutdown, since an
// answer from Graph must not be lost.
const finishTimeout = 30 * time.Second

// handle takes one message to its outcome, or hands it back when shutdown comes first.
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		w.log.Error("message without JetStream metadata", zap.Error(err))
		w.handBack(msg)
		return
	}
	id := idOf(msg, meta)
	// Lazily: most events log nothing, and an eager With encodes the field every time.
	log := w.log.WithLazy(zap.String("event_id", id.value))
	release, err := w.claims.claim(ctx, id.value)
	if err != nil {
		w.handBack(msg) // shutdown while another delivery of it was being handled
		return
	}
	defer release()

	var rec record
	var hit bool
	err = retryNATS(ctx, log, "ledger get", func(ctx context.Context) (err error) {
		rec, hit, err = w.ledger.get(ctx, id)
		return err
	})
	if err != nil {
		log.Warn("ledger unavailable; handing the event back", zap.Error(err))
		w.handBack(msg)
		return
	}
	if hit {
		w.metrics.ledgerHit()
		log.Debug("already done: republishing the recorded outcome", zap.String("outcome", string(rec.Outcome)))
		w.record(ctx, msg, id, rec, false, log)
		return
	}

	rec, ok := w.process(ctx, msg, meta, id, log)
	if !ok {
		w.handBack(msg)
		return
	}
	w.record(ctx, msg, id, rec, true, log)
}

// natsTry bounds one try of a JetStream request: one sent as the connection drops is never
// answered, and waiting for it would use up the time to try again once reconnected.
const natsTry = 5 * time.Second

// retryNATS tries op until it succeeds or ctx is done, so that a NATS server restart or a
// cluster election (seconds) does not turn into a lost ledger record: without one, the
// redelivery would create the event again. Each failed try is logged, so that one that can
// never succeed (a record that does not decode) is seen.
func retryNATS(ctx context.Context, log *zap.Logger, what string, op func(context.Context) error) error {
	for {
		try, cancel := context.WithTimeout(ctx, natsTry)
		err := op(try)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
		log.Warn("JetStream request failed; trying again", zap.String("request", what), zap.Error(err))
		if sleep(ctx, 250*time.Millisecond) != nil {
			return err
		}
	}
}

// record writes the outcome to the ledger (when new), publishes it, and only then acks.
func (w *Worker) record(ctx context.Context, msg jetstream.Msg, id eventID, rec record, isNew bool, log *zap.Logger) {
	defer w.held.remove(msg)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finishTimeout)
	defer cancel()
	if isNew {
		if err := retryNATS(ctx, log, "ledger put", func(ctx context.Context) error { return w.ledger.put(ctx, id, rec) }); err != nil {
			// Publishing and acking still record the outcome; only a crash before the ack
			// would lead to a second create.
			log.Error("ledger write failed", zap.Error(err))
		}
	}
	subject := w.cfg.DLQSubject
	if rec.Outcome == Created {
		subject = w.cfg.ResultSubject
	}
	err := retryNATS(ctx, log, "publish outcome", func(ctx context.Context) error {
		_, err := w.js.PublishMsg(ctx, newOutputMsg(subject, id.value, rec.Body))
		return err
	})
	if err != nil {
		// Not acked: the event comes back and its ledger record is published again.
		log.Error("publishing the outcome failed; the event will be redelivered", zap.String("outcome", string(rec.Outcome)), zap.Error(err))
		if err := msg.NakWithDelay(time.Second); err != nil {
			log.Warn("hand back failed", zap.Error(err))
		}
		return
	}
	if err := msg.Ack(); err != nil {
		log.Warn("ack failed; the redelivery will be answered from the ledger", zap.Error(err))
	}
	if isNew {
		w.metrics.outcome(rec.Outcome, msg)
		if rec.Outcome == Created {
			log.Debug("created")
		} else {
			log.Warn("dead-lettered", zap.String("reason", string(rec.Outcome)))
		}
	}
}
