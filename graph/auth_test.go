package graph

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/entratest"
)

const (
	testTenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	testClient = "3f1e5c2a-8b7d-4e6f-9a0b-1c2d3e4f5a6b"
	// canarySecret is distinctive, so that finding it anywhere it must not be is certain.
	canarySecret = "canary-S3cr3t-7f4e2d9c"
)

// selfSigned is a PEM certificate with its private key, as an app registration's
// certificate credential is kept.
func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, der := entratest.SelfSigned(t)
	out := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return append(out, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
}

// signIn is CredentialTokens for cloud whose sign-in goes to the local authority.
func signIn(t *testing.T, auth *entratest.Server, cloud Cloud, creds ClientCredentials) *CredentialTokens {
	t.Helper()
	creds.Cloud, creds.TenantID, creds.ClientID = cloud, testTenant, testClient
	tokens, err := NewCredentialTokens(creds, WithSignInTransport(auth.Transport()), WithoutInstanceDiscovery())
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func TestSignInPerCloud(t *testing.T) {
	hosts := map[string]string{
		"global": "login.microsoftonline.com", "usgov": "login.microsoftonline.us",
		"usgovdod": "login.microsoftonline.us", "china": "login.chinacloudapi.cn",
	}
	scopes := map[string]string{
		"global": "https://graph.microsoft.com/.default", "usgov": "https://graph.microsoft.us/.default",
		"usgovdod": "https://dod-graph.microsoft.us/.default", "china": "https://microsoftgraph.chinacloudapi.cn/.default",
	}
	cert := selfSigned(t)
	// A Kubernetes service account token, as the kubelet projects it for Azure Workload Identity.
	const federated = "eyJhbGciOiJSUzI1NiJ9.service-account-token.signature"
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cloud := range Clouds() {
		for _, kind := range []string{"secret", "certificate", "workload identity"} {
			t.Run(cloud.Name+"/"+kind, func(t *testing.T) {
				auth := entratest.Start(t, canarySecret, time.Hour)
				creds := map[string]ClientCredentials{
					"secret":            {Secret: canarySecret},
					"certificate":       {Certificate: cert},
					"workload identity": {FederatedTokenFile: tokenFile},
				}[kind]
				tokens := signIn(t, auth, cloud, creds)
				token, err := tokens.Token(context.Background(), false)
				if err != nil {
					t.Fatal(err)
				}
				if token != entratest.TokenPrefix+"1" {
					t.Errorf("token %q", token)
				}
				reqs := auth.Requests()
				if len(reqs) != 1 {
					t.Fatalf("%d token requests: %+v", len(reqs), reqs)
				}
				want := entratest.TokenRequest{Host: hosts[cloud.Name], Tenant: testTenant, ClientID: testClient,
					Scope: scopes[cloud.Name], Assertion: kind != "secret"}
				// MSAL adds the OpenID scopes it always asks for.
				if got := reqs[0]; got.Host != want.Host || got.Tenant != want.Tenant || got.ClientID != want.ClientID ||
					!strings.Contains(" "+got.Scope+" ", " "+want.Scope+" ") || got.Assertion != want.Assertion {
					t.Errorf("token request %+v, want %+v", got, want)
				}
				if got := reqs[0].ClientAssertion; kind == "workload identity" && got != federated {
					t.Errorf("client assertion %q, want the federated token file's content", got)
				}
			})
		}
	}
}

// fakeClock is a clock that moves only when told to. It counts how often it is read, so
// that a test can wait for callers to have asked for a token.
type fakeClock struct {
	mu    sync.Mutex
	read  sync.Cond
	now   time.Time
	reads int
}

func newFakeClock(now time.Time) *fakeClock {
	c := &fakeClock{now: now}
	c.read.L = &c.mu
	return c
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reads++
	c.read.Broadcast()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Reads is how many times the clock has been read.
func (c *fakeClock) Reads() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// awaitReads waits until the clock has been read n times in all, and reports whether it
// was within the real time limit, which only keeps a broken test from hanging.
func (c *fakeClock) awaitReads(n int, limit time.Duration) bool {
	expired := false
	timer := time.AfterFunc(limit, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		expired = true
		c.read.Broadcast()
	})
	defer timer.Stop()
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.reads < n && !expired {
		c.read.Wait()
	}
	return c.reads >= n
}

func TestSignInTokenLifecycle(t *testing.T) {
	// Tokens live under MSAL's 5-minute margin, so azidentity holds none of its own: each
	// sign-in that CredentialTokens decides on reaches the authority. They are refreshed at
	// half their life, decided on the fake clock; their expiry is azidentity's, from the
	// real clock, which stays within seconds of the fake one.
	const life = 4 * time.Minute
	auth := entratest.Start(t, canarySecret, life)
	clock := newFakeClock(time.Now())
	creds := ClientCredentials{Cloud: Clouds()[0], TenantID: testTenant, ClientID: testClient, Secret: canarySecret}
	tokens, err := NewCredentialTokens(creds, WithSignInTransport(auth.Transport()), WithoutInstanceDiscovery(), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	e, srv := newEmulatorServer(t, emulator.Config{Token: entratest.TokenPrefix + "1"})
	c := &Client{BaseURL: srv.URL + "/beta", Tokens: tokens}
	createAll := func(n int, want int) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				if resp, err := c.Create(context.Background(), testRequest(fmt.Sprint("life-", i))); err != nil || resp.Status != want {
					t.Errorf("create: %d %v, want %d", resp.Status, err, want)
				}
			})
		}
		wg.Wait()
	}
	steps := []struct {
		name string
		// advance is how long passes before the step, graphToken the only token Graph takes then.
		advance    time.Duration
		graphToken string
		creates    int
		// signIns and unauthorized are the totals after the step.
		signIns      int
		unauthorized uint64
	}{
		{"one sign-in for 50 creates", 0, "1", 50, 1, 0},
		// Graph now wants the next token (the first was revoked): the 401 forces a sign-in
		// that bypasses azidentity's cache, and the create is sent again with the new token.
		{"a revoked token", forceInterval, "2", 1, 2, 1},
		{"the new token held", 0, "2", 10, 2, 1},
		{"held before half its life", life / 4, "2", 10, 2, 1},
		// Past half of its life the token is replaced before any 401.
		{"replaced past half its life", life / 2, "3", 10, 3, 1},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		e.SetConfig(emulator.Config{Token: entratest.TokenPrefix + step.graphToken})
		createAll(step.creates, 201)
		if n, u := auth.Issued(), e.Stats().Unauthorized; n != step.signIns || u != step.unauthorized {
			t.Fatalf("%s: %d sign-ins, %d 401s; want %d, %d", step.name, n, u, step.signIns, step.unauthorized)
		}
		if i == 0 {
			// A forced refresh right after a sign-in is answered by it: a burst of 401s is one sign-in.
			if tok, err := tokens.Token(context.Background(), true); err != nil || tok != entratest.TokenPrefix+"1" || auth.Issued() != 1 {
				t.Fatalf("forced at once: %q %v, %d sign-ins", tok, err, auth.Issued())
			}
		}
	}
}

