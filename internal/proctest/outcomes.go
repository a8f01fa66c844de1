package proctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/worker"
)

// ConfigOK is a configuration id the emulator creates user states for.
const ConfigOK = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"

// Event is a valid event body for the configuration, distinct per i.
func Event(config string, i int) []byte {
	return fmt.Appendf(nil, `{"hardwareConfigurationId":%q,"userState":{"upn":"u%d@contoso.com","userEmail":"u%d@contoso.com","userName":"User %d","lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":%d}}`,
		config, i, i, i, i%100)
}

// IDs are the event ids ev-0 to ev-(n-1).
func IDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ev-%d", i)
	}
	return ids
}

// Publish publishes body(i) with Nats-Msg-Id ids[i] to the default input subject, all at
// once, and waits until the stream has acknowledged every one.
func Publish(t testing.TB, js jetstream.JetStream, ids []string, body func(i int) []byte) {
	t.Helper()
	futures := make([]jetstream.PubAckFuture, len(ids))
	for i, id := range ids {
		m := nats.NewMsg(worker.DefaultSubject)
		m.Header.Set(jetstream.MsgIDHeader, id)
		m.Data = body(i)
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		futures[i] = f
	}
	timeout := time.After(60 * time.Second)
	for i, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publish %s: %v", ids[i], err)
		case <-timeout:
			t.Fatalf("publish: %s not acknowledged in 60s", ids[i])
		}
	}
}

// Outcomes is what the result and DLQ streams hold, by event id.
type Outcomes struct {
	Results     map[string][]worker.Result
	DeadLetters map[string][]worker.DeadLetter
}

// Count is how many messages the result and DLQ streams hold together.
func Count(t testing.TB, js jetstream.JetStream) int {
	t.Helper()
	return int(streamMsgs(t, js, worker.DefaultResultStream) + streamMsgs(t, js, worker.DefaultDLQStream))
}

// WaitCount waits until the result and DLQ streams hold at least n messages.
func WaitCount(t testing.TB, js jetstream.JetStream, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		got := Count(t, js)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d outcomes after %s", got, n, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ReadOutcomes reads every result and dead letter back; a message whose Nats-Msg-Id is not
// its event id fails t.
func ReadOutcomes(t testing.TB, js jetstream.JetStream) Outcomes {
	t.Helper()
	o := Outcomes{Results: map[string][]worker.Result{}, DeadLetters: map[string][]worker.DeadLetter{}}
	EachMessage(t, js, worker.DefaultResultStream, func(m jetstream.Msg) {
		var r worker.Result
		unmarshal(t, m, &r, func() string { return r.EventID })
		o.Results[r.EventID] = append(o.Results[r.EventID], r)
	})
	EachMessage(t, js, worker.DefaultDLQStream, func(m jetstream.Msg) {
		var d worker.DeadLetter
		unmarshal(t, m, &d, func() string { return d.EventID })
		o.DeadLetters[d.EventID] = append(o.DeadLetters[d.EventID], d)
	})
	return o
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

func streamMsgs(t testing.TB, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0 // not made yet, or the cluster is electing: counted on the next look
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// EachMessage calls fn for every message now in the stream, oldest first.
func EachMessage(t testing.TB, js jetstream.JetStream, stream string, fn func(jetstream.Msg)) {
	t.Helper()
	n := streamMsgs(t, js, stream)
	if n == 0 {
		return
	}
	ctx := context.Background()
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("read %s: %v", stream, err)
	}
	for seen := uint64(0); seen < n; {
		batch, err := cons.Fetch(int(min(n-seen, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
		for m := range batch.Messages() {
			fn(m)
			seen++
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("read %s: %v", stream, err)
		}
	}
}

// unmarshal decodes an outcome and checks it carries its event id as Nats-Msg-Id, which is
// what drops a republish as a duplicate.
func unmarshal(t testing.TB, m jetstream.Msg, v any, eventID func() string) {
	t.Helper()
	if err := json.Unmarshal(m.Data(), v); err != nil {
		t.Fatalf("outcome %s: %v", m.Data(), err)
	}
	if got := m.Headers().Get(jetstream.MsgIDHeader); got != eventID() {
		t.Errorf("outcome with Nats-Msg-Id %q for event %q", got, eventID())
	}
}
