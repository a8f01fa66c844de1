package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// WithServerOptions changes the server's options before it starts: a small JetStream store
// (MaxStore) or a low max payload (MaxPayload), for the tests of those limits.
func WithServerOptions(change func(*server.Options)) Option {
	return func(_ testing.TB, s *Server) { change(s.opts) }
}

// WithPassword makes the server accept only the user with this password; ClientOptions
// sign in as it.
func WithPassword(user, password string) Option {
	return func(_ testing.TB, s *Server) {
		s.opts.Username, s.opts.Password = user, password
		s.password = nats.UserInfo(user, password)
	}
}
