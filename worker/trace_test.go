package worker_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// TestTraces: each event has a span from its delivery to its ack, a child of the producer's
// traceparent when it sent one (whatever the header's case), with its Graph request as a
// child span naming the client-request-id and Graph's request-id; its result names the event
// span as its parent.
func TestTraces(t *testing.T) {
	const producerTrace, producerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	traceparent := "00-" + producerTrace + "-" + producerSpan + "-01"
	cases := []struct {
		id     string
		header string // the traceparent header's key, or none
	}{
		{"traced", "traceparent"},
		{"traced-capitalised", "Traceparent"},
		{"untraced", ""},
	}
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	h := newHarness(t, emulator.Config{})
	h.start(worker.WithTracerProvider(tp))
	for i, tc := range cases {
		m := nats.NewMsg(worker.DefaultSubject)
		m.Header.Set(jetstream.MsgIDHeader, tc.id)
		if tc.header != "" {
			m.Header[tc.header] = []string{traceparent}
		}
		m.Data = event(configOK, i)
		if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	h.waitOutputs(len(cases), 30*time.Second)
	// An event's span ends once it is acked, just after its result is in the stream.
	eventSpans := func() map[string]sdktrace.ReadOnlySpan {
		out := map[string]sdktrace.ReadOnlySpan{}
		for _, s := range sr.Ended() {
			if s.Name() == "hwstate.event" {
				out[attr(s, "hwstate.event_id")] = s
			}
		}
		return out
	}
	proctest.WaitFor(t, 30*time.Second, "every event's span to end", func() bool { return len(eventSpans()) == len(cases) })
	spans := eventSpans()

	results, err := h.js.Stream(context.Background(), worker.DefaultResultStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			ev := spans[tc.id]
			if got := attr(ev, "hwstate.outcome"); got != "created" {
				t.Errorf("event span outcome %q, want created", got)
			}
			if ev.SpanKind() != trace.SpanKindConsumer {
				t.Errorf("event span kind %v, want consumer", ev.SpanKind())
			}
			var steps []string
			for _, e := range ev.Events() {
				steps = append(steps, e.Name)
			}
			if !slices.Equal(steps, []string{"outcome recorded", "acked"}) {
				t.Errorf("event span's steps %v, want the outcome recorded, then acked", steps)
			}
			parent := ev.Parent()
			if traced := tc.header != ""; traced {
				if parent.TraceID().String() != producerTrace || parent.SpanID().String() != producerSpan || !parent.IsRemote() {
					t.Errorf("event span parent %v, want the producer's span %s of trace %s", parent, producerSpan, producerTrace)
				}
			} else if parent.IsValid() {
				t.Errorf("event span parent %v, want none: the producer sent no traceparent", parent)
			}

			var graphSpans []sdktrace.ReadOnlySpan
			for _, s := range sr.Ended() {
				if s.Name() == "graph.request" && s.Parent().SpanID() == ev.SpanContext().SpanID() {
					graphSpans = append(graphSpans, s)
				}
			}
			if len(graphSpans) != 1 {
				t.Fatalf("%d Graph request spans under the event's, want 1", len(graphSpans))
			}
			g := graphSpans[0]
			if attr(g, "graph.client_request_id") != graph.ClientRequestID(tc.id) || attr(g, "graph.request_id") == "" ||
				attr(g, "http.response.status_code") != "201" || g.SpanKind() != trace.SpanKindClient {
				t.Errorf("Graph request span %v %v, want a client span with the client-request-id, Graph's request-id and 201", g.SpanKind(), g.Attributes())
			}

			want := "00-" + ev.SpanContext().TraceID().String() + "-" + ev.SpanContext().SpanID().String() + "-01"
			if got := resultTraceparent(t, results, tc.id); got != want {
				t.Errorf("result traceparent %q, want the event span's %q", got, want)
			}
		})
	}
}

// attr is the span's attribute key as a string, or "".
func attr(s sdktrace.ReadOnlySpan, key string) string {
	for _, kv := range s.Attributes() {
		if kv.Key == attribute.Key(key) {
			return kv.Value.String()
		}
	}
	return ""
}

// resultTraceparent is the traceparent header of the event's result.
func resultTraceparent(t *testing.T, results jetstream.Stream, id string) string {
	t.Helper()
	info, err := results.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := results.GetMsg(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == id {
			return m.Header.Get("traceparent")
		}
	}
	t.Fatalf("no result of %s", id)
	return ""
}
