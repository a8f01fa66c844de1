package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/schema"
)

// missingPermission is what a 401/403/405 most likely means for this worker.
const missingPermission = "DeviceManagementConfiguration.ReadWrite.All"

// answer is how Graph settled an event: its answer to a create, or the entity a lookup found.
type answer struct {
	resp  graph.Response
	found *graph.UserState // set when reconciliation found the event's entity
}

// errExhausted ends an event whose attempts all failed transiently.
var errExhausted = errors.New("retries exhausted")

// errFailing marks, for the breaker, an answer that says Graph (or our access to it) is broken.
var errFailing = errors.New("graph failing")

// breakerPoll is how often a waiting event asks again whether the breaker lets it through.
const breakerPoll = 500 * time.Millisecond

// create sends the event's create until Graph gives a final answer (created or rejected),
// the transient failures reach MaxAttempts (errExhausted, with the last answer), or ctx is done
// while the event is waiting (ctx.Err()). Before a create that might duplicate one already
// made (ev.mightExist), it looks the event up instead (reconcile.go). A request already sent
// is waited for, until hard is done.
func (w *Worker) create(ctx, hard context.Context, ev *event, req graph.Request, state schema.UserState) (answer, error) {
	bo := w.backoff()
	failures := 0 // the transient failures that count towards MaxAttempts
	for {
		if ev.mightExist {
			found, err := w.reconcile(ctx, hard, ev, req, state)
			if err != nil || found.found != nil {
				return found, err
			}
		}
		resp, sent, err := w.send(ctx, hard, ev, func(ctx context.Context) (graph.Response, error) {
			return ev.listing.creator.Create(ctx, req)
		})
		if !sent {
			if err := w.waitUnsent(ctx, ev, err); err != nil {
				return answer{resp: resp}, err
			}
			continue
		}
		ev.attempts++
		if graph.Ambiguous(resp, err) {
			ev.mightExist = true // it may exist now: look before creating again
		}
		switch {
		case err == nil && (resp.Class == graph.Created || resp.Class == graph.Rejected):
			ev.lane.pacer.Load().accepted()
			return answer{resp: resp}, nil
		case err == nil && resp.Class == graph.Systemic:
			w.refused(ev, resp)
		case ev.lane.breaker.State() == gobreaker.StateClosed:
			// A failure that tripped the breaker, or a failed probe, says Graph is down: an
			// outage, however long, dead-letters nothing.
			failures++
		}
		if failures >= w.cfg.MaxAttempts {
			if ev.mightExist {
				// The last attempt may have created it: a dead letter for an entity that
				// exists would be redriven into a duplicate.
				if found, err := w.reconcile(ctx, hard, ev, req, state); err != nil || found.found != nil {
					return found, err
				}
			}
			if err != nil {
				return answer{resp: resp}, fmt.Errorf("%w after %d attempts: %w", errExhausted, ev.attempts, err)
			}
			return answer{resp: resp}, fmt.Errorf("%w after %d attempts: Graph answered %d", errExhausted, ev.attempts, resp.Status)
		}
		if err := w.waitToRetry(ctx, ev, bo, resp, err); err != nil {
			return answer{resp: resp}, err
		}
	}
}

func (w *Worker) backoff() *backoff.ExponentialBackOff {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = w.opts.backoffInitial, w.opts.backoffMax
	return bo
}

// refused logs an answer that says the worker's credentials, not the event, are wrong: the
// event waits like everyone else.
func (w *Worker) refused(ev *event, resp graph.Response) {
	ev.log.Error("Graph refused the worker's credentials: check the app registration has the "+
		missingPermission+" application permission with admin consent",
		zap.Int("status", resp.Status), zap.String("graph_request_id", resp.RequestID))
}

// waitUnsent waits after a request that did not go out: shutdown, no token, the breaker open
// or probing, or a claim short of time while JetStream refuses to renew it. It fails when
// ctx is done or the claim was taken over.
func (w *Worker) waitUnsent(ctx context.Context, ev *event, err error) error {
	switch {
	case errors.Is(err, errClaimLost):
		ev.log.Warn("another process took the event over; leaving it to that one")
		return err
	case errors.Is(err, graph.ErrNoToken):
		ev.log.Error("cannot sign in to Graph: check the tenant id, client id and secret or certificate", zap.Error(err))
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return away(ev, func() error { return sleep(ctx, breakerPoll) })
}

// waitToRetry waits before the next request after a transient failure: the backoff, or
// Graph's Retry-After (at most MaxRetryAfter). A 429 pauses every sender, not just this event.
func (w *Worker) waitToRetry(ctx context.Context, ev *event, bo *backoff.ExponentialBackOff, resp graph.Response, err error) error {
	wait := bo.NextBackOff()
	if err == nil && resp.HasRetryAfter {
		wait = min(resp.RetryAfter, w.cfg.MaxRetryAfter)
	}
	if err == nil && resp.Status == 429 {
		// Throttling is the tenant's, not this event's: everyone waits.
		ev.lane.pacer.Load().throttled(wait)
		ev.lane.figures().throttled(wait)
		wait = 0
	}
	ev.log.Debug("transient failure; retrying", zap.Int("status", resp.Status), zap.Error(err),
		zap.Int("attempts", ev.attempts), zap.Duration("wait", wait))
	if wait <= 0 {
		return ctx.Err()
	}
	return away(ev, func() error { return sleep(ctx, wait) })
}

// send waits for its turn (a free slot, JetStream taking writes, the rate limit, a claim with
// time left) and sends one Graph request through the breaker. sent says whether a request
// went out. Shutdown does not cut a request short (its answer must be recorded); hard does.
func (w *Worker) send(ctx, hard context.Context, ev *event, call func(context.Context) (graph.Response, error)) (resp graph.Response, sent bool, err error) {
	select {
	case ev.lane.sending <- struct{}{}:
	case <-ctx.Done():
		return resp, false, ctx.Err()
	}
	defer func() { <-ev.lane.sending }()
	if err := w.store.wait(ctx); err != nil {
		return resp, false, err
	}
	if err := ev.lane.pacer.Load().wait(ctx); err != nil {
		return resp, false, err
	}
	if ev.claim != nil && !w.usable(ctx, ev) {
		if ev.claim.isLost() {
			return resp, false, errClaimLost
		}
		return resp, false, nil // renewing failed: JetStream trouble, wait
	}
	ev.lane.figures().inFlight(1)
	defer ev.lane.figures().inFlight(-1)
	start := time.Now()
	resp, err = ev.lane.breaker.Execute(func() (graph.Response, error) {
		traced := w.traceGraph(ev) // trace.go: the request's span
		var resp graph.Response
		var err error
		_ = away(ev, func() error { resp, err = call(hard); return nil })
		traced(resp, err)
		// Without a token nothing went to Graph: the worker's credentials are wrong, which the
		// breaker counts, but it is no attempt of the event's.
		sent = !errors.Is(err, graph.ErrNoToken)
		if err == nil && (resp.Class == graph.Systemic || (resp.Class == graph.Transient && resp.Status != 429)) {
			return resp, errFailing
		}
		return resp, err
	})
	if sent {
		ev.lane.figures().graphRequest(resp.Status, time.Since(start))
	}
	if errors.Is(err, errFailing) {
		err = nil
	}
	// Unsent, err is the breaker's refusal (open, or probing with another request) or ErrNoToken.
	return resp, sent, err
}
