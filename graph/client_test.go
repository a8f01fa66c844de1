package graph

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/schema"
)

func testRequest(eventID string) Request {
	return Request{ConfigurationID: testConfigID, ClientRequestID: ClientRequestID(eventID), Body: testBody()}
}

func TestCreateAgainstEmulator(t *testing.T) {
	tests := []struct {
		name           string
		cfg            emulator.Config
		body           []byte // nil: a valid entity
		wantStatus     int
		wantClass      Class
		wantCode       string
		wantRetryAfter time.Duration
		hasRetryAfter  bool
	}{
		{name: "created", cfg: emulator.Config{Token: testToken}, wantStatus: 201, wantClass: Created},
		{name: "unknown configuration", cfg: emulator.Config{NotFoundIDs: []string{strings.ToUpper(testConfigID)}},
			wantStatus: 404, wantClass: Rejected, wantCode: "ResourceNotFound"},
		{name: "rejected configuration", cfg: emulator.Config{RejectIDs: []string{testConfigID}},
			wantStatus: 400, wantClass: Rejected, wantCode: "BadRequest"},
		{name: "invalid body", body: []byte(`{"upn":"ada@contoso.com"}`),
			wantStatus: 400, wantClass: Rejected, wantCode: "BadRequest"},
		{name: "throttled", cfg: emulator.Config{ThrottleFirst: 1, RetryAfter: 2128 * time.Millisecond},
			wantStatus: 429, wantClass: Transient, wantCode: "TooManyRequests", wantRetryAfter: 2128 * time.Millisecond, hasRetryAfter: true},
		{name: "throttled without Retry-After", cfg: emulator.Config{ThrottleFirst: 1, OmitRetryAfter: true},
			wantStatus: 429, wantClass: Transient, wantCode: "TooManyRequests"},
		{name: "outage", cfg: emulator.Config{Outage: true},
			wantStatus: 503, wantClass: Transient, wantCode: "ServiceUnavailable"},
		{name: "bandwidth exceeded", cfg: emulator.Config{FailFirst: 1, FailStatus: 509},
			wantStatus: 509, wantClass: Transient, wantCode: "ServiceError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newEmulatorServer(t, tt.cfg)
			c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}
			req := testRequest(tt.name)
			if tt.body != nil {
				req.Body = tt.body
			}
			resp, err := c.Create(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.wantStatus || resp.Class != tt.wantClass {
				t.Fatalf("answer %d %v, want %d %v (%+v)", resp.Status, resp.Class, tt.wantStatus, tt.wantClass, resp.Error)
			}
			if resp.RetryAfter != tt.wantRetryAfter || resp.HasRetryAfter != tt.hasRetryAfter {
				t.Errorf("Retry-After %v %v, want %v %v", resp.RetryAfter, resp.HasRetryAfter, tt.wantRetryAfter, tt.hasRetryAfter)
			}
			if !schema.IsGUID(resp.RequestID) || resp.ClientRequestID != req.ClientRequestID || resp.Date == "" {
				t.Errorf("tracing headers: request-id %q client-request-id %q Date %q", resp.RequestID, resp.ClientRequestID, resp.Date)
			}
			if tt.wantClass == Created {
				if resp.Error != nil || !schema.IsGUID(resp.GraphID) || !json.Valid(resp.Body) ||
					!strings.Contains(string(resp.Body), `"id":"`+resp.GraphID+`"`) {
					t.Errorf("created: GraphID %q Body %s Error %v", resp.GraphID, resp.Body, resp.Error)
				}
				return
			}
			if resp.Error == nil || resp.Error.Code != tt.wantCode || resp.GraphID != "" || resp.Body != nil {
				t.Fatalf("Error %+v, want code %q; GraphID %q Body %s", resp.Error, tt.wantCode, resp.GraphID, resp.Body)
			}
			if !strings.Contains(string(resp.Error.InnerError), resp.RequestID) {
				t.Errorf("innerError %s lacks request-id %s", resp.Error.InnerError, resp.RequestID)
			}
		})
	}
}

