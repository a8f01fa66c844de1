package worker

import (
	"context"
	"strings"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/hwstate/hwstate/graph"
)

// Tracing: a span per event (hwstate.event, from its delivery to its ack or hand-back), a
// child span per Graph request it sends, and W3C trace context: the producer's traceparent
// (when its message carries one) is the event span's parent, and the event span is the
// parent named on its result or dead letter. Without WithTracerProvider every span is a
// no-op.

// WithTracerProvider traces events with tp's tracer.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracer = tp.Tracer("github.com/hwstate/hwstate/worker") }
}

// traceContext is W3C Trace Context (traceparent, tracestate), the propagation of the
// events' and outputs' headers.
var traceContext = propagation.TraceContext{}

// traceEvent starts the event's span, a child of the traceparent in its headers if any, and
// returns what ends it.
func (w *Worker) traceEvent(ctx context.Context, ev *event) func() {
	ctx = traceContext.Extract(ctx, natsCarrier(ev.msg.Headers()))
	attrs := []attribute.KeyValue{
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.destination.name", ev.msg.Subject()),
		attribute.String("hwstate.event_id", ev.id.value),
	}
	if ev.meta != nil {
		attrs = append(attrs, attribute.Int64("messaging.nats.stream_sequence", int64(ev.meta.Sequence.Stream)),
			attribute.Int64("messaging.nats.delivered", int64(ev.meta.NumDelivered)))
	}
	_, ev.span = w.opts.tracer.Start(ctx, "hwstate.event", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...))
	return func() { ev.span.End() }
}

// traceGraph starts the span of one Graph request of the event and returns what ends it with
// Graph's answer.
func (w *Worker) traceGraph(ev *event) func(graph.Response, error) {
	_, span := w.opts.tracer.Start(trace.ContextWithSpan(context.Background(), eventSpan(ev)), "graph.request",
		trace.WithSpanKind(trace.SpanKindClient))
	return func(resp graph.Response, err error) {
		span.SetAttributes(
			attribute.Int("http.response.status_code", resp.Status),
			attribute.String("graph.client_request_id", resp.ClientRequestID),
			attribute.String("graph.request_id", resp.RequestID),
		)
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		case resp.Status >= 400:
			span.SetStatus(codes.Error, resp.Class.String())
		}
		span.End()
	}
}

// traceOutput names the event's outcome on its span and puts the span's trace context on
// the result or dead letter h.
func traceOutput(ev *event, outcome Outcome, h nats.Header) {
	span := eventSpan(ev)
	span.SetAttributes(attribute.String("hwstate.outcome", string(outcome)))
	traceContext.Inject(trace.ContextWithSpan(context.Background(), span), natsCarrier(h))
}

// traceStep marks a step of the event's life on its span.
func traceStep(ev *event, step string) { eventSpan(ev).AddEvent(step) }

// eventSpan is the event's span, or a no-op one for an event never traced.
func eventSpan(ev *event) trace.Span {
	if ev.span == nil {
		return trace.SpanFromContext(context.Background())
	}
	return ev.span
}

// natsCarrier reads and writes trace context in NATS headers, whose keys (unlike HTTP's) keep
// their case: a producer's Traceparent is found as well as its traceparent.
type natsCarrier nats.Header

func (c natsCarrier) Get(key string) string {
	if v := nats.Header(c).Get(key); v != "" {
		return v
	}
	for k, v := range c {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func (c natsCarrier) Set(key, value string) { nats.Header(c).Set(key, value) }

func (c natsCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}
