package main

import (
	"runtime"
	"runtime/debug"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/hwstate/hwstate/graph"
)

// processMetrics are `hwstate run`'s figures beside the worker's: what is running, and the
// health of what it depends on that the worker does not see (sign-in, the NATS connection).
// Failed result and dead-letter publishes are the worker's hwstate_jetstream_failures_total.
type processMetrics struct {
	signInFailures  prometheus.Counter
	natsDisconnects prometheus.Counter
	natsReconnects  prometheus.Counter
}

func newProcessMetrics(reg prometheus.Registerer) *processMetrics {
	info, _ := debug.ReadBuildInfo()
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "hwstate_build_info", Help: "Always 1, labelled with the running binary's version, commit and Go version; marks a target as hwstate.",
		ConstLabels: prometheus.Labels{"version": version, "commit": revision(info, commit), "goversion": runtime.Version()},
	})
	build.Set(1)
	m := &processMetrics{
		signInFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_graph_signin_failures_total", Help: "Sign-ins to Microsoft Entra ID (client credentials or workload identity) that failed: no token, so no create is sent.",
		}),
		natsDisconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_nats_disconnects_total", Help: "Times the NATS connection was lost.",
		}),
		natsReconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "hwstate_nats_reconnects_total", Help: "Times the NATS connection was made again after a loss.",
		}),
	}
	reg.MustRegister(build, m.signInFailures, m.natsDisconnects, m.natsReconnects)
	return m
}

// signIn counts the sign-in failures of the Graph client's tokens.
func (m *processMetrics) signIn() graph.SignInOption {
	return graph.OnSignInFailure(func(error) { m.signInFailures.Inc() })
}

// watch counts nc's losses and reconnections.
func (m *processMetrics) watch(nc *nats.Conn) {
	nc.SetDisconnectErrHandler(func(*nats.Conn, error) { m.natsDisconnects.Inc() })
	nc.SetReconnectHandler(func(*nats.Conn) { m.natsReconnects.Inc() })
}
