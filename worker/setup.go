package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// outputDuplicates is the dedup window of the result and DLQ streams: longer than any
// redelivery delay, so a republish after a crash is dropped.
const outputDuplicates = time.Hour

// setup makes sure the streams, the durable consumer and the ledger bucket exist, and refuses
// a configuration that would feed the worker its own output.
func (w *Worker) setup(ctx context.Context) (jetstream.Consumer, error) {
	c := w.cfg
	for _, out := range []string{c.ResultSubject, c.DLQSubject} {
		if subjectsOverlap(c.Subject, out) {
			return nil, fmt.Errorf("input subject %q would also capture %q: choose subjects that do not overlap", c.Subject, out)
		}
	}

	in, err := w.js.Stream(ctx, c.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		in, err = w.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     c.Stream,
			Subjects: []string{c.Subject},
			// Bounded: an event is kept only until its outcome is recorded and acked. Not
			// interest retention, under which deleting the consumer deletes the events.
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    c.storage(),
			Replicas:   c.Replicas,
			Duplicates: outputDuplicates,
		})
		if err != nil {
			return nil, fmt.Errorf("create input stream %s: %w", c.Stream, err)
		}
	case err != nil:
		return nil, fmt.Errorf("look up input stream %s: %w", c.Stream, err)
	}
	info, err := in.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("input stream %s info: %w", c.Stream, err)
	}
	// The stream may have been made by producers with wider subjects than ours.
	for _, s := range info.Config.Subjects {
		for _, out := range []string{c.ResultSubject, c.DLQSubject} {
			if subjectsOverlap(s, out) {
				return nil, fmt.Errorf("input stream %s subject %q would also capture %q", c.Stream, s, out)
			}
		}
	}
	streamCreated := info.Created

	for _, out := range []struct{ name, subject string }{
		{c.ResultStream, c.ResultSubject},
		{c.DLQStream, c.DLQSubject},
	} {
		if err := w.ensureOutputStream(ctx, out.name, out.subject); err != nil {
			return nil, err
		}
	}

	cons, err := in.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       c.Consumer,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		MaxDeliver:    -1, // handing a message back must never make JetStream drop it
		MaxAckPending: maxAckPending,
		FilterSubject: c.Subject,
		Replicas:      c.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", c.Consumer, c.Stream, err)
	}
	if aw := cons.CachedInfo().Config.AckWait; aw > 0 {
		w.ackWait.Store(int64(aw))
	}

	kv, err := w.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      c.LedgerBucket,
		Description: "hwstate idempotency ledger: the final outcome of each event id",
		TTL:         c.LedgerTTL,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ledger bucket %s: %w", c.LedgerBucket, err)
	}
	w.ledger.Store(&ledger{kv: kv, streamCreated: streamCreated})
	return cons, nil
}

// ensureOutputStream creates a result or DLQ stream when missing and leaves an existing one
// as its operators made it.
func (w *Worker) ensureOutputStream(ctx context.Context, name, subject string) error {
	_, err := w.js.Stream(ctx, name)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", name, err)
	}
	_, err = w.js.CreateStream(ctx, jetstream.StreamConfig{
		Name:       name,
		Subjects:   []string{subject},
		Storage:    w.cfg.storage(),
		Replicas:   w.cfg.Replicas,
		MaxAge:     w.cfg.Retention,
		Duplicates: outputDuplicates,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", name, err)
	}
	return nil
}

// subjectsOverlap reports whether some subject matches both patterns, with NATS wildcards:
// '*' one token, '>' one or more trailing tokens.
func subjectsOverlap(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; ; i++ {
		switch {
		case i == len(at) && i == len(bt):
			return true
		case i == len(at) || i == len(bt):
			return false
		case at[i] == ">" || bt[i] == ">":
			return true
		case at[i] == "*" || bt[i] == "*" || at[i] == bt[i]:
			continue
		default:
			return false
		}
	}
}
