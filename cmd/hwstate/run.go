package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run", stdout, stderr, "usage: hwstate run [flags]\n\nThe worker: pulls events from JetStream, creates them in Microsoft Graph, publishes a result or a dead letter for each.\n\n"+
		"Sign-in to a real tenant, in any cloud: --graph-cloud, --tenant-id, --client-id, and --client-secret or --client-cert\n"+
		"(OAuth 2.0 client credentials; the app registration needs the application permission\n"+
		"DeviceManagementConfiguration.ReadWrite.All with admin consent). On AKS with Azure Workload Identity, no secret:\n"+
		"the webhook's AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_AUTHORITY_HOST are used when\n"+
		"no client secret, certificate or token is set. For an emulator: --graph-token and --graph-base-url.")
	var s settings
	s.register(fs)
	if err := s.parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(s.LogLevel, false, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	pm := newProcessMetrics(reg)
	var creator worker.Creator
	var modeOpts []worker.Option
	var listed []worker.Tenant
	if s.Tenants == "" {
		if creator, err = s.graphClient(pm.signIn()); err != nil {
			return err
		}
	} else {
		if listed, err = s.tenants(pm.signIn()); err != nil { // tenants.go: multi-tenant mode
			return err
		}
		modeOpts = append(modeOpts, worker.WithTenants(listed, func(t worker.Tenant) (worker.Creator, error) {
			return s.tenantClient(t, pm.signIn())
		}))
	}

	url := s.NATS.URL
	if url == "" {
		ns, err := sandbox.StartJetStream(s.DataDir, s.NATS.EmbeddedListen)
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
	nc, js, err := s.NATS.connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	pm.watch(nc)

	tp, stopTracing, err := tracing(ctx) // off unless the OTEL_* variables ask
	if err != nil {
		return err
	}
	defer stopTracing()
	metrics := worker.NewMetrics(reg)
	w := worker.New(js, creator, s.Config, append(modeOpts, worker.WithLogger(log), worker.WithMetrics(metrics), worker.WithTracerProvider(tp))...)
	if s.Tenants != "" {
		go s.watchTenants(ctx, w, listed, metrics, log)
	}

	if s.HTTPAddr != "" {
		stopHTTP, err := serveHTTP(s.HTTPAddr, reg, func() bool { return w.Ready() && nc.Status() == nats.CONNECTED }, log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	return w.Run(ctx)
}

// graphClient builds what sends creates to Graph: a client of the chosen cloud signing in
// as the settings say, inside a Batcher when --graph-batch is above 1. It fails, naming
// the settings, when credentials are missing or half-given; it does not sign in yet.
func (s *settings) graphClient(opts ...graph.SignInOption) (worker.Creator, error) {
	cloud, err := graph.CloudByName(s.GraphCloud)
	if err != nil {
		return nil, err
	}
	base := s.GraphBaseURL
	if base == "" {
		base = cloud.BaseURL()
	}
	tokens, err := s.graphTokens(cloud, opts...)
	if err != nil {
		return nil, err
	}
	client := &graph.Client{BaseURL: base, Tokens: tokens, Timeout: s.GraphTimeout}
	switch {
	case s.GraphBatch == 0: // auto
		return &graph.Batcher{Client: client, Auto: true}, nil
	case s.GraphBatch > 1:
		return &graph.Batcher{Client: client, Size: s.GraphBatch}, nil
	}
	return client, nil
}

// graphTokens is the token source of the settings: HWSTATE_GRAPH_TOKEN, or client
// credentials, never both.
func (s *settings) graphTokens(cloud graph.Cloud, opts ...graph.SignInOption) (graph.TokenSource, error) {
	secret, cert, token := s.ClientSecret.value, s.ClientCert.value, s.GraphToken.value
	anyGiven := s.TenantID != "" || s.ClientID != "" || secret != "" || cert != ""
	switch {
	case token != "" && anyGiven:
		return nil, errors.New("two kinds of Graph credentials: --graph-token (HWSTATE_GRAPH_TOKEN) and client credentials are both set; give one")
	case token != "":
		return graph.StaticToken(token), nil
	case secret == "" && cert == "" && os.Getenv("AZURE_FEDERATED_TOKEN_FILE") != "":
		return s.workloadIdentity(cloud, opts)
	case !anyGiven:
		return nil, errors.New("no Graph credentials: set --tenant-id, --client-id and --client-secret or --client-cert " +
			"(HWSTATE_TENANT_ID, HWSTATE_CLIENT_ID, HWSTATE_CLIENT_SECRET or HWSTATE_CLIENT_CERT, each secret also as a file: *_FILE), " +
			"run under Azure Workload Identity (AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID, AZURE_TENANT_ID), " +
			"or set --graph-token (HWSTATE_GRAPH_TOKEN) for an emulator; see hwstate run --help")
	case secret != "" && cert != "":
		return nil, errors.New("two Graph client credentials: --client-secret and --client-cert are both set; give one")
	}
	var missing []string
	if s.TenantID == "" {
		missing = append(missing, "--tenant-id (HWSTATE_TENANT_ID)")
	}
	if s.ClientID == "" {
		missing = append(missing, "--client-id (HWSTATE_CLIENT_ID)")
	}
	if secret == "" && cert == "" {
		missing = append(missing, "--client-secret (HWSTATE_CLIENT_SECRET) or --client-cert (HWSTATE_CLIENT_CERT)")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("half-given Graph client credentials: missing %s", strings.Join(missing, ", "))
	}
	creds := graph.ClientCredentials{Cloud: cloud, TenantID: s.TenantID, ClientID: s.ClientID, Secret: secret}
	if cert != "" {
		pem, err := s.ClientCert.pem()
		if err != nil {
			return nil, err
		}
		creds.Certificate = pem
	}
	return graph.NewCredentialTokens(creds, opts...)
}

// workloadIdentity signs in as the Azure Workload Identity webhook set the pod up to (AKS):
// with the service account token in AZURE_FEDERATED_TOKEN_FILE, as the app registration or
// managed identity AZURE_CLIENT_ID of the tenant AZURE_TENANT_ID (--client-id and --tenant-id
// win), at the authority AZURE_AUTHORITY_HOST (the cluster's cloud; else --graph-cloud's),
// for --graph-cloud's Graph. No secret is held.
func (s *settings) workloadIdentity(cloud graph.Cloud, opts []graph.SignInOption) (graph.TokenSource, error) {
	creds := graph.ClientCredentials{
		Cloud:              cloud,
		TenantID:           cmp.Or(s.TenantID, os.Getenv("AZURE_TENANT_ID")),
		ClientID:           cmp.Or(s.ClientID, os.Getenv("AZURE_CLIENT_ID")),
		FederatedTokenFile: os.Getenv("AZURE_FEDERATED_TOKEN_FILE"),
	}
	if host := os.Getenv("AZURE_AUTHORITY_HOST"); host != "" {
		creds.Cloud.SignIn.ActiveDirectoryAuthorityHost = host
	}
	tokens, err := graph.NewCredentialTokens(creds, opts...)
	if err != nil {
		return nil, fmt.Errorf("workload identity (AZURE_FEDERATED_TOKEN_FILE): %w", err)
	}
	return tokens, nil
}

// pem reads --client-cert: the PEM itself (as a secret store may hand it over), which is
// anything holding "-----BEGIN" (openssl puts "Bag Attributes" before it), or else the name
// of a file holding it. The error never shows the value: a PEM that did not look like one
// would be a private key in the log.
func (v *secret) pem() ([]byte, error) {
	if strings.Contains(v.value, "-----BEGIN") {
		return []byte(v.value), nil
	}
	data, err := os.ReadFile(v.value)
	if err != nil {
		return nil, fmt.Errorf("%s holds no PEM (no -----BEGIN line) and is not the name of a file that can be read (%w); "+
			"its value is not shown, as it may be a key (--client-cert-file names its file in errors)", v.source(), pathCause(err))
	}
	return data, nil
}

// cloudUsage documents --graph-cloud from the clouds graph knows: each one's Graph and
// sign-in authority.
func cloudUsage() string {
	var clouds []string
	for _, c := range graph.Clouds() {
		clouds = append(clouds, fmt.Sprintf("%s (Graph %s, sign-in %s)", c.Name, c.GraphRoot, c.SignIn.ActiveDirectoryAuthorityHost))
	}
	return "national cloud: " + strings.Join(clouds, ", ") + "; the token's scope is <Graph>/.default"
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
			http.Error(w, "not ready: not connected to NATS, the consumer not bound (being made again), or JetStream refusing the worker's writes", http.StatusServiceUnavailable)
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
