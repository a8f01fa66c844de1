package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ledger is the idempotency record of every event's final outcome, kept in a JetStream
// key-value bucket. It is what lets a redelivered event be answered without a second create.
type ledger struct {
	kv            jetstream.KeyValue
	streamCreated time.Time
}

// record is what the ledger keeps per event: the body that was (or is about to be) published
// and where it goes.
type record struct {
	Outcome Outcome         `json:"outcome"`
	Body    json.RawMessage `json:"body"`
	// StreamCreated ties a record made for a fallback id (<stream>-<seq>) to one incarnation
	// of the input stream: a recreated stream reuses sequence numbers for other events.
	StreamCreated *time.Time `json:"streamCreated,omitempty"`
}

// ledgerKey hashes the event id because an id may hold any characters and key-value keys may not.
func ledgerKey(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(sum[:])
}

// get returns the record of an event, if one counts for it.
func (l *ledger) get(ctx context.Context, id eventID) (record, bool, error) {
	e, err := l.kv.Get(ctx, ledgerKey(id.value))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, false, nil
	}
	if err != nil {
		return record{}, false, fmt.Errorf("ledger get: %w", err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, false, fmt.Errorf("ledger record: %w", err)
	}
	if id.fallback && (r.StreamCreated == nil || !r.StreamCreated.Equal(l.streamCreated)) {
		return record{}, false, nil
	}
	return r, true, nil
}

func (l *ledger) put(ctx context.Context, id eventID, r record) error {
	if id.fallback {
		t := l.streamCreated
		r.StreamCreated = &t
	}
	if _, err := l.kv.Put(ctx, ledgerKey(id.value), r.encode()); err != nil {
		return fmt.Errorf("ledger put: %w", err)
	}
	return nil
}

// encode writes the record as json.Marshal would, without scanning Body again: it is JSON
// the worker has just encoded, and validating and compacting it once more per event showed
// in the CPU profile of `hwstate bench`.
func (r record) encode() []byte {
	b := make([]byte, 0, len(r.Body)+96)
	b = append(b, `{"outcome":"`...)
	b = append(b, r.Outcome...) // one of the Outcome constants: nothing to escape
	b = append(b, `","body":`...)
	b = append(b, r.Body...)
	if r.StreamCreated != nil {
		b = append(b, `,"streamCreated":"`...)
		b = r.StreamCreated.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	return append(b, '}')
}
