package worker_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/schema"
	"github.com/hwstate/hwstate/worker"
)

func TestHappyPathCreatesEachEventOnce(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	h.start()
	const n = 200
	for i := range n {
		h.publish(fmt.Sprintf("ev-%d", i), event(configOK, i))
	}
	out := h.waitOutputs(n, 30*time.Second)
	if len(out.dlq) != 0 {
		t.Fatalf("dead letters: %v", out.dlq)
	}
	for i := range n {
		h.checkCreatedOnce(out, fmt.Sprintf("ev-%d", i), i)
	}
	if s := h.emu.Stats(); s.Creates != n || s.Duplicates != 0 {
		t.Errorf("emulator: %+v", s)
	}
}

// Each section-1 rule breaks one event; the decoder's own tests cover every rule in depth,
// this shows each kind of mistake routed to the DLQ with its original and never sent to Graph.
func TestInvalidEventsAreDeadLetteredWithTheirOriginal(t *testing.T) {
	good := string(event(configOK, 1))
	replace := func(old, new string) string {
		if !strings.Contains(good, old) {
			t.Fatalf("test table: %q not in the event", old)
		}
		return strings.Replace(good, old, new, 1)
	}
	cases := []struct{ name, body string }{
		{"not JSON", `{"hardwareConfigurationId":`},
		{"not an object", `[1,2]`},
		{"extra top-level property", replace(`{"hardwareConfigurationId"`, `{"x":1,"hardwareConfigurationId"`)},
		{"missing hardwareConfigurationId", replace(`"hardwareConfigurationId":"`+configOK+`",`, ``)},
		{"id not a GUID", replace(configOK, "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c3")},
		{"id with a path", replace(configOK, "../../users")},
		{"missing userState", fmt.Sprintf(`{"hardwareConfigurationId":%q}`, configOK)},
		{"missing upn", replace(`"upn":"u1@contoso.com",`, ``)},
		{"empty userName", replace(`"userName":"User 1"`, `"userName":""`)},
		{"control character", replace(`"userName":"User 1"`, `"userName":"User\u00071"`)},
		{"string too long", replace(`"userName":"User 1"`, `"userName":"`+strings.Repeat("x", 1025)+`"`)},
		{"date without zone", replace(`-08:00"`, `"`)},
		{"date with 8 fraction digits", replace(`.4418045`, `.44180451`)},
		{"count 5.0", replace(`"successfulDeviceCount":5`, `"successfulDeviceCount":5.0`)},
		{"count as string", replace(`"successfulDeviceCount":5`, `"successfulDeviceCount":"5"`)},
		{"count -1", replace(`"successfulDeviceCount":5`, `"successfulDeviceCount":-1`)},
		{"count over Int32", replace(`"successfulDeviceCount":5`, `"successfulDeviceCount":2147483648`)},
		{"missing count", replace(`"errorDeviceCount":0,`, ``)},
		{"wrong @odata.type", replace(`"upn"`, `"@odata.type":"#microsoft.graph.user","upn"`)},
		{"unknown userState property", replace(`"upn"`, `"deviceName":"pc","upn"`)},
		{"duplicate key", replace(`"upn"`, `"upn":"a@b.c","upn"`)},
		{"trailing data", good + ` {}`},
		{"invalid UTF-8", replace(`User 1`, "User \xff")},
		{"over 64 KiB", replace(`"upn"`, `"pad":"`+strings.Repeat("x", schema.MaxEventSize)+`","upn"`)},
	}
	h := newHarness(t, emulator.Config{})
	h.start()
	for i, c := range cases {
		h.publish(fmt.Sprintf("bad-%d", i), []byte(c.body))
	}
	out := h.waitOutputs(len(cases), 30*time.Second)
	for i, c := range cases {
		id := fmt.Sprintf("bad-%d", i)
		ds := out.dlq[id]
		if len(ds) != 1 || len(out.results[id]) != 0 {
			t.Errorf("%s: %d dead letters, %d results", c.name, len(ds), len(out.results[id]))
			continue
		}
		d := ds[0]
		if d.Reason != worker.InvalidEvent || d.Error == "" || d.Attempts != 0 || d.HTTPStatus != 0 ||
			d.Stream != worker.DefaultStream || d.StreamSequence == 0 || d.Subject != worker.DefaultSubject || d.FailedAt.IsZero() {
			t.Errorf("%s: dead letter %+v", c.name, d)
		}
		original := []byte(nil)
		if d.Original != nil {
			original = []byte(*d.Original)
		} else {
			original, _ = base64.StdEncoding.DecodeString(d.OriginalBase64)
		}
		if string(original) != c.body {
			t.Errorf("%s: original not kept (%d bytes, want %d)", c.name, len(original), len(c.body))
		}
	}
	if d := out.dlq[fmt.Sprintf("bad-%d", len(cases)-2)]; len(d) == 1 && d[0].OriginalBase64 == "" {
		t.Error("invalid UTF-8 original should be base64")
	}
	if s := h.emu.Stats(); s.Requests != 0 {
		t.Errorf("invalid events reached Graph: %+v", s)
	}
}

