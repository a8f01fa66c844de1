package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/schema"
)

// missingPermission is what a 401/403/405 most likely means for this worker.
const missingPermission = "DeviceManagementConfiguration.ReadWrite.All"

// payloadMargin leaves room for headers and the ledger's envelope around a dead letter.
const payloadMargin = 4 << 10

// process validates an event and creates it in Graph, returning its final outcome. ok is false
// when shutdown came before the outcome was known: the event is handed back.
func (w *Worker) process(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, id eventID, log *zap.Logger) (rec record, ok bool) {
	ev, err := schema.Decode(msg.Data())
	if err != nil {
		return w.deadLetter(msg, meta, id, &DeadLetter{Reason: InvalidEvent, Error: err.Error()}), true
	}
	req := graph.Request{
		ConfigurationID: ev.HardwareConfigurationID,
		ClientRequestID: graph.ClientRequestID(id.value),
		Body:            ev.UserState.AppendGraphBody(nil),
	}
	resp, attempts, err := w.create(ctx, req, log)
	if err != nil {
		if !errors.Is(err, errExhausted) {
			return record{}, false
		}
		dl := &DeadLetter{Reason: RetriesExhausted, Attempts: attempts, Error: err.Error()}
		setAnswer(dl, resp)
		return w.deadLetter(msg, meta, id, dl), true
	}
	if resp.Class == graph.Rejected {
		dl := &DeadLetter{Reason: GraphRejected, Attempts: attempts,
			Error: fmt.Sprintf("Graph answered %d", resp.Status)}
		if resp.Error != nil {
			dl.Error = fmt.Sprintf("Graph answered %d %s: %s", resp.Status, resp.Error.Code, resp.Error.Message)
		}
		setAnswer(dl, resp)
		return w.deadLetter(msg, meta, id, dl), true
	}
	if !json.Valid(resp.Body) {
		resp.Body = nil // a result without Graph's body beats no result
	}
	body, err := json.Marshal(Result{
		EventID:                 id.value,
		HardwareConfigurationID: ev.HardwareConfigurationID,
		GraphID:                 resp.GraphID,
		Status:                  resp.Status,
		Attempts:                attempts,
		ClientRequestID:         req.ClientRequestID,
		GraphRequestID:          resp.RequestID,
		CompletedAt:             time.Now().UTC(),
		Created:                 resp.Body,
	})
	if err != nil {
		panic(fmt.Sprintf("encoding a result: %v", err)) // strings, numbers and checked JSON only
	}
	return record{Outcome: Created, Body: body}, true
}

// setAnswer copies what Graph said into a dead letter; a status of 0 means Graph never answered.
func setAnswer(dl *DeadLetter, resp graph.Response) {
	if resp.Status == 0 {
		return
	}
	dl.HTTPStatus = resp.Status
	dl.GraphRequestID = resp.RequestID
	if resp.Error != nil {
		dl.GraphError = &GraphError{Code: resp.Error.Code, Message: resp.Error.Message}
	}
}

// deadLetter completes a dead letter with where the event came from and its original body.
func (w *Worker) deadLetter(msg jetstream.Msg, meta *jetstream.MsgMetadata, id eventID, dl *DeadLetter) record {
	dl.EventID = id.value
	dl.Stream = meta.Stream
	dl.StreamSequence = meta.Sequence.Stream
	dl.Subject = msg.Subject()
	dl.FailedAt = time.Now().UTC()
	body, err := dl.marshalFitting(msg.Data(), int(w.js.Conn().MaxPayload())-payloadMargin)
	if err != nil {
		// Only strings and numbers are in a dead letter; this cannot fail.
		panic(fmt.Sprintf("encoding a dead letter: %v", err))
	}
	return record{Outcome: dl.Reason, Body: body}
}

// errExhausted ends an event whose attempts all failed transiently.
var errExhausted = errors.New("retries exhausted")

// errFailing marks, for the breaker, an answer that says Graph (or our access to it) is broken.
var errFailing = errors.New("graph failing")

// breakerPoll is how often a waiting event asks again whether the breaker lets it through.
const breakerPoll = 500 * time.Millisecond

