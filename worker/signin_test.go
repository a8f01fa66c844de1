package worker_test

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/entratest"
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
			core, logs := observer.New(zap.DebugLevel)
			h.start(worker.WithLogger(zap.New(core)))
			h.publish("signin-1", event(configOK, 1))
			h.publish("signin-2", event(configOK, 2))

			deadline := time.Now().Add(10 * time.Second)
			for logs.FilterMessageSnippet(tt.wantLog).Len() < 2 {
				if time.Now().After(deadline) {
					t.Fatalf("no log saying %q in 10s", tt.wantLog)
				}
				time.Sleep(50 * time.Millisecond)
			}
			time.Sleep(500 * time.Millisecond) // room for a wrong outcome to show
			if n := h.streamMsgs(worker.DefaultDLQStream) + h.streamMsgs(worker.DefaultResultStream); n != 0 {
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
