package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/entratest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// canarySecret is distinctive, so that finding it anywhere it must not be is certain.
const canarySecret = "canary-S3cr3t-worker-5b1d"

// TestSignInFailuresRevealNoSecret runs the worker with client credentials that Graph or the
// sign-in authority refuses. Events wait (no dead letter, no result), the log says what is
// wrong, and no log line holds the client secret or a token, even when the authority
// echoes the secret back.
func TestSignInFailuresRevealNoSecret(t *testing.T) {
	cases := []struct {
		name       string
		authSecret string // the secret the authority accepts
		graphToken string // the token the emulator accepts
		wantLog    string
	}{
		{"authority refuses the secret", "another-secret", "", "cannot sign in to Graph"},
		{"Graph refuses the token", canarySecret, "not-what-the-authority-issues", "DeviceManagementConfiguration.ReadWrite.All"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			auth := entratest.Start(t, tt.authSecret, time.Hour)
			auth.EchoSecret(true)
			global, err := graph.CloudByName("global")
			if err != nil {
				t.Fatal(err)
			}
			tokens, err := graph.NewCredentialTokens(graph.ClientCredentials{
				Cloud: global, TenantID: "contoso.onmicrosoft.com", ClientID: "3f1e5c2a-8b7d-4e6f-9a0b-1c2d3e4f5a6b", Secret: canarySecret,
			}, graph.WithSignInTransport(auth.Transport()), graph.WithoutInstanceDiscovery())
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, emulator.Config{Token: tt.graphToken})
			h.client.Tokens = tokens
			h.cfg.MaxAttempts = 2
			core, logs := observer.New(zap.DebugLevel)
			h.start(worker.WithLogger(zap.New(core)))
			events := []string{"signin-1", "signin-2"}
			for i, id := range events {
				h.publish(id, event(configOK, i+1))
			}

			// Each event is told its failure more often than it has attempts: a worker that
			// counted these failures as the event's would have given it an outcome by then.
			outcomes := func() uint64 {
				return h.streamMsgs(worker.DefaultDLQStream) + h.streamMsgs(worker.DefaultResultStream)
			}
			proctest.WaitFor(t, 20*time.Second, fmt.Sprintf("each event's log saying %q %d times, or an outcome", tt.wantLog, h.cfg.MaxAttempts+1), func() bool {
				for _, id := range events {
					if logs.FilterMessageSnippet(tt.wantLog).FilterField(zap.String("event_id", id)).Len() <= h.cfg.MaxAttempts {
						return outcomes() != 0
					}
				}
				return true
			})
			if n := outcomes(); n != 0 {
				t.Errorf("%d outcomes for events that must wait for working credentials", n)
			}
			enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
			for _, e := range logs.All() {
				buf, err := enc.EncodeEntry(e.Entry, e.Context)
				if err != nil {
					t.Fatal(err)
				}
				line := buf.String()
				buf.Free()
				if strings.Contains(line, canarySecret) || strings.Contains(line, entratest.TokenPrefix) {
					t.Errorf("log line reveals a secret: %s", line)
				}
			}
			if auth.Issued() == 0 && tt.authSecret == canarySecret {
				t.Error("no token was ever issued: the test proves nothing about tokens in logs")
			}
		})
	}
}