func TestGraphAnswers(t *testing.T) {
	cases := []struct {
		name, config string
		emu          emulator.Config
		maxAttempts  int
		want         worker.Outcome
		status       int
		code         string
		attempts     int
	}{
		{name: "404 unknown configuration", emu: emulator.Config{NotFoundIDs: []string{configNotFound}},
			config: configNotFound, want: worker.GraphRejected, status: 404, code: "ResourceNotFound", attempts: 1},
		{name: "400 rejected", emu: emulator.Config{RejectIDs: []string{configReject}},
			config: configReject, want: worker.GraphRejected, status: 400, code: "BadRequest", attempts: 1},
		{name: "429 twice then created", emu: emulator.Config{ThrottleFirst: 2, RetryAfter: 50 * time.Millisecond},
			config: configOK, want: worker.Created, status: 201, attempts: 3},
		{name: "503 twice then created", emu: emulator.Config{FailFirst: 2, FailStatus: 503},
			config: configOK, want: worker.Created, status: 201, attempts: 3},
		{name: "500 then created", emu: emulator.Config{FailFirst: 1, FailStatus: 500},
			config: configOK, want: worker.Created, status: 201, attempts: 2},
		{name: "429 without Retry-After, then created", emu: emulator.Config{ThrottleFirst: 1, OmitRetryAfter: true},
			config: configOK, want: worker.Created, status: 201, attempts: 2},
		// 504 is ambiguous: each create is followed by a lookup, which finds nothing.
		{name: "504 until max attempts", emu: emulator.Config{FailIDs: []string{configFail}, FailStatus: 504},
			config: configFail, maxAttempts: 3, want: worker.RetriesExhausted, status: 504, attempts: 3},
		{name: "429 until max attempts", emu: emulator.Config{ThrottleFirst: 100, RetryAfter: 10 * time.Millisecond},
			config: configOK, maxAttempts: 2, want: worker.RetriesExhausted, status: 429, code: "TooManyRequests", attempts: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, c.emu)
			h.cfg.MaxAttempts = c.maxAttempts
			h.start()
			h.publish("ev", event(c.config, 1))
			out := h.waitOutputs(1, 30*time.Second)
			if c.want == worker.Created {
				rs := out.results["ev"]
				if len(rs) != 1 || rs[0].Status != c.status || rs[0].Attempts != c.attempts {
					t.Fatalf("results %+v, want one with status %d after %d attempts", rs, c.status, c.attempts)
				}
				return
			}
			ds := out.dlq["ev"]
			if len(ds) != 1 {
				t.Fatalf("dead letters %+v, results %+v", ds, out.results)
			}
			d := ds[0]
			if d.Reason != c.want || d.HTTPStatus != c.status || d.Attempts != c.attempts || d.GraphRequestID == "" {
				t.Errorf("dead letter %+v, want %s status %d attempts %d", d, c.want, c.status, c.attempts)
			}
			if c.code != "" && (d.GraphError == nil || d.GraphError.Code != c.code || d.GraphError.Message == "") {
				t.Errorf("graphError %+v, want code %s", d.GraphError, c.code)
			}
			if d.Original == nil || *d.Original != string(event(c.config, 1)) {
				t.Errorf("original %v", d.Original)
			}
		})
	}
}

