package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var s settings
	s.register(fs)
	fs.Usage = flagUsage(fs, stdout, "usage: hwstate run [flags]\n\nThe worker: pulls events from JetStream, creates them in Microsoft Graph, publishes a result or a dead letter for each.")
	if err := s.parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(s.LogLevel, false, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	creator, err := s.graphClient()
	if err != nil {
		return err
	}

	url := s.NATSURL
	if url == "" {
		ns, err := startEmbedded(s.DataDir, s.EmbeddedListen)
		if err != nil {
			return err
		}
		defer func() {
			ns.Shutdown()
			ns.WaitForShutdown()
		}()
		url = ns.ClientURL()
		log.Info("embedded JetStream server", zap.String("url", url), zap.String("data_dir", s.DataDir))
	}
	nc, err := connect(url, s.NATSCreds, s.NATSCA)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	w := worker.New(js, creator, s.workerConfig(), worker.WithLogger(log), worker.WithMetrics(worker.NewMetrics(reg)))

	if s.HTTPAddr != "" {
		stopHTTP, err := serveHTTP(s.HTTPAddr, reg, func() bool { return w.Ready() && nc.Status() == nats.CONNECTED }, log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	return w.Run(ctx)
}

// graphClient builds the Graph client the settings ask for.
func (s *settings) graphClient() (*graph.Client, error) {
	cloud, err := graph.CloudByName(s.GraphCloud)
	if err != nil {
		return nil, err
	}
	base := s.GraphBaseURL
	if base == "" {
		base = cloud.BaseURL()
	}
	if s.GraphToken == "" {
		return nil, errors.New("no Graph credentials: set HWSTATE_GRAPH_TOKEN (a fixed bearer token, e.g. for the emulator)")
	}
	return &graph.Client{BaseURL: base, Tokens: graph.StaticToken(s.GraphToken), Timeout: s.GraphTimeout}, nil
}

// serveHTTP answers /healthz (the process runs), /readyz (bound to NATS and the consumer)
// and /metrics.
func serveHTTP(addr string, reg *prometheus.Registry, ready func() bool, log *zap.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: not connected to NATS or consumer not bound", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
		}
	}()
	log.Info("http listening", zap.String("addr", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
