// Package sandbox is the one local stack hwstate runs on when nothing is given: a JetStream
// server embedded in the process and storing in a temporary directory, a connection to it,
// and the Graph emulator on a 127.0.0.1 listener; with the helpers to publish events, count
// what the streams hold and read the outcomes back. The demo, the bench and the tests stand
// on it (tests hand it a server of internal/natstest, to restart one or run a cluster).
package sandbox

import (
	"net"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
)

// Sandbox is a running stack. Close stops what New started.
type Sandbox struct {
	// NATSURL is the server (or cluster) the connection is to.
	NATSURL string
	// NATS is the embedded server; nil when the sandbox was given one (WithNATS).
	NATS *server.Server
	Conn *nats.Conn
	JS   jetstream.JetStream

	Emulator *emulator.Emulator
	// GraphURL is the emulator's Graph base URL, for HWSTATE_GRAPH_BASE_URL.
	GraphURL string
	// Token is the only bearer token the emulator accepts.
	Token string

	emulatorAddr string
	closers      []func()
}

// TenantGraphURL is the Graph base URL of one tenant of the emulator, in multi-tenant mode.
func (sb *Sandbox) TenantGraphURL(tenantID string) string {
	return "http://" + sb.emulatorAddr + "/tenants/" + tenantID + "/beta"
}

// DefaultToken is the emulator's token when the configuration has none.
const DefaultToken = "sandbox-token"

type options struct {
	natsURL  string
	natsOpts []nats.Option
	emulator emulator.Config
	wrap     func(http.Handler) http.Handler
}

// Option changes what New sets up.
type Option func(*options)

// WithNATS connects to the server(s) at url instead of starting one.
func WithNATS(url string, opts ...nats.Option) Option {
	return func(o *options) { o.natsURL, o.natsOpts = url, opts }
}

// WithEmulator configures the Graph emulator; without a token it accepts DefaultToken.
func WithEmulator(cfg emulator.Config) Option {
	return func(o *options) { o.emulator = cfg }
}

// WithHandler puts wrap around the emulator's handler, to watch the requests reaching it.
func WithHandler(wrap func(http.Handler) http.Handler) Option {
	return func(o *options) { o.wrap = wrap }
}

// New starts the stack.
func New(opts ...Option) (sb *Sandbox, err error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	sb = &Sandbox{NATSURL: o.natsURL}
	defer func() {
		if err != nil {
			sb.Close()
		}
	}()
	if sb.NATSURL == "" {
		dir, err := os.MkdirTemp("", "hwstate-sandbox-")
		if err != nil {
			return nil, err
		}
		sb.onClose(func() { _ = os.RemoveAll(dir) })
		if sb.NATS, err = StartJetStream(dir, "127.0.0.1:0"); err != nil {
			return nil, err
		}
		sb.onClose(func() { sb.NATS.Shutdown(); sb.NATS.WaitForShutdown() })
		sb.NATSURL = sb.NATS.ClientURL()
	}
	natsOpts := append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, o.natsOpts...)
	if sb.Conn, err = nats.Connect(sb.NATSURL, natsOpts...); err != nil {
		return nil, err
	}
	sb.onClose(sb.Conn.Close)
	if sb.JS, err = jetstream.New(sb.Conn); err != nil {
		return nil, err
	}

	cfg := o.emulator
	if cfg.Token == "" {
		cfg.Token = DefaultToken
	}
	sb.Token = cfg.Token
	sb.Emulator = emulator.New(cfg)
	var handler http.Handler = sb.Emulator
	if o.wrap != nil {
		handler = o.wrap(handler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	sb.onClose(func() { _ = srv.Close() })
	sb.GraphURL = "http://" + ln.Addr().String() + "/beta"
	sb.emulatorAddr = ln.Addr().String()
	return sb, nil
}

func (sb *Sandbox) onClose(f func()) { sb.closers = append(sb.closers, f) }

// Close stops the emulator, closes the connection and stops the server, in that order.
func (sb *Sandbox) Close() {
	for _, c := range slices.Backward(sb.closers) {
		c()
	}
	sb.closers = nil
}

// Client is a Graph client of the emulator, with its token.
func (sb *Sandbox) Client(timeout time.Duration) *graph.Client {
	return &graph.Client{BaseURL: sb.GraphURL, Tokens: graph.StaticToken(sb.Token), Timeout: timeout}
}
