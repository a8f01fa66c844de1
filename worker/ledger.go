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

// ledger is the idempotency record of every event, kept in a JetStream key-value bucket:
// its final outcome, or the claim of the process working on it (claim.go). It is what lets a
// redelivered event be answered without a second create.
type ledger struct {
	kv            jetstream.KeyValue
	streamCreated time.Time
}

// ledgerNow is the ledger as of the last setup: a recreated input stream changes it.
func (w *Worker) ledgerNow() *ledger { return w.ledger.Load() }

// record is what the ledger keeps per event: the body that was (or is about to be) published
// and where it goes; or, without an outcome, a claim.
type record struct {
	Outcome Outcome         `json:"outcome,omitempty"`
	Body    json.RawMessage `json:"body,omitempty"`
	// StreamCreated ties a record made for a fallback id (<stream>-<seq>) to one incarnation
	// of the input stream: a recreated stream reuses sequence numbers for other events.
	StreamCreated *time.Time  `json:"streamCreated,omitempty"`
	Claim         *claimState `json:"claim,omitempty"`
}

// claimState is a claim record: held by Owner until Until, or released (no Owner) with word
// of whether a create of the event may have been sent.
type claimState struct {
	Owner string    `json:"owner,omitempty"`
	Until time.Time `json:"until,omitzero"`
	Sent  bool      `json:"sent,omitempty"`
}

// done says the record holds the event's final outcome.
func (r record) done() bool { return r.Outcome != "" }

// ledgerKey hashes the event id because an id may hold any characters and key-value keys may not.
func ledgerKey(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(sum[:])
}

// get returns the record of an event, if one counts for it, and the key's revision (0 when
// the key does not exist), for a compare-and-set write.
func (l *ledger) get(ctx context.Context, id eventID) (record, uint64, error) {
	e, err := l.kv.Get(ctx, ledgerKey(id.key()))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return record{}, 0, nil
	}
	if err != nil {
		return record{}, 0, fmt.Errorf("ledger get: %w", err)
	}
	var r record
	if err := json.Unmarshal(e.Value(), &r); err != nil {
		return record{}, 0, fmt.Errorf("ledger record: %w", err)
	}
	if id.fallback && (r.StreamCreated == nil || !r.StreamCreated.Equal(l.streamCreated)) {
		return record{}, e.Revision(), nil // another event's, from an earlier stream
	}
	return r, e.Revision(), nil
}

// write stores r if the key is still at revision rev (0: does not exist), and returns the new
// revision; jetstream.ErrKeyExists or ErrKeyRevisionMismatch when someone wrote first.
func (l *ledger) write(ctx context.Context, id eventID, r record, rev uint64) (uint64, error) {
	l.stamp(id, &r)
	data, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("ledger record: %w", err)
	}
	if rev == 0 {
		rev, err = l.kv.Create(ctx, ledgerKey(id.key()), data)
	} else {
		rev, err = l.kv.Update(ctx, ledgerKey(id.key()), data, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("ledger write: %w", err)
	}
	return rev, nil
}

// put stores an event's outcome, whatever the key holds: an outcome is final.
func (l *ledger) put(ctx context.Context, id eventID, r record) error {
	l.stamp(id, &r)
	if _, err := l.kv.Put(ctx, ledgerKey(id.key()), r.encode()); err != nil {
		return fmt.Errorf("ledger put: %w", err)
	}
	return nil
}

func (l *ledger) stamp(id eventID, r *record) {
	if id.fallback {
		t := l.streamCreated
		r.StreamCreated = &t
	}
}

// encode writes an outcome record as json.Marshal would, without scanning Body again: it is
// JSON the worker has just encoded, and validating and compacting it once more per event
// showed in the CPU profile of `hwstate bench`.
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