// create sends the request until Graph gives a final answer (created or rejected), the
// transient failures reach MaxAttempts (errExhausted, with the last answer), or ctx is done
// while the event is waiting (ctx.Err()). A request already sent is always waited for.
// attempts counts every request sent.
func (w *Worker) create(ctx context.Context, req graph.Request, log *zap.Logger) (resp graph.Response, attempts int, err error) {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = w.opts.backoffInitial, w.opts.backoffMax
	failures := 0 // the transient failures that count towards MaxAttempts
	for {
		var sent bool
		resp, sent, err = w.send(ctx, req)
		if !sent {
			if errors.Is(err, graph.ErrNoToken) {
				log.Error("cannot sign in to Graph: check the tenant id, client id and secret or certificate", zap.Error(err))
			}
			// Shutdown, no token, or the breaker is open or probing: wait without counting an attempt.
			if ctx.Err() != nil || sleep(ctx, breakerPoll) != nil {
				return resp, attempts, ctx.Err()
			}
			continue
		}
		attempts++
		switch {
		case err == nil && (resp.Class == graph.Created || resp.Class == graph.Rejected):
			w.pacer.accepted()
			return resp, attempts, nil
		case err == nil && resp.Class == graph.Systemic:
			// The worker's credentials, not the event: it waits like everyone else.
			log.Error("Graph refused the worker's credentials: check the app registration has the "+
				missingPermission+" application permission with admin consent",
				zap.Int("status", resp.Status), zap.String("graph_request_id", resp.RequestID))
		case w.breaker.State() == gobreaker.StateClosed:
			// A failure that tripped the breaker, or a failed probe, says Graph is down: an
			// outage, however long, dead-letters nothing.
			failures++
		}
		if failures >= w.cfg.MaxAttempts {
			if err != nil {
				return resp, attempts, fmt.Errorf("%w after %d attempts: %w", errExhausted, attempts, err)
			}
			return resp, attempts, fmt.Errorf("%w after %d attempts: Graph answered %d", errExhausted, attempts, resp.Status)
		}
		wait := bo.NextBackOff()
		if err == nil && resp.HasRetryAfter {
			wait = resp.RetryAfter
		}
		if err == nil && resp.Status == 429 {
			// Throttling is the tenant's, not this event's: everyone waits.
			w.pacer.throttled(wait)
			w.metrics.throttled(wait)
			wait = 0
		}
		log.Debug("transient failure; retrying", zap.Int("status", resp.Status), zap.Error(err),
			zap.Int("attempts", attempts), zap.Duration("wait", wait))
		if sleep(ctx, wait) != nil {
			return resp, attempts, ctx.Err()
		}
	}
}

// send waits for its turn (rate limit, throttle pause, a free slot) and sends one create
// through the breaker. sent says whether a request went out.
func (w *Worker) send(ctx context.Context, req graph.Request) (resp graph.Response, sent bool, err error) {
	select {
	case w.sending <- struct{}{}:
	case <-ctx.Done():
		return resp, false, ctx.Err()
	}
	defer func() { <-w.sending }()
	if err := w.pacer.wait(ctx); err != nil {
		return resp, false, err
	}
	w.metrics.inFlight(1)
	defer w.metrics.inFlight(-1)
	start := time.Now()
	resp, err = w.breaker.Execute(func() (graph.Response, error) {
		// Shutdown does not cut a create short: its answer must be recorded.
		resp, err := w.creator.Create(context.WithoutCancel(ctx), req)
		// Without a token nothing went to Graph: the worker's credentials are wrong, which the
		// breaker counts, but it is no attempt of the event's.
		sent = !errors.Is(err, graph.ErrNoToken)
		if err == nil && (resp.Class == graph.Systemic || (resp.Class == graph.Transient && resp.Status != 429)) {
			return resp, errFailing
		}
		return resp, err
	})
	if sent {
		w.metrics.graphRequest(resp.Status, time.Since(start))
	}
	if errors.Is(err, errFailing) {
		err = nil
	}
	// Unsent, err is the breaker's refusal (open, or probing with another request) or ErrNoToken.
	return resp, sent, err
}

// newOutputMsg is a result or dead letter carrying the event id as its Nats-Msg-Id, so a
// republish after a crash is dropped as a duplicate.
func newOutputMsg(subject, eventID string, body []byte) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Header.Set(jetstream.MsgIDHeader, eventID)
	m.Data = body
	return m
}
