package worker

import (
	"context"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"go.uber.org/zap"
)

// storeHealth is whether JetStream takes the worker's requests. While it does not (a full
// store, a stream's limits, a quota, a server restart), the worker sends no new create,
// since it could not record the outcome, and answers /readyz 503.
type storeHealth struct {
	metrics *Metrics
	log     *zap.Logger
	now     func() time.Time

	mu      sync.Mutex
	failing bool
	lastLog time.Time
	ok      chan struct{} // closed while healthy; nil counts as closed
}

// storeLogEvery spaces the warnings of a store that keeps failing.
const storeLogEvery = time.Minute

func (s *storeHealth) failed(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.metrics.storeFailure()
	if !s.failing {
		s.failing = true
		s.ok = make(chan struct{})
		s.metrics.setStoreFailing(true)
	}
	if now := s.now(); now.Sub(s.lastLog) >= storeLogEvery {
		s.lastLog = now
		s.log.Warn("JetStream refuses the worker's requests: no new creates until it takes them again", zap.Error(err))
	}
}

func (s *storeHealth) succeeded() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		s.failing = false
		close(s.ok)
		s.metrics.setStoreFailing(false)
		s.log.Info("JetStream takes the worker's requests again")
	}
}

func (s *storeHealth) healthy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.failing
}

// wait blocks while JetStream refuses requests.
func (s *storeHealth) wait(ctx context.Context) error {
	s.mu.Lock()
	ok, failing := s.ok, s.failing
	s.mu.Unlock()
	if !failing {
		return nil
	}
	select {
	case <-ok:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// natsTry bounds one try of a JetStream request: one sent as the connection drops is never
// answered, and waiting for it would use up the time to try again once reconnected.
const natsTry = 5 * time.Second

// retryNATS tries op until it succeeds or ctx is done, with backoff, so that a NATS server
// restart, a cluster election or a full store (seconds to hours) does not turn into a lost
// outcome: without one, the redelivery would have to reconcile. Failures mark the store
// unhealthy (logged once a minute) until a request succeeds; a deleted stream or consumer
// is made again.
func (w *Worker) retryNATS(ctx context.Context, log *zap.Logger, what string, op func(context.Context) error) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 100*time.Millisecond, 5*time.Second
	for {
		try, cancel := context.WithTimeout(ctx, natsTry)
		err := op(try)
		cancel()
		if err == nil {
			w.store.succeeded()
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		w.store.failed(err)
		w.repairIfGone(nil, err)
		log.Debug("JetStream request failed; trying again", zap.String("request", what), zap.Error(err))
		if sleep(ctx, bo.NextBackOff()) != nil {
			return err
		}
	}
}