func TestSignInNeverRevealsTheSecret(t *testing.T) {
	auth := entratest.Start(t, "the-right-secret", time.Hour)
	auth.EchoSecret(true)
	tokens := signIn(t, auth, Clouds()[0], ClientCredentials{Secret: canarySecret})
	_, err := tokens.Token(context.Background(), false)
	if err == nil {
		t.Fatal("signed in with the wrong secret")
	}
	if strings.Contains(err.Error(), canarySecret) || !strings.Contains(err.Error(), "[secret]") {
		t.Errorf("error %q: want the secret replaced", err)
	}
	// Through the client too: the create's error names the sign-in, not the secret.
	_, srv := newEmulatorServer(t, emulator.Config{})
	c := &Client{BaseURL: srv.URL + "/beta", Tokens: tokens}
	if _, err := c.Create(context.Background(), testRequest("x")); err == nil || strings.Contains(err.Error(), canarySecret) {
		t.Errorf("create error %v", err)
	}
}

// TestOnSignInFailure: every sign-in the authority refuses is reported once, with the
// error Token returns (the secret replaced), and a sign-in that succeeds is not.
func TestOnSignInFailure(t *testing.T) {
	for _, tc := range []struct {
		name, secret string
		want         int
	}{
		{"accepted", canarySecret, 0},
		{"refused", "the-right-secret", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			auth := entratest.Start(t, tc.secret, time.Hour)
			auth.EchoSecret(true)
			var reported []error
			tokens, err := NewCredentialTokens(
				ClientCredentials{Cloud: Clouds()[0], TenantID: testTenant, ClientID: testClient, Secret: canarySecret},
				WithSignInTransport(auth.Transport()), WithoutInstanceDiscovery(),
				OnSignInFailure(func(err error) { reported = append(reported, err) }))
			if err != nil {
				t.Fatal(err)
			}
			var errs []error
			for _, force := range []bool{false, true} {
				if _, err := tokens.Token(context.Background(), force); err != nil {
					errs = append(errs, err)
				}
			}
			if len(reported) != tc.want || len(errs) != tc.want {
				t.Fatalf("%d failures reported, %d returned, want %d of each", len(reported), len(errs), tc.want)
			}
			for i, err := range reported {
				if err != errs[i] || strings.Contains(err.Error(), canarySecret) {
					t.Errorf("reported %q, Token returned %q: want the same error, without the secret", err, errs[i])
				}
			}
		})
	}
}

