package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/worker"
)

// Configuration ids the demo's emulator treats specially.
const (
	demoNotFoundID   = "00000000-0000-4000-8000-000000000404"
	demoRejectID     = "00000000-0000-4000-8000-000000000400"
	demoFailingID    = "00000000-0000-4000-8000-000000000503"
	demoThrottleID   = "00000000-0000-4000-8000-000000000429"
	demoBackgroundID = "7d6c5b4a-3f2e-4d1c-8b0a-9f8e7d6c5b4a"
	demoToken        = "demo-token"
	demoFailing      = 5  // events on demoFailingID
	demoBurst        = 50 // events published at once, each second, as producers might
)

// sample is one demo event and the outcome it should reach.
type sample struct {
	id   string
	body []byte
	want worker.Outcome
	note string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	valid := fs.Int("events", 400, "valid events to create (the invalid, rejected and failing ones come on top)")
	logLevel := fs.String("log-level", "error", "worker log level: debug, info, warn, error")
	fs.Usage = flagUsage(fs, stdout, "usage: hwstate demo [flags]\n\nThe whole pipeline on this machine: embedded JetStream, the Graph emulator, sample events, and a summary.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(*logLevel, true, stderr)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "hwstate-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ns, err := startEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ns.Shutdown()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	// Graph throttles the first create on one configuration (429 with Retry-After), does not
	// know one, rejects creates on another, and always fails on a fourth.
	emu := emulator.New(emulator.Config{
		Token: demoToken, RetryAfter: 500 * time.Millisecond,
		NotFoundIDs: []string{demoNotFoundID}, RejectIDs: []string{demoRejectID},
		FailIDs: []string{demoFailingID}, ThrottleIDs: []string{demoThrottleID},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	client := &graph.Client{BaseURL: "http://" + ln.Addr().String() + "/beta", Tokens: graph.StaticToken(demoToken), Timeout: 10 * time.Second}
	cfg := worker.Config{Rate: 100, Burst: 10, Concurrency: 32, AckWait: 30 * time.Second}
	w := worker.New(js, client, cfg, worker.WithLogger(log),
		worker.WithBackoff(50*time.Millisecond, 500*time.Millisecond), worker.WithBreakerTimeout(time.Second))
	wctx, stopWorker := context.WithCancel(ctx)
	defer stopWorker()
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	for !w.Ready() {
		select {
		case err := <-done:
			return fmt.Errorf("worker: %w", err)
		case <-time.After(20 * time.Millisecond):
		}
	}

	samples := demoSamples(*valid)
	fmt.Fprintf(stdout, "hwstate demo: embedded JetStream at %s, Graph emulator at %s (worker rate 100 creates/s)\n", ns.ClientURL(), client.BaseURL)
	fmt.Fprintf(stdout, "publishing %d sample events...\n", len(samples))
	start := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for i, s := range samples {
		if i > 0 && i%demoBurst == 0 {
			<-tick.C
		}
		if err := publishEvent(ctx, js, worker.DefaultSubject, s.id, s.body); err != nil {
			return fmt.Errorf("publish: %w", err)
		}
	}
	if samples, err = waitForOutcomes(ctx, js, samples, 2*time.Minute); err != nil {
		return err
	}
	elapsed := time.Since(start)
	stopWorker()
	if err := <-done; err != nil {
		return err
	}

	got, err := readOutcomes(ctx, js)
	if err != nil {
		return err
	}
	return demoSummary(stdout, samples, got, emu.Stats(), elapsed)
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
		results, err := streamMsgs(ctx, js, worker.DefaultResultStream)
		if err != nil {
			return nil, err
		}
		dlq, err := streamMsgs(ctx, js, worker.DefaultDLQStream)
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
			bg := sample{id: fmt.Sprintf("demo-bg-%04d", background), body: []byte(demoEvent(demoBackgroundID, background)),
				want: worker.Created, note: "background traffic"}
			if err := publishEvent(ctx, js, worker.DefaultSubject, bg.id, bg.body); err != nil {
				return nil, fmt.Errorf("publish: %w", err)
			}
			samples = append(samples, bg)
			wantResults++
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// outcomeOf is what the demo reads back per event id: the outcome and the outputs seen.
type outcomeOf struct {
	outcome worker.Outcome
	copies  int
}

// readOutcomes reads every result and dead letter back, by event id.
func readOutcomes(ctx context.Context, js jetstream.JetStream) (map[string]*outcomeOf, error) {
	got := map[string]*outcomeOf{}
	add := func(id string, o worker.Outcome) {
		if got[id] == nil {
			got[id] = &outcomeOf{outcome: o}
		}
		got[id].copies++
	}
	err := eachMessage(ctx, js, worker.DefaultResultStream, func(m jetstream.Msg) error {
		var r worker.Result
		if err := json.Unmarshal(m.Data(), &r); err != nil {
			return fmt.Errorf("result: %w", err)
		}
		add(r.EventID, worker.Created)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachMessage(ctx, js, worker.DefaultDLQStream, func(m jetstream.Msg) error {
		var d worker.DeadLetter
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		add(d.EventID, d.Reason)
		return nil
	})
	return got, err
}

func demoSummary(w io.Writer, samples []sample, got map[string]*outcomeOf, stats emulator.Stats, elapsed time.Duration) error {
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
		g := got[s.id]
		switch {
		case g == nil:
			wrong = append(wrong, fmt.Sprintf("%s (%s): no outcome", s.id, s.note))
		case g.outcome != s.want || g.copies != 1:
			wrong = append(wrong, fmt.Sprintf("%s (%s): want %s, got %s x%d", s.id, s.note, s.want, g.outcome, g.copies))
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
		len(samples), elapsed.Round(time.Millisecond), float64(len(samples))/elapsed.Seconds(), demoBurst)
	if len(wrong) > 0 || stats.Duplicates > 0 {
		for _, s := range wrong {
			fmt.Fprintln(w, "  MISMATCH", s)
		}
		return errors.New("some events did not reach their expected outcome")
	}
	fmt.Fprintf(w, "every one of the %d events is accounted for, each exactly once with its expected outcome\n", len(samples))
	return nil
}

// demoSamples makes the valid events and, on top, invalid ones (one per kind of mistake),
// events on a configuration Graph does not know (404) or rejects (400), and events on a
// configuration whose creates always fail (retries exhausted).
func demoSamples(valid int) []sample {
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
	for i := range demoFailing {
		add(worker.RetriesExhausted, "Graph failing (503)", demoEvent(demoFailingID, i))
	}
	for i := range valid {
		if i%40 == 20 {
			add(worker.Created, "throttled once (429) then created", demoEvent(demoThrottleID, i))
			continue
		}
		add(worker.Created, "valid", demoEvent(configs[i%len(configs)], i))
	}
	good := demoEvent(configs[0], 0)
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
		{"empty upn", strings.Replace(good, `"upn":"user0@contoso.com"`, `"upn":""`, 1)},
		{"duplicate key", strings.Replace(good, `"upn":`, `"upn":"x","upn":`, 1)},
		{"trailing data", good + `{}`},
		{"unknown userState property", strings.Replace(good, `"upn":`, `"deviceName":"pc","upn":`, 1)},
		{"missing userState", fmt.Sprintf(`{"hardwareConfigurationId":%q}`, configs[0])},
		{"invalid UTF-8", strings.Replace(good, "Ada", "Ad\xff", 1)},
	} {
		for range 2 {
			add(worker.InvalidEvent, bad.note, bad.body)
		}
	}
	for i := range 20 {
		add(worker.GraphRejected, "unknown configuration (404)", demoEvent(demoNotFoundID, i))
	}
	for i := range 10 {
		add(worker.GraphRejected, "rejected by Graph (400)", demoEvent(demoRejectID, i))
	}
	return out
}

func demoEvent(config string, i int) string {
	return fmt.Sprintf(`{"hardwareConfigurationId":%q,"userState":{"upn":"user%d@contoso.com","userEmail":"user%d@contoso.com","userName":"Ada %d","lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00","successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":%d}}`,
		config, i, i, i, i%7)
}
