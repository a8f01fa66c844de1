// Package natstest starts real NATS JetStream servers inside a test process: one on a random
// port with a temporary store, or a three-node cluster on loopback. hwstate's tests never mock
// NATS.
package natstest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
)

// Server is a JetStream server run by a test.
type Server struct {
	*server.Server
	opts *server.Options

	// CAFile is the PEM file of the CA that signed the server's certificate (WithTLS).
	CAFile string
	// CredsFile is a user's .creds file (WithCreds).
	CredsFile string
	// UserCreds are the .creds files of the users of WithUsers, by name.
	UserCreds map[string]string
	// password signs in as the user of WithPassword.
	password nats.Option
}

// Option changes how Start sets up a server.
type Option func(t testing.TB, s *Server)

// Start starts a JetStream server on a random loopback port, storing in a fresh temp dir;
// it is shut down when the test ends.
func Start(t testing.TB, options ...Option) *Server {
	t.Helper()
	s := &Server{opts: sandbox.JetStreamOptions("test", t.TempDir(), "127.0.0.1", 0)}
	for _, o := range options {
		o(t, s)
	}
	return s.start(t)
}

func start(t testing.TB, opts *server.Options) *Server {
	t.Helper()
	return (&Server{opts: opts}).start(t)
}

func (s *Server) start(t testing.TB) *Server {
	t.Helper()
	// The server fills in its options (trusted keys, for one), which a restart must not see.
	again := *s.opts
	ns, err := sandbox.StartServer(s.opts)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the port it got, so a restart comes back where clients reconnect.
	again.Port = ns.Addr().(*net.TCPAddr).Port
	s.Server, s.opts = ns, &again
	t.Cleanup(s.Stop)
	return s
}

// ClientOptions are what a client needs besides the URL: the CA and the credentials the
// server was started with.
func (s *Server) ClientOptions() []nats.Option {
	var opts []nats.Option
	if s.CAFile != "" {
		opts = append(opts, nats.RootCAs(s.CAFile))
	}
	if s.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.CredsFile))
	}
	if s.password != nil {
		opts = append(opts, s.password)
	}
	return opts
}

// Stop shuts the server down and waits for it.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}

// Restart stops the server and starts it again on the same port and store.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	opts := *s.opts
	ns, err := sandbox.StartServer(&opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	s.Server = ns
}

// Cluster starts three JetStream servers routed to each other on loopback.
func Cluster(t testing.TB) []*Server {
	t.Helper()
	ports := freePorts(t, 6)
	var routes []string
	for i := range 3 {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
	}
	var out []*Server
	for i := range 3 {
		opts := sandbox.JetStreamOptions(fmt.Sprintf("n%d", i+1), t.TempDir(), "127.0.0.1", ports[i])
		opts.Cluster = server.ClusterOpts{Name: "hwstate-test", Host: "127.0.0.1", Port: ports[3+i]}
		opts.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		out = append(out, start(t, opts))
	}
	waitMetaLeader(t, out)
	return out
}

// waitMetaLeader waits until the cluster has elected a JetStream meta leader that every node
// follows: before that, creating a stream times out.
func waitMetaLeader(t testing.TB, nodes []*Server) {
	t.Helper()
	proctest.WaitFor(t, 30*time.Second, "the cluster to elect a JetStream meta leader", func() bool {
		leaders, current := 0, 0
		for _, s := range nodes {
			if s.JetStreamIsLeader() {
				leaders++
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		return leaders == 1 && current == len(nodes)
	})
}

// freePorts finds n free loopback ports; a cluster must know its routes before it starts.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		_ = ln.Close()
	}
	return ports
}

// Connect connects to the server (or cluster URLs) and returns the JetStream handle; the
// connection closes when the test ends.
func Connect(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(100 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}
