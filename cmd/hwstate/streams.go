package main

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// eachMessage calls fn for every message now in the stream, oldest first, with an ordered
// consumer that leaves nothing behind on the server.
func eachMessage(ctx context.Context, js jetstream.JetStream, stream string, fn func(jetstream.Msg) error) error {
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

// publishEvent publishes one event body with its event id, acknowledged by the stream.
func publishEvent(ctx context.Context, js jetstream.JetStream, subject, id string, body []byte) error {
	m := nats.NewMsg(subject)
	m.Data = body
	if id != "" {
		m.Header.Set(jetstream.MsgIDHeader, id)
	}
	_, err := js.PublishMsg(ctx, m)
	return err
}

// streamMsgs is how many messages a stream holds.
func streamMsgs(ctx context.Context, js jetstream.JetStream, name string) (uint64, error) {
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}
