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

// setup makes sure the streams and the ledger bucket exist, and refuses a configuration that
// would feed the worker its own output. The lanes' consumers are made by bindLane.
func (w *Worker) setup(ctx context.Context) error {
	c := w.cfg
	input := w.inputSubject()
	for _, out := range []string{c.ResultSubject, c.DLQSubject} {
		if subjectsOverlap(input, out) {
			return fmt.Errorf("input subject %q would also capture %q: choose subjects that do not overlap", input, out)
		}
	}

	in, err := w.js.Stream(ctx, c.Stream)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		in, err = w.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:     c.Stream,
			Subjects: []string{input},
			// Bounded: an event is kept only until its outcome is recorded and acked. Not
			// interest retention, under which deleting the consumer deletes the events.
			Retention:  jetstream.WorkQueuePolicy,
			Storage:    c.storage(),
			Replicas:   c.Replicas,
			Duplicates: outputDuplicates,
		})
		if err != nil {
			return fmt.Errorf("create input stream %s: %w", c.Stream, err)
		}
	case err != nil:
		return fmt.Errorf("look up input stream %s: %w", c.Stream, err)
	}
	info, err := in.Info(ctx)
	if err != nil {
		return fmt.Errorf("input stream %s info: %w", c.Stream, err)
	}
	// The stream may have been made by producers with wider subjects than ours.
	for _, s := range info.Config.Subjects {
		for _, out := range []string{c.ResultSubject, c.DLQSubject} {
			if subjectsOverlap(s, out) {
				return fmt.Errorf("input stream %s subject %q would also capture %q", c.Stream, s, out)
			}
		}
	}
	if !captures(info.Config.Subjects, input) {
		return fmt.Errorf("input stream %s captures %q, not %q: add that subject to the stream", c.Stream,
			info.Config.Subjects, input)
	}
	streamCreated := info.Created

	for _, out := range []struct{ name, subject string }{
		{c.ResultStream, c.ResultSubject},
		{c.DLQStream, c.DLQSubject},
	} {
		if err := w.ensureOutputStream(ctx, out.name, out.subject); err != nil {
			return err
		}
	}

	kv, err := w.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      c.LedgerBucket,
		Description: "hwstate idempotency ledger: the final outcome of each event id",
		TTL:         c.LedgerTTL,
		Storage:     c.storage(),
		Replicas:    c.Replicas,
	})
	if err != nil {
		return fmt.Errorf("ledger bucket %s: %w", c.LedgerBucket, err)
	}
	w.ledger.Store(&ledger{kv: kv, streamCreated: streamCreated})
	return nil
}

// inputSubject is what the input stream captures: HWSTATE_SUBJECT, or in multi-tenant mode
// every tenant's subject under it.
func (w *Worker) inputSubject() string {
	if w.opts.tenants != nil {
		return w.cfg.Subject + ".>"
	}
	return w.cfg.Subject
}

// captures says whether a stream with these subjects captures every subject matching want.
func captures(subjects []string, want string) bool {
	for _, s := range subjects {
		if subjectCovers(s, want) {
			return true
		}
	}
	return false
}

// subjectCovers reports whether every subject matching b also matches a.
func subjectCovers(a, b string) bool {
	at, bt := strings.Split(a, "."), strings.Split(b, ".")
	for i, t := range at {
		switch {
		case t == ">":
			return i < len(bt)
		case i == len(bt):
			return false
		case t == "*" && bt[i] != ">":
			continue
		case t != bt[i]:
			return false
		}
	}
	return len(at) == len(bt)
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
