package worker

import (
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
)

// Option changes how a Worker behaves beyond its Config.
type Option func(*options)

type options struct {
	logger         *zap.Logger
	metrics        *Metrics
	now            func() time.Time
	breakerTimeout time.Duration
	backoffInitial time.Duration
	backoffMax     time.Duration
	tracer         trace.Tracer // trace.go
	tenants        *tenancy     // multi-tenant mode (tenancy.go); nil in single-tenant mode
}

func defaultOptions() options {
	return options{
		logger:         zap.NewNop(),
		now:            time.Now,
		breakerTimeout: 10 * time.Second,
		backoffInitial: 500 * time.Millisecond,
		backoffMax:     60 * time.Second,
		tracer:         noop.NewTracerProvider().Tracer(""),
	}
}

// WithLogger sets the logger; the default logs nothing.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetrics records the worker's figures into m.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithBreakerTimeout sets how long the breaker stays open before a probe request.
func WithBreakerTimeout(d time.Duration) Option { return func(o *options) { o.breakerTimeout = d } }

// WithBackoff sets the first and the longest wait between transient failures of one event.
func WithBackoff(initial, maxWait time.Duration) Option {
	return func(o *options) { o.backoffInitial, o.backoffMax = initial, maxWait }
}

// WithTenants runs the worker in multi-tenant mode (CONTRACT.md section 6) for the tenants
// listed, each with the Creator newCreator makes for it; the Creator given to New is unused.
// SetTenants changes the list while the worker runs.
func WithTenants(listed []Tenant, newCreator func(Tenant) (Creator, error)) Option {
	return func(o *options) {
		o.tenants = &tenancy{initial: listed, newCreator: newCreator, sweepEvery: defaultSweepEvery}
	}
}
