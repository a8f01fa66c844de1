package sandbox

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// StartServer starts a NATS server in this process with opts and waits until it takes
// connections: `hwstate run`'s embedded server, the sandbox's, and every test server
// (internal/natstest) start here.
func StartServer(opts *server.Options) (*server.Server, error) {
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded NATS server on %s:%d did not start (is the port taken?)", opts.Host, opts.Port)
	}
	return ns, nil
}

// StartJetStream starts a JetStream server storing in dir and listening on listen
// (host:port; port 0 picks a free one).
func StartJetStream(dir, listen string) (*server.Server, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded listen address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("embedded listen port %q: %w", portText, err)
	}
	return StartServer(JetStreamOptions("hwstate-embedded", dir, host, port))
}

// JetStreamOptions are the options of a JetStream server named name, storing in dir and
// listening on host and port (0: a free one), for StartServer.
func JetStreamOptions(name, dir, host string, port int) *server.Options {
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return &server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
	}
}
