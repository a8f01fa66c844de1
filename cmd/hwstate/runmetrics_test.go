package main

import (
	"context"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/internal/entratest"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
)

func TestProcessMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	pm := newProcessMetrics(reg)

	t.Run("build info", func(t *testing.T) {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != "hwstate_build_info" {
				continue
			}
			m := f.GetMetric()[0]
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			info, _ := debug.ReadBuildInfo()
			want := map[string]string{"version": version, "commit": revision(info, commit), "goversion": runtime.Version()}
			for k, v := range want {
				if labels[k] != v {
					t.Errorf("label %s=%q, want %q", k, labels[k], v)
				}
			}
			if m.GetGauge().GetValue() != 1 {
				t.Errorf("hwstate_build_info = %v, want 1", m.GetGauge().GetValue())
			}
			return
		}
		t.Error("no hwstate_build_info")
	})

	t.Run("sign-in failures", func(t *testing.T) {
		auth := entratest.Start(t, "the-right-secret", time.Hour)
		cloud := graph.Clouds()[0]
		tokens, err := graph.NewCredentialTokens(
			graph.ClientCredentials{Cloud: cloud, TenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47", ClientID: "c", Secret: "wrong"},
			graph.WithSignInTransport(auth.Transport()), graph.WithoutInstanceDiscovery(), pm.signIn())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tokens.Token(context.Background(), false); err == nil {
			t.Fatal("signed in with the wrong secret")
		}
		if got := testutil.ToFloat64(pm.signInFailures); got != 1 {
			t.Errorf("hwstate_graph_signin_failures_total = %v, want 1", got)
		}
	})

	t.Run("NATS disconnects and reconnects", func(t *testing.T) {
		ns := natstest.Start(t)
		nc, _ := natstest.Connect(t, ns.ClientURL())
		pm.watch(nc)
		ns.Restart(t)
		proctest.WaitFor(t, 30*time.Second, "a disconnect and a reconnect counted after a server restart", func() bool {
			return testutil.ToFloat64(pm.natsDisconnects) >= 1 && testutil.ToFloat64(pm.natsReconnects) >= 1
		})
		if d, r := testutil.ToFloat64(pm.natsDisconnects), testutil.ToFloat64(pm.natsReconnects); d != 1 || r != 1 {
			t.Errorf("%v disconnects, %v reconnects, want 1 of each", d, r)
		}
	})
}
