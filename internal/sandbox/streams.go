package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/worker"
)

// ConfigOK is a hardware configuration id the emulator creates user states for.
const ConfigOK = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"

// Event is a valid event body for the configuration, distinct per i.
func Event(config string, i int) []byte {
	return fmt.Appendf(nil, `{"hardwareConfigurationId":%q,"userState":{"upn":"u%d@contoso.com","userEmail":"u%d@contoso.com","userName":"User %d","lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":%d}}`,
		config, i, i, i, i%100)
}

// CreateInputStream makes the input stream as the worker would, with the given duplicate
// window, so that events can wait in it before a worker starts.
func CreateInputStream(ctx context.Context, js jetstream.JetStream, duplicates time.Duration) (jetstream.Stream, error) {
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject},
		Storage: jetstream.FileStorage, Duplicates: duplicates,
	})
	if err != nil {
		return nil, fmt.Errorf("input stream: %w", err)
	}
	return s, nil
}

// Publish publishes one event body with its event id (none when empty), acknowledged by the
// stream.
func Publish(ctx context.Context, js jetstream.JetStream, subject, id string, body []byte) error {
	m := nats.NewMsg(subject)
	m.Data = body
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	_, err := js.PublishMsg(ctx, m)
	return err
}

// PublishAll publishes body(i) with the event id ids[i] to the input subject, at perSecond
// (0: as fast as JetStream takes them), and returns once the stream has acknowledged every
// one.
func PublishAll(ctx context.Context, js jetstream.JetStream, ids []string, body func(i int) []byte, perSecond float64) error {
	return PublishAllTo(ctx, js, worker.DefaultSubject, ids, body, perSecond)
}

// PublishAllTo is PublishAll to another subject (a tenant's, in multi-tenant mode).
func PublishAllTo(ctx context.Context, js jetstream.JetStream, subject string, ids []string, body func(i int) []byte, perSecond float64) error {
	// Acks are awaited a chunk at a time: below nats.go's bound on pending async publishes
	// (4,000 by default), beyond which a publish fails instead of waiting.
	const chunk = 1000
	n := len(ids)
	start := time.Now()
	for i := 0; i < n; {
		end := min(i+chunk, n)
		for perSecond > 0 {
			// Whatever is due by now, so a late wake-up on a busy machine catches up instead
			// of lowering the arrival rate.
			if due := min(n, int(perSecond*time.Since(start).Seconds())+1); due > i {
				end = min(end, due)
				break
			}
			if err := sleep(ctx, 5*time.Millisecond); err != nil {
				return err
			}
		}
		acks := make([]jetstream.PubAckFuture, 0, end-i)
		for ; i < end; i++ {
			m := nats.NewMsg(subject)
			m.Data = body(i)
			m.Header.Set(jetstream.MsgIDHeader, ids[i])
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publish %s: %w", ids[i], err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish %s: %w", f.Msg().Header.Get(jetstream.MsgIDHeader), err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// Count is how many messages the streams hold together; a stream not made yet holds none.
func Count(ctx context.Context, js jetstream.JetStream, streams ...string) (uint64, error) {
	var n uint64
	for _, name := range streams {
		s, err := js.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("stream %s: %w", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return 0, fmt.Errorf("stream %s: %w", name, err)
		}
		n += info.State.Msgs
	}
	return n, nil
}

// Outputs are the streams the worker publishes an event's outcome into: results and dead
// letters.
var Outputs = []string{worker.DefaultResultStream, worker.DefaultDLQStream}

// Each calls fn for every message now in the stream, oldest first, with an ordered
// consumer that leaves nothing behind on the server.
func Each(ctx context.Context, js jetstream.JetStream, stream string, fn func(jetstream.Msg) error) error {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("stream %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			if err := fn(msg); err != nil {
				return err
			}
			meta, err := msg.Metadata()
			// NumPending 0: nothing follows, also when the last messages were deleted (a
			// redrive), which would otherwise cost a pull's wait to find out.
			if err == nil && (meta.Sequence.Stream >= last || meta.NumPending == 0) {
				return nil
			}
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		if n == 0 {
			return nil // the rest was removed while reading
		}
	}
}

// Outcomes is what the result and DLQ streams hold, by event id.
type Outcomes struct {
	Results     map[string][]worker.Result
	DeadLetters map[string][]worker.DeadLetter
	// WrongIDs lists the outcomes whose Nats-Msg-Id is not their event id, the id that
	// drops a republish as a duplicate.
	WrongIDs []string
}

// ReadOutcomes reads every result and dead letter back.
func ReadOutcomes(ctx context.Context, js jetstream.JetStream) (Outcomes, error) {
	return ReadOutcomesOf(ctx, js, worker.DefaultResultStream, worker.DefaultDLQStream)
}

// ReadOutcomesOf reads every result and dead letter back from a worker's own result and DLQ
// streams (one configured with other names).
func ReadOutcomesOf(ctx context.Context, js jetstream.JetStream, resultStream, dlqStream string) (Outcomes, error) {
	o := Outcomes{Results: map[string][]worker.Result{}, DeadLetters: map[string][]worker.DeadLetter{}}
	if err := collect(ctx, js, resultStream, func(r worker.Result) string { return r.EventID }, o.Results, &o.WrongIDs); err != nil {
		return o, err
	}
	err := collect(ctx, js, dlqStream, func(d worker.DeadLetter) string { return d.EventID }, o.DeadLetters, &o.WrongIDs)
	return o, err
}

func collect[T any](ctx context.Context, js jetstream.JetStream, stream string, eventID func(T) string, by map[string][]T, wrong *[]string) error {
	err := Each(ctx, js, stream, func(m jetstream.Msg) error {
		var v T
		if err := json.Unmarshal(m.Data(), &v); err != nil {
			return fmt.Errorf("%s: %s: %w", stream, m.Data(), err)
		}
		id := eventID(v)
		// A fallback id (<stream>-<seq>) is followed by the input stream's creation time.
		if got := m.Headers().Get(jetstream.MsgIDHeader); got != id && !(strings.HasPrefix(id, worker.DefaultStream+"-") && strings.HasPrefix(got, id+"@")) {
			*wrong = append(*wrong, fmt.Sprintf("%s: Nats-Msg-Id %q for event %q", stream, got, id))
		}
		by[id] = append(by[id], v)
		return nil
	})
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	return err
}
