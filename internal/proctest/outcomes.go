package proctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// IDs are the event ids ev-0 to ev-(n-1).
func IDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%d", i)
	}
	return ids
}

// Publish publishes body(i) with Nats-Msg-Id ids[i] to the default input subject and waits
// until the stream has acknowledged every one.
func Publish(t testing.TB, js jetstream.JetStream, ids []string, body func(i int) []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sandbox.PublishAll(ctx, js, ids, body, 0); err != nil {
		t.Fatal(err)
	}
}

// Outcomes is what the result and DLQ streams hold, by event id.
type Outcomes struct{ sandbox.Outcomes }

// Count is how many messages the result and DLQ streams hold together.
func Count(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	return int(StreamMsgs(t, js, sandbox.Outputs...))
}

// WaitCount waits until the result and DLQ streams hold at least n messages.
func WaitCount(t testing.TB, js jetstream.JetStream, n int, limit time.Duration) {
	t.Helper()
	got := 0
	if !Poll(limit, func() bool { got = Count(t, js); return got >= n }) {
		t.Fatalf("%d of %d outcomes after %s", got, n, limit)
	}
}

// ReadOutcomes reads every result and dead letter back; a message whose Nats-Msg-Id is not
// its event id fails t.
func ReadOutcomes(t testing.TB, js jetstream.JetStream) Outcomes {
	t.Helper()
	o, err := sandbox.ReadOutcomes(context.Background(), js)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range o.WrongIDs {
		t.Errorf("outcome with the wrong Nats-Msg-Id: %s", w)
	}
	return Outcomes{o}
}

// CheckExactlyOnce fails t unless every id has exactly one outcome, a result or a dead
// letter, and nothing else is there.
func (o Outcomes) CheckExactlyOnce(t testing.TB, ids []string) {
	t.Helper()
	want := make(map[string]bool, len(ids))
	bad := 0
	for _, id := range ids {
		want[id] = true
		if n := len(o.Results[id]) + len(o.DeadLetters[id]); n != 1 {
			if bad++; bad <= 10 {
				t.Errorf("%s: %d results and %d dead letters, want exactly one outcome", id, len(o.Results[id]), len(o.DeadLetters[id]))
			}
		}
	}
	for _, m := range []map[string]int{lens(o.Results), lens(o.DeadLetters)} {
		for id := range m {
			if !want[id] {
				t.Errorf("an outcome for %q, which was never published", id)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d events in all without exactly one outcome", bad)
	}
}

func lens[V any](m map[string][]V) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = len(v)
	}
	return out
}

// LedgerKey is the ledger's key for an event id (CONTRACT.md: hex SHA-256 of the id).
func LedgerKey(eventID string) string {
	sum := sha256.Sum256([]byte(eventID))
	return hex.EncodeToString(sum[:])
}

// LedgerKeys are the keys the ledger bucket holds now.
func LedgerKeys(t testing.TB, js jetstream.JetStream) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, worker.DefaultLedgerBucket)
	if err != nil {
		t.Fatalf("ledger bucket: %v", err)
	}
	keys := map[string]bool{}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ledger keys: %v", err)
	}
	for k := range lister.Keys() {
		keys[k] = true
	}
	return keys
}

// StreamMsgs is how many messages the streams hold together: 0 for one not made yet, or
// while a cluster elects its leader (counted on the next look).
func StreamMsgs(t testing.TB, js jetstream.JetStream, streams ...string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := sandbox.Count(ctx, js, streams...)
	if err != nil {
		t.Logf("count: %v", err)
		return 0
	}
	return n
}

// EachMessage calls fn for every message now in the stream, oldest first.
func EachMessage(t testing.TB, js jetstream.JetStream, stream string, fn func(jetstream.Msg)) {
	t.Helper()
	err := sandbox.Each(context.Background(), js, stream, func(m jetstream.Msg) error {
		fn(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
