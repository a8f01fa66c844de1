package worker

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the worker's Prometheus figures. A nil *Metrics records nothing.
//
// The figures of events and of Graph carry a tenant label: the tenant's name or id in
// multi-tenant mode (bounded by the tenants file), empty in single-tenant mode.
type Metrics struct {
	*metricVecs
	tenant string // the label of the tenant these figures are for
}

type metricVecs struct {
	events          *prometheus.CounterVec
	graphRequests   *prometheus.CounterVec
	graphDuration   *prometheus.HistogramVec
	eventLatency    *prometheus.HistogramVec
	breaker         *prometheus.GaugeVec
	rateLimit       *prometheus.GaugeVec
	throttlePauses  *prometheus.CounterVec
	throttleSeconds *prometheus.CounterVec
	creating        *prometheus.GaugeVec
	ledgerHits      *prometheus.CounterVec
	handBacks       *prometheus.CounterVec
	pending         *prometheus.GaugeVec
	ackPending      *prometheus.GaugeVec
	reconcile       *prometheus.CounterVec
	storeFailures   prometheus.Counter
	storeFailing    prometheus.Gauge
	// tenants.go's
	tenants             prometheus.Gauge
	tenantsReloadErrors prometheus.Counter
}

// tenantLabel is the label naming the tenant of a figure.
const tenantLabel = "tenant"

// NewMetrics registers the worker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	t := []string{tenantLabel}
	v := &metricVecs{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_events_total", Help: "Events that reached an outcome, by outcome (created, invalid_event, graph_rejected, retries_exhausted).",
		}, []string{tenantLabel, "outcome"}),
		graphRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_graph_requests_total", Help: "Requests sent to Graph (creates and lookups), by answer: 2xx, 4xx, 429, 5xx, or error when none came.",
		}, []string{tenantLabel, "status_class"}),
		graphDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hwstate_graph_request_duration_seconds", Help: "Time for one Graph create request.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, t),
		eventLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hwstate_event_latency_seconds", Help: "From the event's publish into the stream to its recorded outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
		}, t),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hwstate_breaker_state", Help: "Graph circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, t),
		rateLimit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hwstate_rate_limit", Help: "Current Graph create rate limit, per second.",
		}, t),
		throttlePauses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_throttle_pauses_total", Help: "Pauses of every sender after Graph answered 429.",
		}, t),
		throttleSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_throttle_pause_seconds_total", Help: "Seconds of pause asked for by Graph's 429 answers.",
		}, t),
		creating: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hwstate_creates_in_flight", Help: "Graph create requests in flight.",
		}, t),
		ledgerHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_ledger_hits_total", Help: "Redelivered events answered from the idempotency ledger, with no call to Graph.",
		}, t),
		handBacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_handed_back_total", Help: "Messages handed back to JetStream (nak) unfinished.",
		}, t),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hwstate_consumer_pending", Help: "Messages in the stream not yet delivered to the consumer.",
		}, t),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hwstate_consumer_ack_pending", Help: "Messages delivered to the consumer and not yet acknowledged.",
		}, t),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_reconcile_total", Help: "Lookups in Graph of events that might already exist, by result: found (recorded as created, no second create), not_found (created), unavailable (Graph refuses to list: created without looking).",
		}, []string{tenantLabel, "result"}),
		storeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_jetstream_failures_total", Help: "JetStream requests (ledger, outputs) that failed and are being retried: a full store, a stream's limits, a quota, a server restart.",
		}),
		storeFailing: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_jetstream_failing", Help: "1 while JetStream refuses the worker's requests: no new creates are sent and /readyz answers 503.",
		}),
		tenants: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_tenants", Help: "Tenants listed in the tenants file in force (multi-tenant mode; 0 in single-tenant mode).",
		}),
		tenantsReloadErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_tenants_reload_errors_total", Help: "Reads of the tenants file (every poll, every SIGHUP) that found it invalid or unreadable, the tenants in force staying: it rises for as long as the file stays so.",
		}),
	}
	reg.MustRegister(v.events, v.graphRequests, v.graphDuration, v.eventLatency, v.breaker, v.rateLimit,
		v.throttlePauses, v.throttleSeconds, v.creating, v.ledgerHits, v.handBacks, v.pending, v.ackPending, v.reconcile, v.storeFailures, v.storeFailing,
		v.tenants, v.tenantsReloadErrors)
	return &Metrics{metricVecs: v}
}

