package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/hwstate/hwstate/graph"
)

// decide validates an event and takes it through Graph to its final outcome. ok is false when
// shutdown (or a claim taken over) came before the outcome was known: the event is handed back.
func (w *Worker) decide(ctx, hard context.Context, ev *event) (rec record, ok bool) {
	if ev.id.tooLong {
		return w.deadLetter(ev, &DeadLetter{Reason: InvalidEvent,
			Error: fmt.Sprintf("event id (Nats-Msg-Id) longer than %d bytes; its sha256- form stands in for it", maxIDBytes)}), true
	}
	ev.listing = ev.lane.listed.Load()
	parsed, err := decodeFor(ev, ev.msg.Data()) // tenancy.go: in multi-tenant mode, the tenant too
	if err != nil {
		return w.deadLetter(ev, &DeadLetter{Reason: InvalidEvent, Error: err.Error()}), true
	}
	req := graph.Request{
		ConfigurationID: parsed.HardwareConfigurationID,
		ClientRequestID: graph.ClientRequestID(ev.id.key()),
		Body:            parsed.UserState.AppendGraphBody(nil),
	}
	ans, err := w.create(ctx, hard, ev, req, parsed.UserState)
	switch {
	case errors.Is(err, errExhausted):
		dl := &DeadLetter{Reason: RetriesExhausted, Attempts: ev.attempts, Error: err.Error()}
		dl.setAnswer(ans.resp)
		return w.deadLetter(ev, dl), true
	case err != nil:
		return record{}, false
	case ans.resp.Class == graph.Rejected:
		dl := &DeadLetter{Reason: GraphRejected, Attempts: ev.attempts, Error: fmt.Sprintf("Graph answered %d", ans.resp.Status)}
		if e := ans.resp.Error; e != nil {
			dl.Error = fmt.Sprintf("Graph answered %d %s: %s", ans.resp.Status, e.Code, e.Message)
		}
		dl.setAnswer(ans.resp)
		return w.deadLetter(ev, dl), true
	}
	return w.result(ev, parsed.HardwareConfigurationID, req.ClientRequestID, ans), true
}
