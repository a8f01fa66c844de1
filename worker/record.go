package worker

import (
	"context"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// finish records an event's outcome and only then acks it: the ledger record (when new) and
// the published result or dead letter, each retried for as long as JetStream refuses it and
// neither waiting on the other, while the message is kept alive. Once Graph has created an
// event, only the end of shutdown's grace (hard) stops the recording; the event is then
// handed back and its next delivery reconciles.
func (w *Worker) finish(hard context.Context, ev *event, rec record, isNew bool) {
	defer w.held.remove(ev.msg)
	var ledgerErr error
	var wg sync.WaitGroup
	if isNew {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ledgerErr = w.retryNATS(hard, ev.log, "ledger put", func(ctx context.Context) error {
				return w.ledgerNow().put(ctx, ev.id, rec)
			})
		}()
	}
	publishErr := w.retryNATS(hard, ev.log, "publish outcome", func(ctx context.Context) error {
		_, err := w.js.PublishMsg(ctx, w.outputMsg(ev, rec))
		return err
	})
	wg.Wait()
	if ev.claim != nil {
		// The outcome record replaced the claim; one left by a failed write expires.
		w.claims.drop(ev.claim)
		ev.claim = nil
	}
	if ledgerErr != nil || publishErr != nil {
		ev.log.Error("outcome not recorded before shutdown's grace ended; the event is handed back",
			zap.String("outcome", string(rec.Outcome)), zap.NamedError("ledger", ledgerErr), zap.NamedError("publish", publishErr))
		if err := ev.msg.Nak(); err != nil {
			ev.log.Warn("hand back failed", zap.Error(err))
		}
		return
	}
	traceStep(ev, "outcome recorded") // trace.go: the ledger and the result or dead letter
	if err := ev.msg.Ack(); err != nil {
		ev.log.Warn("ack failed; the redelivery will be answered from the ledger", zap.Error(err))
	}
	traceStep(ev, "acked")
	if isNew {
		ev.lane.figures().outcome(rec.Outcome, ev.msg)
		if rec.Outcome == Created {
			ev.log.Debug("created")
		} else {
			ev.log.Warn("dead-lettered", zap.String("reason", string(rec.Outcome)))
		}
	}
}

// outputMsg is a result or dead letter carrying the event's output id as its Nats-Msg-Id, so
// a republish after a crash is dropped as a duplicate.
func (w *Worker) outputMsg(ev *event, rec record) *nats.Msg {
	subject := w.cfg.DLQSubject
	if rec.Outcome == Created {
		subject = w.cfg.ResultSubject
	}
	m := nats.NewMsg(subject)
	m.Header.Set(jetstream.MsgIDHeader, w.outputID(ev.id))
	traceOutput(ev, rec.Outcome, m.Header) // trace.go: the event's trace context
	m.Data = rec.Body
	return m
}

// outputID is the Nats-Msg-Id of an event's outputs: its id or, for a fallback id, the id and
// the input stream's creation time, so that a stream deleted and made again within the dedup
// window never has a new event's outcome dropped as a duplicate of an old one's.
func (w *Worker) outputID(id eventID) string {
	if !id.fallback {
		return id.value
	}
	return id.value + "@" + strconv.FormatInt(w.ledgerNow().streamCreated.UnixNano(), 10)
}