func TestNewCredentialTokensRefusesHalfGivenCredentials(t *testing.T) {
	global := Clouds()[0]
	cases := []struct {
		name  string
		creds ClientCredentials
		want  string
	}{
		{"nothing", ClientCredentials{Cloud: global}, "missing a tenant id, a client id, a client secret, a certificate or a federated token file"},
		{"tenant only", ClientCredentials{Cloud: global, TenantID: testTenant}, "missing a client id, a client secret, a certificate or a federated token file"},
		{"no secret", ClientCredentials{Cloud: global, TenantID: testTenant, ClientID: testClient}, "missing a client secret, a certificate or a federated token file"},
		{"no client id", ClientCredentials{Cloud: global, TenantID: testTenant, Secret: canarySecret}, "missing a client id"},
		{"both", ClientCredentials{Cloud: global, TenantID: testTenant, ClientID: testClient, Secret: canarySecret, Certificate: []byte("x")}, "more than one"},
		{"secret and federated token", ClientCredentials{Cloud: global, TenantID: testTenant, ClientID: testClient, Secret: canarySecret, FederatedTokenFile: "/var/run/secrets/azure/tokens/azure-identity-token"}, "more than one"},
		{"missing federated token file", ClientCredentials{Cloud: global, TenantID: testTenant, ClientID: testClient, FederatedTokenFile: "/nonexistent/azure-identity-token"}, "federated token file"},
		{"no cloud", ClientCredentials{TenantID: testTenant, ClientID: testClient, Secret: canarySecret}, "sign-in authority"},
		{"bad certificate", ClientCredentials{Cloud: global, TenantID: testTenant, ClientID: testClient, Certificate: []byte("not PEM")}, "certificate"},
		{"bad tenant", ClientCredentials{Cloud: global, TenantID: "a/b", ClientID: testClient, Secret: canarySecret}, "tenant"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewCredentialTokens(tt.creds)
			if !errors.Is(err, ErrCredentials) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err %v, want ErrCredentials saying %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), canarySecret) {
				t.Errorf("err %q reveals the secret", err)
			}
		})
	}
}

// TestForbiddenForcesOneRefresh: a 403 may come from a token issued before the admin
// consent, so it is answered like a 401, by one fresh token and one more request.
func TestForbiddenForcesOneRefresh(t *testing.T) {
	cases := []struct {
		name     string
		seq      []string // the tokens the source gives, one after the other
		status   int
		requests int32
	}{
		{"the fresh token has the permission", []string{"before-consent", "after-consent"}, 201, 2},
		{"it does not", []string{"before-consent", "still-before"}, 403, 2},
		{"a fixed token is not resent", []string{"before-consent"}, 403, 1},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tokens := &tokens{seq: tt.seq}
			var requests atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if r.Header.Get("Authorization") != "Bearer after-consent" {
					w.WriteHeader(http.StatusForbidden)
					_, _ = io.WriteString(w, `{"error":{"code":"Forbidden","message":"missing role"}}`)
					return
				}
				w.WriteHeader(http.StatusCreated)
				_, _ = io.WriteString(w, `{"id":"x"}`)
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, Tokens: tokens}
			resp, err := c.Create(context.Background(), testRequest("forbidden"))
			if err != nil || resp.Status != tt.status || requests.Load() != tt.requests || tokens.forced.Load() != 1 {
				t.Errorf("answer %d %v after %d requests, %d forced refreshes; want %d after %d, 1",
					resp.Status, err, requests.Load(), tokens.forced.Load(), tt.status, tt.requests)
			}
		})
	}
}
