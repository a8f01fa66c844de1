// Package entratest is a Microsoft Entra ID sign-in authority on loopback TLS for tests:
// the OpenID metadata and the OAuth 2.0 token endpoint of the client credentials grant,
// for any authority host, so the national clouds' sign-in can be tested without leaving
// the machine.
package entratest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TokenRequest is what a client asked the token endpoint for.
type TokenRequest struct {
	Host     string // the authority host the client meant, e.g. login.microsoftonline.us
	Tenant   string
	ClientID string
	Scope    string
	// Assertion is true for a client assertion (a certificate's signed one, or a federated
	// token), false for a client secret.
	Assertion bool
	// ClientAssertion is the assertion itself.
	ClientAssertion string
}

// TokenPrefix begins every token the server issues: "access-token-<n>", n from 1.
const TokenPrefix = "access-token-"

// Server is the authority. It accepts one client secret, and any client assertion (a
// certificate's, or a federated token).
type Server struct {
	secret    string
	echo      atomic.Bool
	srv       *httptest.Server
	expiresIn atomic.Int64 // seconds
	issued    atomic.Int64
	mu        sync.Mutex
	requests  []TokenRequest
}

// Start runs an authority issuing tokens that live expiresIn; it stops when the test ends.
func Start(t testing.TB, secret string, expiresIn time.Duration) *Server {
	t.Helper()
	s := &Server{secret: secret}
	s.SetExpiresIn(expiresIn)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.metadata)
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	s.srv = httptest.NewTLSServer(mux)
	t.Cleanup(s.srv.Close)
	return s
}

// SetExpiresIn changes the lifetime of the tokens issued from now on.
func (s *Server) SetExpiresIn(d time.Duration) { s.expiresIn.Store(int64(d / time.Second)) }

// EchoSecret makes refused sign-ins carry the secret the client sent in their error, as a
// careless proxy might: clients must not repeat it.
func (s *Server) EchoSecret(on bool) { s.echo.Store(on) }

// Issued is how many tokens the server has issued.
func (s *Server) Issued() int { return int(s.issued.Load()) }

// Requests are the token requests so far, refused ones included.
func (s *Server) Requests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TokenRequest(nil), s.requests...)
}

// Transport sends every request, whatever its host, to the server, which trusts its own
// certificate; the host meant stays in the Host header. It is an azcore policy.Transporter.
func (s *Server) Transport() *Transport {
	return &Transport{client: s.srv.Client(), target: strings.TrimPrefix(s.srv.URL, "https://")}
}

// Transport is Server's rerouting HTTP transport.
type Transport struct {
	client *http.Client
	target string
}

// Do sends r to the server.
func (t *Transport) Do(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = r.URL.Host
	r.URL.Scheme, r.URL.Host = "https", t.target
	return t.client.Do(r)
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	base := "https://" + r.Host + "/" + r.PathValue("tenant")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                base + "/v2.0",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt"},
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	req := TokenRequest{
		Host: r.Host, Tenant: r.PathValue("tenant"), ClientID: r.PostForm.Get("client_id"),
		Scope: r.PostForm.Get("scope"), Assertion: r.PostForm.Get("client_assertion") != "",
		ClientAssertion: r.PostForm.Get("client_assertion"),
	}
	s.mu.Lock()
	s.requests = append(s.requests, req)
	s.mu.Unlock()
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	case !req.Assertion && r.PostForm.Get("client_secret") != s.secret:
		desc := "AADSTS7000215: Invalid client secret provided."
		if s.echo.Load() {
			desc += " Received: " + r.PostForm.Get("client_secret")
		}
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": desc})
		return
	}
	n := s.issued.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": s.expiresIn.Load(), "ext_expires_in": s.expiresIn.Load(),
		"access_token": fmt.Sprintf("%s%d", TokenPrefix, n),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
