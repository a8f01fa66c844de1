package main_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// collector is an OTLP/HTTP trace receiver standing in for an OpenTelemetry collector.
type collector struct {
	mu       sync.Mutex
	spans    []*tracepb.Span
	services []string
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	if r.URL.Path != "/v1/traces" || err != nil {
		http.Error(w, fmt.Sprintf("%s: %v", r.URL.Path, err), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				c.services = append(c.services, a.GetValue().GetStringValue())
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			c.spans = append(c.spans, ss.GetSpans()...)
		}
	}
	c.mu.Unlock()
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (c *collector) named(name string) []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range c.spans {
		if s.GetName() == name {
			out = append(out, s)
		}
	}
	return out
}

func spanAttr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return anyValue(a.GetValue())
		}
	}
	return ""
}

func anyValue(v *commonpb.AnyValue) string {
	if i, ok := v.GetValue().(*commonpb.AnyValue_IntValue); ok {
		return fmt.Sprint(i.IntValue)
	}
	return v.GetStringValue()
}

// TestTracesExportedOverOTLP runs `hwstate run` with the standard OTEL_* variables pointing
// at a collector stand-in, publishes one event with a producer's traceparent, and finds its
// trace there: the event's span under the producer's, the Graph request's under it, and the
// result's traceparent naming the event's span. The trace is logged as the README shows it.
func TestTracesExportedOverOTLP(t *testing.T) {
	proctest.SkipShort(t)
	var col collector
	otlp := httptest.NewServer(&col)
	t.Cleanup(otlp.Close)
	sb := proctest.NewSandbox(t, emulator.Config{})
	p := proctest.Start(t, hwstate.Path(t), []string{
		"HWSTATE_NATS_URL=" + sb.NATSURL, "HWSTATE_GRAPH_BASE_URL=" + sb.GraphURL, "HWSTATE_GRAPH_TOKEN=" + sb.Token,
		"HWSTATE_HTTP_ADDR=",
		"OTEL_EXPORTER_OTLP_ENDPOINT=" + otlp.URL, "OTEL_BSP_SCHEDULE_DELAY=100",
	}, "run")
	p.WaitOutput(t, `"msg":"worker started"`, time.Minute)

	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	m := nats.NewMsg(worker.DefaultSubject)
	m.Header.Set(jetstream.MsgIDHeader, "traced-1")
	m.Header.Set("traceparent", "00-"+producerTrace+"-"+producerSpan+"-01")
	m.Data = sandbox.Event(sandbox.ConfigOK, 1)
	if _, err := sb.JS.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	proctest.WaitFor(t, time.Minute, "the event's and the Graph request's spans at the collector", func() bool {
		return len(col.named("hwstate.event")) == 1 && len(col.named("graph.request")) == 1
	})
	ev, req := col.named("hwstate.event")[0], col.named("graph.request")[0]
	id := func(b []byte) string { return hex.EncodeToString(b) }
	if id(ev.GetTraceId()) != producerTrace || id(ev.GetParentSpanId()) != producerSpan {
		t.Errorf("event span in trace %s under %s, want the producer's %s under %s", id(ev.GetTraceId()), id(ev.GetParentSpanId()), producerTrace, producerSpan)
	}
	if id(req.GetTraceId()) != producerTrace || id(req.GetParentSpanId()) != id(ev.GetSpanId()) {
		t.Errorf("Graph request span under %s, want the event's span %s", id(req.GetParentSpanId()), id(ev.GetSpanId()))
	}
	if spanAttr(req, "graph.client_request_id") != graph.ClientRequestID("traced-1") || spanAttr(req, "graph.request_id") == "" {
		t.Errorf("Graph request span attributes %v", req.GetAttributes())
	}
	if col.services[0] != "hwstate" {
		t.Errorf("service.name %q, want hwstate", col.services[0])
	}
	res, err := sb.JS.Stream(context.Background(), worker.DefaultResultStream)
	if err != nil {
		t.Fatal(err)
	}
	out, err := res.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if want := "00-" + producerTrace + "-" + id(ev.GetSpanId()) + "-01"; out.Header.Get("traceparent") != want {
		t.Errorf("result traceparent %q, want %q", out.Header.Get("traceparent"), want)
	}

	// The trace as the README shows it.
	var b strings.Builder
	start := ev.GetStartTimeUnixNano()
	ms := func(ns uint64) string { return fmt.Sprintf("%7.1f ms", float64(ns-start)/1e6) }
	fmt.Fprintf(&b, "trace %s (the producer's), service.name=%s\n", producerTrace, col.services[0])
	for _, s := range []*tracepb.Span{ev, req} {
		indent := map[bool]string{true: "  ", false: "    "}[s == ev]
		fmt.Fprintf(&b, "%s%s span %s parent %s  %s .. %s\n", indent, s.GetName(), id(s.GetSpanId()), id(s.GetParentSpanId()),
			ms(s.GetStartTimeUnixNano()), ms(s.GetEndTimeUnixNano()))
		var attrs []string
		for _, a := range s.GetAttributes() {
			attrs = append(attrs, a.GetKey()+"="+anyValue(a.GetValue()))
		}
		slices.Sort(attrs)
		fmt.Fprintf(&b, "%s  %s\n", indent, strings.Join(attrs, " "))
		for _, e := range s.GetEvents() {
			fmt.Fprintf(&b, "%s  %s %s\n", indent, ms(e.GetTimeUnixNano()), e.GetName())
		}
	}
	fmt.Fprintf(&b, "result traceparent %s\n", out.Header.Get("traceparent"))
	t.Log("\n" + b.String())
}
