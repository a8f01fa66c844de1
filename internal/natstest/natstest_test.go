package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
)

// Each kind of server takes JetStream work from a client with the right options, keeps it
// across a restart, and refuses a client without them.
func TestServers(t *testing.T) {
	cases := []struct {
		name    string
		options []natstest.Option
		scheme  string
	}{
		{"plain", nil, "nats://"},
		{"TLS", []natstest.Option{natstest.WithTLS()}, "tls://"},
		{"creds", []natstest.Option{natstest.WithCreds()}, "nats://"},
		{"TLS and creds", []natstest.Option{natstest.WithTLS(), natstest.WithCreds()}, "tls://"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := natstest.Start(t, c.options...)
			url := s.ClientURL()
			if url[:len(c.scheme)] != c.scheme {
				t.Errorf("URL %s, want %s...", url, c.scheme)
			}
			_, js := natstest.Connect(t, url, s.ClientOptions()...)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s"}}); err != nil {
				t.Fatalf("create stream: %v", err)
			}
			if _, err := js.Publish(ctx, "s", []byte("x")); err != nil {
				t.Fatalf("publish: %v", err)
			}
			s.Restart(t)
			// A request right after the restart may find the stream not yet recovered, or go
			// out as the client reconnects and never be answered: each try has its own limit.
			proctest.WaitFor(t, 20*time.Second, "the stream with its message after the restart", func() bool {
				try, cancelTry := context.WithTimeout(ctx, 2*time.Second)
				defer cancelTry()
				stream, err := js.Stream(try, "S")
				if err != nil {
					return false
				}
				info, err := stream.Info(try)
				return err == nil && info.State.Msgs == 1
			})
			if len(c.options) == 0 {
				return
			}
			if nc, err := nats.Connect(url, nats.Timeout(2*time.Second)); err == nil {
				nc.Close()
				t.Error("a client without the CA or credentials was let in")
			}
		})
	}
}