func TestRetryAfterIsHonouredByEverySender(t *testing.T) {
	h := newHarness(t, emulator.Config{ThrottleFirst: 1, RetryAfter: time.Second})
	h.start()
	start := time.Now()
	for i := range 5 {
		h.publish(fmt.Sprintf("ev-%d", i), event(configOK, i))
	}
	out := h.waitOutputs(5, 30*time.Second)
	if elapsed := time.Since(start); elapsed < time.Second {
		t.Errorf("all done in %s: Retry-After: 1 was not honoured", elapsed)
	}
	for id, rs := range out.results {
		if len(rs) != 1 || rs[0].Attempts != 2 {
			t.Errorf("%s: %+v", id, rs)
		}
	}
	// Five events throttled once each: a worker that paused only the event that drew the
	// 429 would send more, but never fewer, than ten requests.
	if s := h.emu.Stats(); s.Requests != 10 || s.Throttled != 5 {
		t.Errorf("emulator %+v", s)
	}
}

func TestEventIDFallsBackToStreamAndSequence(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	h.start()
	h.publish("", event(configOK, 1))
	out := h.waitOutputs(1, 30*time.Second)
	id := worker.DefaultStream + "-1"
	if len(out.results[id]) != 1 {
		t.Fatalf("results %+v, want one for %s", out.results, id)
	}
	if got := out.results[id][0].ClientRequestID; got != graph.ClientRequestID(id) {
		t.Errorf("client-request-id %s", got)
	}
}

func TestStartRefusesSubjectsThatCaptureOutput(t *testing.T) {
	for _, subject := range []string{"hwstate.>", "hwstate.userstate.*", ">"} {
		t.Run(subject, func(t *testing.T) {
			h := newHarness(t, emulator.Config{})
			h.cfg.Subject = subject
			w := worker.New(h.js, h.client, h.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := w.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), "capture") {
				t.Fatalf("Run: %v, want a refusal", err)
			}
		})
	}
}

// A 401 is the worker's credentials, not the event's: nothing is dead-lettered, and the event
// is created once the credentials are right.
func TestUnauthorizedWaitsInsteadOfDeadLettering(t *testing.T) {
	h := newHarness(t, emulator.Config{Token: "the-real-token"})
	h.cfg.MaxAttempts = 2
	h.start()
	h.publish("ev", event(configOK, 1))
	proctest.WaitFor(t, 10*time.Second, "4 requests answered 401", func() bool { return h.emu.Stats().Unauthorized >= 4 })
	if n := h.streamMsgs(worker.DefaultDLQStream); n != 0 {
		t.Fatalf("%d dead letters for a credentials problem", n)
	}
	cfg := h.emu.Config()
	cfg.Token = testToken
	h.emu.SetConfig(cfg)
	out := h.waitOutputs(1, 30*time.Second)
	if len(out.results["ev"]) != 1 {
		t.Fatalf("outputs %+v", out)
	}
}

