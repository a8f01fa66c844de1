package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// scrape is one reading of /metrics: families by name.
type scrape map[string]*dto.MetricFamily

func scrapeMetrics(t *testing.T, url string) scrape {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the value of the series of name with the label (or the only series, for ""); a
// histogram's value is its count. NaN when there is no such series.
func (s scrape) value(name, label, labelValue string) float64 {
	f := s[name]
	if f == nil {
		return math.NaN()
	}
	for _, m := range f.GetMetric() {
		if label != "" && !hasLabel(m, label, labelValue) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return math.NaN()
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func (s scrape) histogramSum(name string) float64 {
	if f := s[name]; f != nil && len(f.GetMetric()) == 1 && f.GetMetric()[0].Histogram != nil {
		return f.GetMetric()[0].Histogram.GetSampleSum()
	}
	return math.NaN()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestMetricsMoveAsEventsFlow runs `hwstate run` against a JetStream server and the Graph
// emulator and reads /metrics over HTTP while events flow: every figure must move the way the
// events do.
func TestMetricsMoveAsEventsFlow(t *testing.T) {
	const (
		failing   = "00000000-0000-4000-8000-000000000503"
		throttled = "00000000-0000-4000-8000-000000000429"
	)
	// The first create of each event on one configuration draws a 429, so throttling shows;
	// one configuration is unknown (404), one always fails (503). The latency keeps creates
	// in flight long enough to be seen.
	e := newToolEnv(t, emulator.Config{
		RetryAfter: 50 * time.Millisecond, Latency: 20 * time.Millisecond,
		ThrottleIDs: []string{throttled}, NotFoundIDs: []string{dlqNotFound}, FailIDs: []string{failing},
	})
	// A short duplicate window lets the test publish an event id again later, as a producer
	// retrying after the window would: the worker must answer it from the ledger.
	e.createInputStream(500 * time.Millisecond)
	const valid, nThrottled = 30, 3
	for i := range valid {
		config := publishConfig
		if i < nThrottled {
			config = throttled
		}
		e.publish(worker.DefaultSubject, fmt.Sprintf("m-%d", i), sandbox.Event(config, i))
	}
	e.publish(worker.DefaultSubject, "m-invalid", []byte(`{"hardwareConfigurationId":"x"}`))
	e.publish(worker.DefaultSubject, "m-unknown", sandbox.Event(dlqNotFound, 1))
	e.publish(worker.DefaultSubject, "m-failing", sandbox.Event(failing, 1))
	const total = valid + 3

	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	ctx, stop := context.WithCancel(context.Background())
	var logs proctest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runWorker(ctx, []string{
			"--nats-url", e.natsURL, "--graph-base-url", e.graphURL, "--graph-token", toolToken,
			"--http-addr", addr, "--rate", "20", "--max-attempts", "2", "--ack-wait", "10s", "--log-level", "warn",
		}, &logs, &logs)
	}()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if t.Failed() {
			t.Logf("worker log:\n%s", logs.String())
		}
	}()
	url := "http://" + addr
	e.waitFor("/readyz", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	const requests = valid + nThrottled + 1 + 2
	// While the events flow, catch what only shows in passing.
	var inFlightSeen, backlogSeen float64
	var last scrape
	e.waitFor("every event's outcome in /metrics", func() bool {
		last = scrapeMetrics(t, url+"/metrics")
		inFlightSeen = max(inFlightSeen, last.value("hwstate_creates_in_flight", "", ""))
		backlogSeen = max(backlogSeen, last.value("hwstate_consumer_pending", "", "")+last.value("hwstate_consumer_ack_pending", "", ""))
		sum := 0.0
		for _, o := range []string{"created", "invalid_event", "graph_rejected", "retries_exhausted"} {
			sum += last.value("hwstate_events_total", "outcome", o)
		}
		// A counter and its histogram are two figures, moved one after the other: a scrape
		// may come between them.
		return sum >= total && last.value("hwstate_event_latency_seconds", "", "") >= total &&
			last.value("hwstate_graph_request_duration_seconds", "", "") >= requests
	})
	if inFlightSeen < 1 {
		t.Error("hwstate_creates_in_flight never rose above 0 while creates were sent")
	}
	if backlogSeen < 1 {
		t.Error("hwstate_consumer_pending + hwstate_consumer_ack_pending never showed the backlog")
	}

	type want struct {
		name, label, value string
		want               float64
	}
	for _, w := range []want{
		{"hwstate_events_total", "outcome", "created", valid},
		{"hwstate_events_total", "outcome", "invalid_event", 1},
		{"hwstate_events_total", "outcome", "graph_rejected", 1},
		{"hwstate_events_total", "outcome", "retries_exhausted", 1},
		// A 429 and then a 201 for each throttled event, two 503s exhaust the failing one.
		{"hwstate_graph_requests_total", "status_class", "429", nThrottled},
		{"hwstate_graph_requests_total", "status_class", "2xx", valid},
		{"hwstate_graph_requests_total", "status_class", "4xx", 1},
		{"hwstate_graph_requests_total", "status_class", "5xx", 2},
		{"hwstate_graph_requests_total", "status_class", "error", 0},
		{"hwstate_graph_request_duration_seconds", "", "", requests},
		{"hwstate_event_latency_seconds", "", "", total},
		{"hwstate_breaker_state", "", "", 0},
		{"hwstate_ledger_hits_total", "", "", 0},
		{"hwstate_handed_back_total", "", "", 0},
	} {
		if got := last.value(w.name, w.label, w.value); got != w.want {
			t.Errorf("%s{%s=%q} = %v, want %v", w.name, w.label, w.value, got, w.want)
		}
	}
	// Every answer came after the emulator's 20 ms.
	if sum := last.histogramSum("hwstate_graph_request_duration_seconds"); !(sum >= requests*0.02) {
		t.Errorf("Graph request durations sum to %vs, less than the emulator's latency alone", sum)
	}
	if sum := last.histogramSum("hwstate_event_latency_seconds"); !(sum > 0) {
		t.Errorf("event latencies sum to %v", sum)
	}
	if got := last.value("hwstate_throttle_pauses_total", "", ""); !(got >= 1 && got <= nThrottled) {
		t.Errorf("hwstate_throttle_pauses_total = %v, want 1 to %d after %d answers 429", got, nThrottled, nThrottled)
	}
	if got := last.value("hwstate_throttle_pause_seconds_total", "", ""); !(got > 0) {
		t.Errorf("hwstate_throttle_pause_seconds_total = %v, want above 0", got)
	}
	if got := last.value("hwstate_rate_limit", "", ""); !(got > 0 && got <= 20) {
		t.Errorf("hwstate_rate_limit = %v, want the configured 20/s or less", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if _, ok := last[name]; !ok {
			t.Errorf("%s missing: the Go and process collectors are not served", name)
		}
	}

	// Done: nothing in flight, nothing pending (the consumer figures refresh every few seconds).
	e.waitFor("the consumer figures back to 0", func() bool {
		s := scrapeMetrics(t, url+"/metrics")
		return s.value("hwstate_consumer_pending", "", "") == 0 && s.value("hwstate_consumer_ack_pending", "", "") == 0 &&
			s.value("hwstate_creates_in_flight", "", "") == 0
	})

	// The same event id again, after the duplicate window: answered from the ledger.
	e.waitFor("a republish past the duplicate window", func() bool {
		m := nats.NewMsg(worker.DefaultSubject)
		m.Header.Set(jetstream.MsgIDHeader, "m-0")
		m.Data = sandbox.Event(publishConfig, 0)
		ack, err := e.js.PublishMsg(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return !ack.Duplicate
	})
	e.waitFor("hwstate_ledger_hits_total to count the redelivery", func() bool {
		last = scrapeMetrics(t, url+"/metrics")
		return last.value("hwstate_ledger_hits_total", "", "") == 1
	})
	for _, w := range []want{
		{"hwstate_events_total", "outcome", "created", valid},
		{"hwstate_graph_requests_total", "status_class", "2xx", valid},
	} {
		if got := last.value(w.name, w.label, w.value); got != w.want {
			t.Errorf("after the ledger hit %s{%s=%q} = %v, want %v (unchanged)", w.name, w.label, w.value, got, w.want)
		}
	}
	if got := e.emu.Stats().Creates; got != valid {
		t.Errorf("the emulator made %d creates, want %d", got, valid)
	}
}
