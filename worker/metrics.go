package worker

import (
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
)

// Metrics are the worker's Prometheus figures. A nil *Metrics records nothing.
type Metrics struct {
	events          *prometheus.CounterVec
	graphRequests   *prometheus.CounterVec
	graphDuration   prometheus.Histogram
	eventLatency    prometheus.Histogram
	breaker         prometheus.Gauge
	rateLimit       prometheus.Gauge
	throttlePauses  prometheus.Counter
	throttleSeconds prometheus.Counter
	creating        prometheus.Gauge
	ledgerHits      prometheus.Counter
	handBacks       prometheus.Counter
	pending         prometheus.Gauge
	ackPending      prometheus.Gauge
	reconcile       *prometheus.CounterVec
	storeFailures   prometheus.Counter
	storeFailing    prometheus.Gauge
	// tenants.go's
	tenants             prometheus.Gauge
	tenantsReloadErrors prometheus.Counter
}

// NewMetrics registers the worker's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_events_total", Help: "Events that reached an outcome, by outcome (created, invalid_event, graph_rejected, retries_exhausted).",
		}, []string{"outcome"}),
		graphRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_graph_requests_total", Help: "Requests sent to Graph (creates and lookups), by answer: 2xx, 4xx, 429, 5xx, or error when none came.",
		}, []string{"status_class"}),
		graphDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hwstate_graph_request_duration_seconds", Help: "Time for one Graph create request.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		eventLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "hwstate_event_latency_seconds", Help: "From the event's publish into the stream to its recorded outcome.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2.5, 14),
		}),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_breaker_state", Help: "Graph circuit breaker: 0 closed, 1 half-open, 2 open.",
		}),
		rateLimit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_rate_limit", Help: "Current Graph create rate limit, per second.",
		}),
		throttlePauses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_throttle_pauses_total", Help: "Pauses of every sender after Graph answered 429.",
		}),
		throttleSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_throttle_pause_seconds_total", Help: "Seconds of pause asked for by Graph's 429 answers.",
		}),
		creating: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_creates_in_flight", Help: "Graph create requests in flight.",
		}),
		ledgerHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_ledger_hits_total", Help: "Redelivered events answered from the idempotency ledger, with no call to Graph.",
		}),
		handBacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_handed_back_total", Help: "Messages handed back to JetStream (nak) unfinished.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_consumer_pending", Help: "Messages in the stream not yet delivered to the consumer.",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "hwstate_consumer_ack_pending", Help: "Messages delivered to the consumer and not yet acknowledged.",
		}),
		reconcile: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hwstate_reconcile_total", Help: "Lookups in Graph of events that might already exist, by result: found (recorded as created, no second create), not_found (created), unavailable (Graph refuses to list: created without looking).",
		}, []string{"result"}),
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
	reg.MustRegister(m.events, m.graphRequests, m.graphDuration, m.eventLatency, m.breaker, m.rateLimit,
		m.throttlePauses, m.throttleSeconds, m.creating, m.ledgerHits, m.handBacks, m.pending, m.ackPending, m.reconcile, m.storeFailures, m.storeFailing,
		m.tenants, m.tenantsReloadErrors)
	// Every series exists from the start, so rate() and alerts see a rise from zero rather
	// than a series appearing.
	for _, o := range []Outcome{Created, InvalidEvent, GraphRejected, RetriesExhausted} {
		m.events.WithLabelValues(string(o))
	}
	for _, class := range []string{"2xx", "4xx", "429", "5xx", "error"} {
		m.graphRequests.WithLabelValues(class)
	}
	for _, r := range []string{"found", "not_found", "unavailable"} {
		m.reconcile.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) outcome(o Outcome, msg jetstream.Msg) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(string(o)).Inc()
	if meta, err := msg.Metadata(); err == nil {
		m.eventLatency.Observe(time.Since(meta.Timestamp).Seconds())
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
	m.graphRequests.WithLabelValues(class).Inc()
	m.graphDuration.Observe(d.Seconds())
}

func (m *Metrics) breakerState(s gobreaker.State) {
	if m == nil {
		return
	}
	switch s {
	case gobreaker.StateClosed:
		m.breaker.Set(0)
	case gobreaker.StateHalfOpen:
		m.breaker.Set(1)
	case gobreaker.StateOpen:
		m.breaker.Set(2)
	}
}

func (m *Metrics) setRateLimit(perSecond float64) {
	if m != nil {
		m.rateLimit.Set(perSecond)
	}
}

func (m *Metrics) throttled(d time.Duration) {
	if m != nil {
		m.throttlePauses.Inc()
		m.throttleSeconds.Add(d.Seconds())
	}
}

func (m *Metrics) inFlight(delta float64) {
	if m != nil {
		m.creating.Add(delta)
	}
}

func (m *Metrics) ledgerHit() {
	if m != nil {
		m.ledgerHits.Inc()
	}
}

func (m *Metrics) handedBack() {
	if m != nil {
		m.handBacks.Inc()
	}
}

func (m *Metrics) consumer(info *jetstream.ConsumerInfo) {
	if m != nil {
		m.pending.Set(float64(info.NumPending))
		m.ackPending.Set(float64(info.NumAckPending))
	}
}

func (m *Metrics) reconciled(result string) {
	if m != nil {
		m.reconcile.WithLabelValues(result).Inc()
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