// While Graph is down the breaker opens: events wait, nothing is dead-lettered even with a
// low MaxAttempts while probes fail one after another, no more requests reach Graph than the
// breaker lets through, and everything is created once it is back.
func TestOutageDeadLettersNothing(t *testing.T) {
	h := newHarness(t, emulator.Config{Outage: true})
	h.cfg.MaxAttempts = 3
	logger, logs := h.observedLogger()
	start := time.Now()
	h.start(worker.WithLogger(logger))
	const n = 50
	for i := range n {
		h.publish(fmt.Sprintf("ev-%d", i), event(configOK, i))
	}
	// The breaker opens once, then each failed probe opens it again: as many failed probes as
	// an event has attempts.
	opens := func() int { return breakerOpens(logs) }
	proctest.WaitFor(t, 30*time.Second, "the breaker to open and MaxAttempts probes to fail", func() bool {
		return opens() >= 1+h.cfg.MaxAttempts
	})
	during, elapsed := h.emu.Stats().Requests, time.Since(start)
	if got := h.streamMsgs(worker.DefaultDLQStream); got != 0 {
		t.Fatalf("%d dead letters during the outage", got)
	}
	// What reaches Graph: the failures that trip the breaker and those already in flight
	// then, and after that one probe per breaker timeout at the most.
	bound := uint64(worker.BreakerMinRequests + h.cfg.Concurrency + int(elapsed/breakerTimeout) + 1)
	if during > bound {
		t.Errorf("%d requests in a %s outage (%d breaker opens): more than the %d the breaker lets through", during, elapsed, opens(), bound)
	}
	cfg := h.emu.Config()
	cfg.Outage = false
	h.emu.SetConfig(cfg)
	out := h.waitOutputs(n, 30*time.Second)
	if len(out.results) != n || len(out.dlq) != 0 {
		t.Fatalf("%d results, %d dead letters", len(out.results), len(out.dlq))
	}
}

// A redelivered event that the ledger knows is answered from it, with no call to Graph.
func TestLedgerAnswersRedeliveries(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	// A stream with limits retention keeps the acked event, so a new consumer delivers it
	// again (the worker's own stream, a work queue, deletes it once acked).
	ctx := context.Background()
	if _, err := h.js.CreateStream(ctx, jetstream.StreamConfig{Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject}}); err != nil {
		t.Fatal(err)
	}
	r := h.start()
	h.publish("ev", event(configOK, 1))
	h.waitOutputs(1, 30*time.Second)
	r.stop(t)

	// Forget the consumer: its replacement delivers the event again from the start.
	s, err := h.js.Stream(ctx, worker.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteConsumer(ctx, worker.DefaultConsumer); err != nil {
		t.Fatal(err)
	}
	before := h.emu.Stats().Requests
	h.start()
	proctest.WaitFor(t, 10*time.Second, "the redelivered event's ack", func() bool {
		info, err := s.Consumer(ctx, worker.DefaultConsumer)
		return err == nil && info.CachedInfo().AckFloor.Stream >= 1
	})
	if after := h.emu.Stats().Requests; after != before {
		t.Errorf("%d requests to Graph for a recorded event", after-before)
	}
	out := h.readOutputs()
	if len(out.results["ev"]) != 1 {
		t.Errorf("results %+v: the republish must be dropped as a duplicate", out.results)
	}
}

// Shutdown mid-flow: what was sent finishes, the rest is handed back, and a new worker
// finishes the job with every event exactly once.
func TestShutdownMidFlowLosesNothing(t *testing.T) {
	h := newHarness(t, emulator.Config{Latency: 20 * time.Millisecond})
	h.cfg.Rate, h.cfg.Burst = 100, 5
	r := h.start()
	const n = 300
	for i := range n {
		h.publish(fmt.Sprintf("ev-%d", i), event(configOK, i))
	}
	proctest.WaitCount(t, h.js, n/10, 30*time.Second)
	r.stop(t)
	if mid := h.streamMsgs(worker.DefaultResultStream); mid == n {
		t.Fatalf("all %d done at shutdown: not mid-flow", n)
	}
	h.start()
	out := h.waitOutputs(n, 60*time.Second)
	for i := range n {
		id := fmt.Sprintf("ev-%d", i)
		if len(out.results[id]) != 1 {
			t.Errorf("%s: %d results", id, len(out.results[id]))
		}
	}
	if s := h.emu.Stats(); s.Duplicates != 0 || s.Creates != n {
		t.Errorf("emulator %+v", s)
	}
}