func TestCreateBaseURL(t *testing.T) {
	_, srv := newEmulatorServer(t, emulator.Config{})
	for _, base := range []string{srv.URL, srv.URL + "/", srv.URL + "/beta", srv.URL + "/beta/", srv.URL + "/some/gateway/v1.0"} {
		c := &Client{BaseURL: base, Tokens: StaticToken(testToken)}
		if resp, err := c.Create(context.Background(), testRequest(base)); err != nil || resp.Status != 201 {
			t.Errorf("BaseURL %q: %d %v %+v", base, resp.Status, err, resp.Error)
		}
	}
}

// capture is a server that records each request and answers 201.
type capture struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.reqs, c.body = append(c.reqs, r), append(c.body, body)
	c.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write([]byte(`{"id":"x"}`))
}

func TestCreateSends(t *testing.T) {
	var got capture
	srv := httptest.NewServer(&got)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL + "/beta/", Tokens: StaticToken(testToken)}
	for range 2 {
		if _, err := c.Create(context.Background(), testRequest("HWSTATE_EVENTS-42")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create(context.Background(), testRequest("HWSTATE_EVENTS-43")); err != nil {
		t.Fatal(err)
	}

	first := got.reqs[0]
	if first.Method != http.MethodPost || first.URL.Path != createPath(testConfigID) {
		t.Errorf("%s %s", first.Method, first.URL.Path)
	}
	for header, want := range map[string]string{
		"Authorization": "Bearer " + testToken,
		"Accept":        "application/json",
		"Content-Type":  "application/json",
	} {
		if v := first.Header.Get(header); v != want {
			t.Errorf("%s: %q, want %q", header, v, want)
		}
	}
	if string(got.body[0]) != string(testBody()) {
		t.Errorf("body %s", got.body[0])
	}
	crid := first.Header.Get("client-request-id")
	if id, err := uuid.Parse(crid); err != nil || id.Version() != 5 || !schema.IsGUID(crid) {
		t.Errorf("client-request-id %q is not a version 5 GUID (%v)", crid, err)
	}
	if again := got.reqs[1].Header.Get("client-request-id"); again != crid {
		t.Errorf("client-request-id changed between attempts: %q, %q", crid, again)
	}
	if other := got.reqs[2].Header.Get("client-request-id"); other == crid {
		t.Errorf("two events share client-request-id %q", crid)
	}
}

func TestClientRequestID(t *testing.T) {
	// Fixed for good: a change would give every event in flight a new id. The value is
	// Python's uuid.uuid5(UUID(requestIDNamespace), "HWSTATE_EVENTS-1").
	if got, want := ClientRequestID("HWSTATE_EVENTS-1"), "c403f5b1-2ab7-5f46-9691-21ac9a6b48ec"; got != want {
		t.Errorf("ClientRequestID = %q, want %q (the namespace changed?)", got, want)
	}
}

// tokens answers a sequence of tokens (the last one repeats) and counts requests.
type tokens struct {
	seq      []string
	forceErr error // answered to force=true
	calls    atomic.Int32
	forced   atomic.Int32
}

func (s *tokens) Token(_ context.Context, force bool) (string, error) {
	n := int(s.calls.Add(1))
	if force {
		s.forced.Add(1)
		if s.forceErr != nil {
			return "", s.forceErr
		}
	}
	return s.seq[min(n, len(s.seq))-1], nil
}

func TestCreateUnauthorized(t *testing.T) {
	tests := []struct {
		name             string
		tokens           *tokens
		wantStatus       int
		wantClass        Class
		wantUnauthorized uint64
	}{
		{"refresh helps", &tokens{seq: []string{"expired", testToken}}, 201, Created, 1},
		{"refresh does not help", &tokens{seq: []string{"wrong", "still wrong"}}, 401, Systemic, 2},
		{"refresh fails", &tokens{seq: []string{"wrong"}, forceErr: errors.New("sign-in down")}, 401, Systemic, 1},
		{"the same token again is not resent", &tokens{seq: []string{"wrong"}}, 401, Systemic, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newEmulatorServer(t, emulator.Config{Token: testToken})
			c := &Client{BaseURL: srv.URL, Tokens: tt.tokens}
			resp, err := c.Create(context.Background(), testRequest("e"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.wantStatus || resp.Class != tt.wantClass {
				t.Errorf("answer %d %v, want %d %v", resp.Status, resp.Class, tt.wantStatus, tt.wantClass)
			}
			if resp.Class == Systemic && (resp.Error == nil || resp.Error.Code != "InvalidAuthenticationToken") {
				t.Errorf("Error %+v", resp.Error)
			}
			if tt.tokens.calls.Load() != 2 || tt.tokens.forced.Load() != 1 {
				t.Errorf("%d token requests, %d forced; want 2, 1", tt.tokens.calls.Load(), tt.tokens.forced.Load())
			}
			if got := e.Stats().Unauthorized; got != tt.wantUnauthorized {
				t.Errorf("emulator saw %d 401s, want %d", got, tt.wantUnauthorized)
			}
		})
	}
}

// TestCreateErrors covers the failures that leave no usable answer: each must be an
// error that wraps its cause and never shows the token.
func TestCreateErrors(t *testing.T) {
	errSignIn := errors.New("sign-in refused")
	_, slow := newEmulatorServer(t, emulator.Config{Latency: time.Second})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	var hits atomic.Int32
	counting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusCreated)
	}))
	defer counting.Close()

	configID := func(id string) func(*Request) { return func(r *Request) { r.ConfigurationID = id } }
	tests := []struct {
		name    string
		base    string
		handler http.Handler // served for this case instead of base
		tokens  TokenSource  // nil: StaticToken(testToken)
		change  func(*Request)
		want    error // errors.Is; nil: any error
	}{
		{name: "timeout", base: slow.URL, want: context.DeadlineExceeded},
		{name: "connection refused", base: closed.URL},
		{name: "body over the limit", handler: createdOfSize(maxResponseBody + 1)},
		{name: "bad base URL", base: "http://[::1"},
		{name: "token failure", base: counting.URL, tokens: failingTokens{errSignIn}, want: errSignIn},
		{name: "path traversal", base: counting.URL, change: configID("../x"), want: ErrInvalidConfigurationID},
		{name: "query", base: counting.URL, change: configID("a/b?c"), want: ErrInvalidConfigurationID},
		{name: "GUID and more", base: counting.URL, change: configID(testConfigID + "/../x"), want: ErrInvalidConfigurationID},
		{name: "empty id", base: counting.URL, change: configID(""), want: ErrInvalidConfigurationID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serveIf(t, tt.handler, tt.base)
			ts := tt.tokens
			if ts == nil {
				ts = StaticToken(testToken)
			}
			req := testRequest(tt.name)
			if tt.change != nil {
				tt.change(&req)
			}
			c := &Client{BaseURL: base, Tokens: ts, Timeout: 100 * time.Millisecond}
			resp, err := c.Create(context.Background(), req)
			if err == nil {
				t.Fatalf("no error; answer %+v", resp)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q is not %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Errorf("error shows the token: %q", err)
			}
			if resp.Status != 0 {
				t.Errorf("error with an answer: %+v", resp)
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server; want none", n)
	}
}

// serveIf serves h for the test and returns its URL; without h, it returns base.
func serveIf(t *testing.T, h http.Handler, base string) string {
	if h == nil {
		return base
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

type failingTokens struct{ err error }

func (f failingTokens) Token(context.Context, bool) (string, error) { return "", f.err }

// TestCreateAnswers covers answers the emulator never gives.
func TestCreateAnswers(t *testing.T) {
	date := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name          string
		status        int
		header        map[string]string
		body          string
		wantClass     Class
		wantGraphID   string
		wantBody      bool
		wantError     *Error
		hasRetryAfter bool
	}{
		{name: "201 without id", status: 201, body: `{"upn":"a"}`, wantClass: Created, wantBody: true},
		{name: "201 with a numeric id", status: 201, body: `{"id":7}`, wantClass: Created, wantBody: true},
		{name: "201 not JSON", status: 201, body: `<html>`, wantClass: Created},
		{name: "409 nested innerError", status: 409,
			body:      `{"error":{"code":"Conflict","message":"exists","innerError":{"code":"x","innerError":{"request-id":"r"}}}}`,
			wantClass: Rejected,
			wantError: &Error{Code: "Conflict", Message: "exists", InnerError: json.RawMessage(`{"code":"x","innerError":{"request-id":"r"}}`)}},
		{name: "502 from a proxy", status: 502, body: `<html>bad gateway</html>`, wantClass: Transient},
		{name: "503 with an HTTP date", status: 503, header: map[string]string{"Retry-After": date},
			body: `{"error":{"code":"ServiceUnavailable","message":""}}`, wantClass: Transient,
			wantError: &Error{Code: "ServiceUnavailable"}, hasRetryAfter: true},
		{name: "429 with garbage Retry-After", status: 429, header: map[string]string{"Retry-After": "soon"}, wantClass: Transient},
		{name: "403", status: 403, body: `{"error":{"code":"Authorization_RequestDenied","message":"no"}}`, wantClass: Systemic,
			wantError: &Error{Code: "Authorization_RequestDenied", Message: "no"}},
		{name: "redirect not followed", status: 307, header: map[string]string{"Location": "/elsewhere"}, wantClass: Systemic},
		{name: "error without code", status: 400, body: `{"error":{"message":"?"}}`, wantClass: Rejected},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				hits.Add(1)
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
			resp, err := c.Create(context.Background(), testRequest(tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || resp.Class != tt.wantClass || resp.GraphID != tt.wantGraphID {
				t.Errorf("answer %d %v %q, want %d %v %q", resp.Status, resp.Class, resp.GraphID, tt.status, tt.wantClass, tt.wantGraphID)
			}
			if (resp.Body != nil) != tt.wantBody || (resp.Body != nil && string(resp.Body) != tt.body) {
				t.Errorf("Body %s", resp.Body)
			}
			if (resp.Error == nil) != (tt.wantError == nil) ||
				resp.Error != nil && (resp.Error.Code != tt.wantError.Code || resp.Error.Message != tt.wantError.Message ||
					string(resp.Error.InnerError) != string(tt.wantError.InnerError)) {
				t.Errorf("Error %+v, want %+v", resp.Error, tt.wantError)
			}
			if resp.HasRetryAfter != tt.hasRetryAfter || tt.hasRetryAfter && (resp.RetryAfter < 59*time.Minute || resp.RetryAfter > time.Hour) {
				t.Errorf("Retry-After %v %v", resp.RetryAfter, resp.HasRetryAfter)
			}
			if hits.Load() != 1 {
				t.Errorf("%d requests, want 1", hits.Load())
			}
		})
	}
}

// createdOfSize answers 201 with an entity of n bytes, id "x".
func createdOfSize(n int) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"id":"x","pad":"` + strings.Repeat("a", n-len(`{"id":"x","pad":""}`)) + `"}`))
	}
}

func TestCreateBodyAtTheLimit(t *testing.T) {
	srv := httptest.NewServer(createdOfSize(maxResponseBody))
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
	if resp, err := c.Create(context.Background(), testRequest("e")); err != nil || resp.GraphID != "x" {
		t.Errorf("%v, GraphID %q", err, resp.GraphID)
	}
}

// A timed-out create may still have happened: the emulator shows the duplicate
// a blind retry makes.
func TestCreateTimeoutIsAmbiguous(t *testing.T) {
	e, srv := newEmulatorServer(t, emulator.Config{Latency: 200 * time.Millisecond})
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken), Timeout: 20 * time.Millisecond}
	req := testRequest("e")
	if resp, err := c.Create(context.Background(), req); !errors.Is(err, context.DeadlineExceeded) || !Ambiguous(resp, err) {
		t.Fatalf("error %v, want an ambiguous timeout", err)
	}
	e.SetConfig(emulator.Config{})
	if resp, err := c.Create(context.Background(), req); err != nil || resp.Class != Created {
		t.Fatalf("%v %+v", err, resp)
	}
	if got := e.Stats(); e.CreatesFor(req.ClientRequestID) != 2 || got.Duplicates != 1 {
		t.Errorf("CreatesFor %d, Stats %+v", e.CreatesFor(req.ClientRequestID), got)
	}
}

func BenchmarkCreate(b *testing.B) {
	_, srv := newEmulatorServer(b, emulator.Config{Token: testToken})
	c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}
	req := testRequest("bench")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if resp, err := c.Create(ctx, req); err != nil || resp.Class != Created {
			b.Fatal(err, resp.Status)
		}
	}
}
