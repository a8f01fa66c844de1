package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
)

// event is one delivery of one event, with what the worker learns about it on its way.
type event struct {
	lane *lane // the tenant's lane it came through
	// listing is the tenant's settings and Graph client as decide found them: a tenants file
	// read again meanwhile changes the lane, not an event already on its way.
	listing *listing
	msg     jetstream.Msg
	meta    *jetstream.MsgMetadata
	id      eventID
	log     *zap.Logger

	// claim is this process's right to send the event's Graph requests (claim.go).
	claim *claim
	// mightExist says Graph may already hold the entity: an earlier delivery or attempt may
	// have created it, so it is looked up before anything is created (reconcile.go).
	mightExist bool
	// attempts counts the creates of this event sent by this process.
	attempts int
	// span is the event's trace span (trace.go).
	span trace.Span
}

// handle is the life of one event, top to bottom: name it, make sure no one else works on
// it and look its outcome up, decide it (validate, reconcile, create), record it, ack. Shutdown
// or a JetStream that cannot be reached first hands it back instead.
func (w *Worker) handle(ctx, hard context.Context, l *lane, msg jetstream.Msg) {
	ev, err := w.receive(l, msg)
	defer w.traceEvent(ctx, ev)() // trace.go: the event's span, until its ack or hand-back
	if err != nil {
		w.log.Error("message without JetStream metadata", zap.Error(err))
		w.handBack(ev)
		return
	}
	release, err := w.claims.local(ctx, ev.id.key()) // claim.go: one delivery at a time here
	if err != nil {
		w.handBack(ev) // shutdown while another delivery of it was being handled
		return
	}
	defer release()

	rec, err := w.claimEvent(ctx, ev) // claim.go: the recorded outcome, or the right to send
	if err != nil {
		ev.log.Warn("ledger unavailable; handing the event back", zap.Error(err))
		w.handBack(ev)
		return
	}
	if rec.done() {
		ev.lane.figures().ledgerHit()
		ev.log.Debug("already done: republishing the recorded outcome", zap.String("outcome", string(rec.Outcome)))
		w.finish(hard, ev, rec, false) // record.go
		return
	}

	rec, ok := w.decide(ctx, hard, ev) // decide.go: validate, reconcile, create
	if !ok {
		w.handBack(ev)
		return
	}
	w.finish(hard, ev, rec, true) // record.go: ledger and output, then ack
}

// eventID names an event: the producer's Nats-Msg-Id or, failing that, its place in the stream.
type eventID struct {
	value string
	// fallback: value is <stream>-<sequence>, which a recreated stream reuses.
	fallback bool
	// tooLong: the producer's id was over maxIDBytes; value is its sha256- form.
	tooLong bool
	// tenant is the tenant token of its subject in multi-tenant mode: ids are the producers'
	// and two tenants' producers may use the same one.
	tenant string
}

// key names the event in the ledger, in claims and in its client-request-id: its id, within
// its tenant.
func (id eventID) key() string {
	if id.tenant == "" {
		return id.value
	}
	return id.tenant + "/" + id.value
}

// maxIDBytes is the longest event id the contract accepts (CONTRACT.md section 1).
const maxIDBytes = 256

func idOf(msg jetstream.Msg, meta *jetstream.MsgMetadata) eventID {
	h := msg.Headers().Get(jetstream.MsgIDHeader)
	switch {
	case h == "":
		return eventID{value: meta.Stream + "-" + strconv.FormatUint(meta.Sequence.Stream, 10), fallback: true}
	case len(h) > maxIDBytes:
		sum := sha256.Sum256([]byte(h))
		return eventID{value: "sha256-" + hex.EncodeToString(sum[:]), tooLong: true}
	}
	return eventID{value: h}
}

// receive names a message delivered through lane l.
func (w *Worker) receive(l *lane, msg jetstream.Msg) (*event, error) {
	ev := &event{lane: l, msg: msg, log: l.log}
	meta, err := msg.Metadata()
	if err != nil {
		return ev, fmt.Errorf("metadata: %w", err)
	}
	ev.meta, ev.id = meta, idOf(msg, meta)
	ev.id.tenant = l.tenant
	// Lazily: most events log nothing, and an eager With encodes the field every time.
	ev.log = l.log.WithLazy(zap.String("event_id", ev.id.value))
	return ev, nil
}

// handBack returns a message to JetStream for immediate redelivery to whoever pulls next,
// leaving word in the ledger of whether a create of it may have been sent.
func (w *Worker) handBack(ev *event) {
	if ev.claim != nil {
		w.releaseClaim(ev)
	}
	if err := ev.msg.Nak(); err != nil {
		ev.log.Warn("hand back failed; redelivered after the ack wait", zap.Error(err))
	}
	traceStep(ev, "handed back")
	w.held.remove(ev.msg)
	ev.lane.figures().handedBack()
}
