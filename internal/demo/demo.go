// Package demo runs the whole pipeline on this machine with nothing configured: the sandbox
// (embedded JetStream and the Graph emulator), a worker, sample events of every kind, and a
// summary that accounts for each event's outcome; then a worker in multi-tenant mode writing
// into three tenants side by side, one throttled hard and one refusing.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// Configuration ids the demo's emulator treats specially.
const (
	notFoundID   = "00000000-0000-4000-8000-000000000404"
	rejectID     = "00000000-0000-4000-8000-000000000400"
	failingID    = "00000000-0000-4000-8000-000000000503"
	throttleID   = "00000000-0000-4000-8000-000000000429"
	backgroundID = "7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a"
	failing      = 5  // events on failingID
	burst        = 50 // events published at once, each second, as producers might
)

// sample is one demo event and the outcome it should reach.
type sample struct {
	id   string
	body []byte
	want worker.Outcome
	note string
}

// Config is what a demo run may change.
type Config struct {
	// Events is the number of valid events to create; the invalid, rejected and failing
	// ones come on top.
	Events int
	// TenantEvents is the number of events published to each tenant of the multi-tenant
	// part; 0: 30.
	TenantEvents int
	// Log receives the worker's log; nil: none.
	Log *zap.Logger
}

// Run runs the demo, writing what it does and the summaries to w. It fails when an event did
// not reach its expected outcome exactly once.
func Run(ctx context.Context, cfg Config, w io.Writer) error {
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	log := cfg.Log
	// Graph throttles the first create on one configuration (429 with Retry-After), does not
	// know one, rejects creates on another, and always fails on a fourth.
	sb, err := sandbox.New(sandbox.WithEmulator(emulator.Config{
		RetryAfter:  500 * time.Millisecond,
		NotFoundIDs: []string{notFoundID}, RejectIDs: []string{rejectID},
		FailIDs: []string{failingID}, ThrottleIDs: []string{throttleID},
	}))
	if err != nil {
		return err
	}
	defer sb.Close()

	client := sb.Client(10 * time.Second)
	wcfg := worker.Config{Rate: 100, Burst: 10, Concurrency: 32, AckWait: 30 * time.Second}
	running, err := sb.StartWorker(ctx, client, wcfg, worker.WithLogger(log),
		worker.WithBackoff(50*time.Millisecond, 500*time.Millisecond), worker.WithBreakerTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer func() { _ = running.Stop(context.Background()) }()

	samples := sampleEvents(cfg.Events)
	fmt.Fprintf(w, "hwstate demo: embedded JetStream at %s, Graph emulator at %s (worker rate 100 creates/s)\n", sb.NATSURL, client.BaseURL)
	fmt.Fprintf(w, "publishing %d sample events...\n", len(samples))
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i, s := range samples {
		if i > 0 && i%burst == 0 {
			<-tick.C
		}
		if err := sandbox.Publish(ctx, sb.JS, worker.DefaultSubject, s.id, s.body); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if samples, err = waitForOutcomes(ctx, sb.JS, samples, 2*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	if err := running.Stop(ctx); err != nil {
		return err
	}

	got, err := sandbox.ReadOutcomes(ctx, sb.JS)
	if err != nil {
		return err
	}
	if err := summary(w, samples, got, sb.Emulator.Stats(), elapsed); err != nil {
		return err
	}
	return runTenants(ctx, sb, cfg, w)
}

// waitForOutcomes waits until every sample has an outcome. While the dead letters are not all
// in, it publishes a trickle of background events, as production traffic would be: a
// configuration whose creates always fail is told apart from Graph being down only by other
// creates succeeding meanwhile (when nothing else is sent, the breaker holds its events back,
// as in an outage). It returns the samples with the background events added.
func waitForOutcomes(ctx context.Context, js jetstream.JetStream, samples []sample, limit time.Duration) ([]sample, error) {
	var wantResults, wantDLQ uint64
	for _, s := range samples {
		if s.want == worker.Created {
			wantResults++
		} else {
			wantDLQ++
		}
	}
	deadline := time.Now().Add(limit)
	for background := 0; ; {
		results, err := sandbox.Count(ctx, js, worker.DefaultResultStream)
		if err != nil {
			return nil, err
		}
		dlq, err := sandbox.Count(ctx, js, worker.DefaultDLQStream)
		if err != nil {
			return nil, err
		}
		if dlq >= wantDLQ && results >= wantResults {
			return samples, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d events reached an outcome in %s", results+dlq, wantResults+wantDLQ, limit)
		}
		if dlq < wantDLQ {
			background++
			bg := sample{id: fmt.Sprintf("demo-bg-%04d", background), body: sandbox.Event(backgroundID, background),
				want: worker.Created, note: "background traffic"}
			if err := sandbox.Publish(ctx, js, worker.DefaultSubject, bg.id, bg.body); err != nil {
				return nil, fmt.Errorf("publish: %w", err)
			}
			samples = append(samples, bg)
			wantResults++
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// summary tells, per outcome, how many events were expected to reach it and how many did,
// exactly once.
func summary(w io.Writer, samples []sample, got sandbox.Outcomes, stats emulator.Stats, elapsed time.Duration) error {
	type row struct{ want, got int }
	rows := map[worker.Outcome]*row{}
	notes := map[worker.Outcome]map[string]bool{}
	var wrong []string
	for _, s := range samples {
		if rows[s.want] == nil {
			rows[s.want] = &row{}
			notes[s.want] = map[string]bool{}
		}
		rows[s.want].want++
		notes[s.want][s.note] = true
		results, dead := got.Results[s.id], got.DeadLetters[s.id]
		outcome := worker.Created
		if len(dead) > 0 {
			outcome = dead[0].Reason
		}
		switch copies := len(results) + len(dead); {
		case copies == 0:
			wrong = append(wrong, fmt.Sprintf("%s (%s): no outcome", s.id, s.note))
		case outcome != s.want || copies != 1:
			wrong = append(wrong, fmt.Sprintf("%s (%s): want %s, got %s x%d", s.id, s.note, s.want, outcome, copies))
		default:
			rows[s.want].got++
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "outcome\texpected\tas expected\twhat the events were")
	for _, o := range []worker.Outcome{worker.Created, worker.InvalidEvent, worker.GraphRejected, worker.RetriesExhausted} {
		r := rows[o]
		if r == nil {
			continue
		}
		var kinds []string
		for k := range notes[o] {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", o, r.want, r.got, strings.Join(kinds, ", "))
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "\nGraph emulator: %d requests, %d created, %d answered 429 (retried), %d answered 5xx, %d duplicate creates\n",
		stats.Requests, stats.Creates, stats.Throttled, stats.ServerErrors, stats.Duplicates)
	fmt.Fprintf(w, "%d events in %s: %.0f events/s (published %d a second)\n",
		len(samples), elapsed.Round(time.Millisecond), float64(len(samples))/elapsed.Seconds(), burst)
	if len(wrong) > 0 || stats.Duplicates > 0 {
		for _, s := range wrong {
			fmt.Fprintln(w, "  MISMATCH", s)
		}
		return errors.New("some events did not reach their expected outcome")
	}
	fmt.Fprintf(w, "every one of the %d events is accounted for, each exactly once with its expected outcome\n", len(samples))
	return nil
}

// sampleEvents makes the valid events and, on top, invalid ones (one per kind of mistake),
// events on a configuration Graph does not know (404) or rejects (400), and events on a
// configuration whose creates always fail (retries exhausted).
func sampleEvents(valid int) []sample {
	var out []sample
	add := func(want worker.Outcome, note string, body string) {
		out = append(out, sample{id: fmt.Sprintf("demo-%04d", len(out)+1), body: []byte(body), want: want, note: note})
	}
	configs := []string{
		"0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33", "5C1B2E3F-0A9D-4E8B-B7C6-D5E4F3A2B1C0",
		"9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
	}
	// The failing ones go first, so that they are retried while the rest flows: a
	// configuration that always fails while the rest of Graph answers is the event's problem;
	// when nothing else is left to send it would look like an outage, which dead-letters
	// nothing.
	for i := range failing {
		add(worker.RetriesExhausted, "Graph failing (503)", event(failingID, i))
	}
	for i := range valid {
		if i%40 == 20 {
			add(worker.Created, "throttled once (429) then created", event(throttleID, i))
			continue
		}
		add(worker.Created, "valid", event(configs[i%len(configs)], i))
	}
	good := event(configs[0], 0)
	for _, bad := range []struct{ note, body string }{
		{"not JSON", `{"hardwareConfigurationId": `},
		{"id not a GUID", strings.Replace(good, configs[0], "not-a-guid", 1)},
		{"id with a path", strings.Replace(good, configs[0], "../../deviceManagement", 1)},
		{"extra property", strings.Replace(good, `{"hardwareConfigurationId"`, `{"tenant":"x","hardwareConfigurationId"`, 1)},
		{"count 5.0", strings.Replace(good, `"failedDeviceCount":1`, `"failedDeviceCount":1.0`, 1)},
		{"count as string", strings.Replace(good, `"failedDeviceCount":1`, `"failedDeviceCount":"1"`, 1)},
		{"negative count", strings.Replace(good, `"failedDeviceCount":1`, `"failedDeviceCount":-1`, 1)},
		{"count over Int32", strings.Replace(good, `"failedDeviceCount":1`, `"failedDeviceCount":2147483648`, 1)},
		{"date without zone", strings.Replace(good, `-08:00"`, `"`, 1)},
		{"empty upn", strings.Replace(good, `"upn":"u0@contoso.com"`, `"upn":""`, 1)},
		{"duplicate key", strings.Replace(good, `"upn":`, `"upn":"x","upn":`, 1)},
		{"trailing data", good + `{}`},
		{"unknown userState property", strings.Replace(good, `"upn":`, `"deviceName":"pc","upn":`, 1)},
		{"missing userState", fmt.Sprintf(`{"hardwareConfigurationId":%q}`, configs[0])},
		{"invalid UTF-8", strings.Replace(good, "User 0", "Us\xffr 0", 1)},
	} {
		for range 2 {
			add(worker.InvalidEvent, bad.note, bad.body)
		}
	}
	for i := range 20 {
		add(worker.GraphRejected, "unknown configuration (404)", event(notFoundID, i))
	}
	for i := range 10 {
		add(worker.GraphRejected, "rejected by Graph (400)", event(rejectID, i))
	}
	return out
}

func event(config string, i int) string { return string(sandbox.Event(config, i)) }
