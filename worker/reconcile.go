package worker

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/schema"
)

// Lister lists a configuration's user states in Graph; *graph.Client is one. A Creator that
// is also a Lister lets the worker reconcile (CONTRACT.md section 3, "Exactly once against
// Graph"); one that is not is treated as a Graph that refuses the list call.
type Lister interface {
	ListUserStates(ctx context.Context, req graph.ListRequest) ([]graph.UserState, graph.Response, error)
}

// reconcile looks for the event's entity in Graph before a create that might duplicate it:
// an earlier delivery or attempt may have created it without the outcome being recorded. It
// returns the entity found (answer.found) or nothing, after which the create goes ahead;
// an error only when ctx is done first or the claim was taken over. A list is a Graph
// request like a create (rate limit, breaker, 429 and 5xx), but its failures do not count
// towards MaxAttempts.
func (w *Worker) reconcile(ctx, hard context.Context, ev *event, create graph.Request, state schema.UserState) (answer, error) {
	l := ev.lane
	lister, ok := ev.listing.creator.(Lister)
	if !ok || !l.canList.Load() {
		l.figures().reconciled("unavailable")
		ev.mightExist = false
		return answer{}, nil
	}
	// Each page is a request against the tenant's limits; send paces the first.
	paced := false
	// The lookup carries the create's client-request-id: one id finds all of an event's
	// traffic in Graph's logs.
	req := graph.ListRequest{ConfigurationID: create.ConfigurationID, UPN: state.UPN, ClientRequestID: create.ClientRequestID,
		Pace: func(ctx context.Context) error {
			if !paced {
				paced = true
				return nil
			}
			return l.pacer.Load().wait(ctx)
		}}
	bo := w.backoff()
	for {
		var states []graph.UserState
		var listErr error
		paced = false
		resp, sent, err := w.send(ctx, hard, ev, func(ctx context.Context) (graph.Response, error) {
			var resp graph.Response
			states, resp, listErr = lister.ListUserStates(ctx, req)
			if errors.Is(listErr, graph.ErrListUnavailable) {
				return resp, nil // Graph answered: the breaker judges the answer
			}
			return resp, listErr
		})
		if !sent {
			if err := w.waitUnsent(ctx, ev, err); err != nil {
				return answer{}, err
			}
			continue
		}
		switch {
		case errors.Is(listErr, graph.ErrListUnavailable):
			l.warnListing.Do(func() {
				l.log.Warn("Graph refuses to list user states, so events that might already exist are created "+
					"without looking first (at least once, not exactly once): grant "+missingPermission,
					zap.Int("status", resp.Status), zap.Error(listErr))
			})
			l.canList.Store(false)
			l.figures().reconciled("unavailable")
			ev.mightExist = false
			return answer{}, nil
		case err == nil && resp.Class == graph.Listed:
			l.pacer.Load().accepted()
			ev.mightExist = false // we hold the claim: no one else creates it meanwhile
			for i := range states {
				if states[i].Matches(&state) {
					l.figures().reconciled("found")
					ev.log.Info("found in Graph: recorded as created without a second create",
						zap.String("graph_id", states[i].ID), zap.Int("attempts", ev.attempts))
					return answer{resp: resp, found: &states[i]}, nil
				}
			}
			l.figures().reconciled("not_found")
			return answer{}, nil
		case err == nil && resp.Class == graph.Systemic:
			w.refused(ev, resp)
		}
		// err is nil when Graph answered (the answer, 429 or 5xx, is in resp), the network
		// error otherwise.
		if err := w.waitToRetry(ctx, ev, bo, resp, err); err != nil {
			return answer{}, err
		}
	}
}
