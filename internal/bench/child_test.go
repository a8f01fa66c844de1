package bench

import (
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func TestUsageOfThisProcess(t *testing.T) {
	u, err := usageOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.rss <= 0 || u.hwmKiB < u.rss {
		t.Errorf("usage %+v: want a resident set above 0 and a peak at least that", u)
	}
}

func TestRateLimitFromMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "hwstate_rate_limit", Help: "h"})
	g.Set(42.5)
	reg.MustRegister(g, prometheus.NewCounter(prometheus.CounterOpts{Name: "hwstate_other_total", Help: "h"}))
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	c := &child{httpAddr: strings.TrimPrefix(srv.URL, "http://")}
	if got, err := c.rateLimit(); err != nil || got != 42.5 {
		t.Errorf("rateLimit = %v, %v; want 42.5", got, err)
	}

	empty := httptest.NewServer(promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}))
	defer empty.Close()
	c.httpAddr = strings.TrimPrefix(empty.URL, "http://")
	if _, err := c.rateLimit(); err == nil {
		t.Error("no error without hwstate_rate_limit")
	}
}
