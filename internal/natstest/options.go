package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
)

// WithServerOptions changes the server's options before it starts: a small JetStream store
// (MaxStore) or a low max payload (MaxPayload), for the tests of those limits.
func WithServerOptions(change func(*server.Options)) Option {
	return func(_ testing.TB, s *Server) { change(s.opts) }
}