// forTenant is the figures of one tenant (its lane's). Every series exists from the start,
// so rate() and alerts see a rise from zero rather than a series appearing.
func (m *Metrics) forTenant(token string, listed *listing) *Metrics {
	if m == nil {
		return nil
	}
	t := &Metrics{metricVecs: m.metricVecs, tenant: labelOf(token, listed)}
	for _, o := range []Outcome{Created, InvalidEvent, GraphRejected, RetriesExhausted} {
		t.events.WithLabelValues(t.tenant, string(o))
	}
	for _, class := range []string{"2xx", "4xx", "429", "5xx", "error"} {
		t.graphRequests.WithLabelValues(t.tenant, class)
	}
	for _, r := range []string{"found", "not_found", "unavailable"} {
		t.reconcile.WithLabelValues(t.tenant, r)
	}
	for _, v := range []interface {
		WithLabelValues(...string) prometheus.Counter
	}{t.throttlePauses, t.throttleSeconds, t.ledgerHits, t.handBacks} {
		v.WithLabelValues(t.tenant)
	}
	for _, v := range []*prometheus.GaugeVec{t.breaker, t.rateLimit, t.creating, t.pending, t.ackPending} {
		v.WithLabelValues(t.tenant)
	}
	for _, v := range []*prometheus.HistogramVec{t.graphDuration, t.eventLatency} {
		v.WithLabelValues(t.tenant)
	}
	return t
}

func (m *Metrics) outcome(o Outcome, msg jetstream.Msg) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(m.tenant, string(o)).Inc()
	if meta, err := msg.Metadata(); err == nil {
		m.eventLatency.WithLabelValues(m.tenant).Observe(time.Since(meta.Timestamp).Seconds())
	}
}

func (m *Metrics) graphRequest(status int, d time.Duration) {
	if m == nil {
		return
	}
	class := "error"
	switch {
	case status == 429:
		class = "429"
	case status > 0:
		class = strconv.Itoa(status/100) + "xx"
	}
	m.graphRequests.WithLabelValues(m.tenant, class).Inc()
	m.graphDuration.WithLabelValues(m.tenant).Observe(d.Seconds())
}

func (m *Metrics) breakerState(s gobreaker.State) {
	if m == nil {
		return
	}
	switch s {
	case gobreaker.StateClosed:
		m.breaker.WithLabelValues(m.tenant).Set(0)
	case gobreaker.StateHalfOpen:
		m.breaker.WithLabelValues(m.tenant).Set(1)
	case gobreaker.StateOpen:
		m.breaker.WithLabelValues(m.tenant).Set(2)
	}
}

func (m *Metrics) setRateLimit(perSecond float64) {
	if m != nil {
		m.rateLimit.WithLabelValues(m.tenant).Set(perSecond)
	}
}

func (m *Metrics) throttled(d time.Duration) {
	if m != nil {
		m.throttlePauses.WithLabelValues(m.tenant).Inc()
		m.throttleSeconds.WithLabelValues(m.tenant).Add(d.Seconds())
	}
}

func (m *Metrics) inFlight(delta float64) {
	if m != nil {
		m.creating.WithLabelValues(m.tenant).Add(delta)
	}
}

func (m *Metrics) ledgerHit() {
	if m != nil {
		m.ledgerHits.WithLabelValues(m.tenant).Inc()
	}
}

func (m *Metrics) handedBack() {
	if m != nil {
		m.handBacks.WithLabelValues(m.tenant).Inc()
	}
}

func (m *Metrics) consumer(info *jetstream.ConsumerInfo) {
	if m != nil {
		m.pending.WithLabelValues(m.tenant).Set(float64(info.NumPending))
		m.ackPending.WithLabelValues(m.tenant).Set(float64(info.NumAckPending))
	}
}

func (m *Metrics) reconciled(result string) {
	if m != nil {
		m.reconcile.WithLabelValues(m.tenant, result).Inc()
	}
}

func (m *Metrics) storeFailure() {
	if m != nil {
		m.storeFailures.Inc()
	}
}

func (m *Metrics) setStoreFailing(on bool) {
	if m == nil {
		return
	}
	if on {
		m.storeFailing.Set(1)
	} else {
		m.storeFailing.Set(0)
	}
}

func (m *Metrics) tenantsListed(n int) {
	if m != nil {
		m.tenants.Set(float64(n))
	}
}

func (m *Metrics) tenantsReloadFailed() {
	if m != nil {
		m.tenantsReloadErrors.Inc()
	}
}
