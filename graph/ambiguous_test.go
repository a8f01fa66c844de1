package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// answerThenCut reads the whole request, then answers head (a status line and headers
// promising a body) and closes the connection before the body: Graph got the request,
// its answer is lost.
func answerThenCut(head string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		conn, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_, _ = bw.WriteString(head)
		_ = bw.Flush()
		_ = conn.Close()
	}
}

// hang reads the request and never answers, until the client gives up. (The server
// notices a closed connection only once the body is read.)
var hang http.HandlerFunc = func(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

// dialing is an HTTP client whose connections fail before any byte is written.
func dialing(dial func(ctx context.Context) error) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return nil, dial(ctx) },
	}}
}

// TestCreateAmbiguous covers each way a create can end without a 201, and whether Graph
// may have created the entity all the same (CONTRACT section 3).
func TestCreateAmbiguous(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tlsOnly := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsOnly.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors are the point
	tlsOnly.StartTLS()                                   // with a certificate no one trusts
	defer tlsOnly.Close()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		handler http.Handler // served for this case
		base    string       // used without a handler
		client  *http.Client
		ctx     context.Context
		want    bool
	}{
		{name: "hangs past the timeout once written", want: true,
			handler: hang},
		{name: "connection dropped after the request", want: true, handler: answerThenCut("")},
		{name: "201 cut short", want: true, handler: answerThenCut("HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{")},
		{name: "500 cut short", want: true, handler: answerThenCut("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 100\r\n\r\n{")},
		{name: "429 cut short", want: false, handler: answerThenCut("HTTP/1.1 429 Too Many Requests\r\nContent-Length: 100\r\n\r\n{")},
		{name: "503 cut short", want: false, handler: answerThenCut("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 100\r\n\r\n{")},
		{name: "201 over the size limit", want: true, handler: createdOfSize(maxResponseBody + 1)},
		{name: "connection refused", base: closed.URL},
		{name: "TLS handshake refused", base: tlsOnly.URL},
		{name: "DNS lookup failed", base: "http://graph.invalid",
			client: dialing(func(context.Context) error {
				return &net.DNSError{Err: "no such host", Name: "graph.invalid", IsNotFound: true}
			})},
		{name: "timeout while connecting", base: "http://graph.invalid",
			client: dialing(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })},
		{name: "canceled before sending", base: closed.URL, ctx: canceled},
		{name: "no token", base: closed.URL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serveIf(t, tt.handler, tt.base)
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			var ts TokenSource = StaticToken(testToken)
			if tt.name == "no token" {
				ts = failingTokens{errors.New("sign-in down")}
			}
			c := &Client{BaseURL: base, HTTPClient: tt.client, Tokens: ts, Timeout: 100 * time.Millisecond}
			resp, err := c.Create(ctx, testRequest(tt.name))
			if err == nil {
				t.Fatalf("no error: %+v", resp)
			}
			if got := Ambiguous(resp, err); got != tt.want {
				t.Errorf("Ambiguous = %v, want %v (%v)", got, tt.want, err)
			}
		})
	}
}

// TestAmbiguousStatus covers every answer Graph gives to a create: only those that may
// follow a create it ran are ambiguous.
func TestAmbiguousStatus(t *testing.T) {
	ambiguous := map[int]bool{500: true, 502: true, 504: true, 507: true, 599: true}
	for _, status := range []int{201, 200, 307, 400, 401, 403, 404, 405, 408, 409, 424, 429, 500, 501, 502, 503, 504, 505, 507, 509, 599} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
		c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
		resp, err := c.Create(context.Background(), testRequest("s"))
		srv.Close()
		if err != nil || resp.Status != status {
			t.Fatalf("%d: %+v %v", status, resp, err)
		}
		if got := Ambiguous(resp, nil); got != ambiguous[status] {
			t.Errorf("Ambiguous(%d) = %v, want %v", status, got, ambiguous[status])
		}
	}
}

// TestBatcherAmbiguous covers a $batch: a sub-response is ambiguous as a create's answer
// is, and a $batch that failed ambiguously as a whole makes every create in it ambiguous.
func TestBatcherAmbiguous(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	answer := func(status int, body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}
	}
	// subs answers create i of the test (by its client-request-id) with statuses[i], and
	// leaves out those with status 0.
	subs := func(statuses ...int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var req batchRequest
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				panic(err)
			}
			var answer batchAnswer
			for _, sub := range req.Requests {
				for i, st := range statuses {
					if st != 0 && sub.Headers["client-request-id"] == ClientRequestID(fmt.Sprint("a-", i)) {
						answer.Responses = append(answer.Responses, subResponseJSON{ID: sub.ID, Status: st})
					}
				}
			}
			_ = json.NewEncoder(w).Encode(answer)
		}
	}
	tests := []struct {
		name    string
		handler http.Handler
		base    string
		want    []bool // per create, in order
	}{
		{name: "sub-responses", handler: subs(500, 502, 504, 424, 503, 429, 201, 400),
			want: []bool{true, true, true, false, false, false, false, false}},
		{name: "one sub-response missing", handler: subs(0, 201),
			want: []bool{true, false}},
		{name: "the $batch answered 504", handler: answer(504, ""), want: []bool{true, true}},
		{name: "the $batch answered 503", handler: answer(503, ""), want: []bool{false, false}},
		{name: "the $batch refused", handler: answer(400, `{"error":{"code":"BadRequest","message":"m"}}`), want: []bool{false, false}},
		{name: "a 200 that is no batch answer", handler: answer(200, `<html>`), want: []bool{true, true}},
		{name: "the $batch hangs", want: []bool{true, true},
			handler: hang},
		{name: "the $batch connection dropped", handler: answerThenCut(""), want: []bool{true, true}},
		{name: "the $batch connection refused", base: closed.URL, want: []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := serveIf(t, tt.handler, tt.base)
			n := len(tt.want)
			b := &Batcher{Client: &Client{BaseURL: base, Tokens: StaticToken(testToken), Timeout: 100 * time.Millisecond},
				Size: n, Linger: time.Minute}
			resps, errs := concurrently(n, func(i int) (Response, error) {
				return b.Create(context.Background(), testRequest(fmt.Sprint("a-", i)))
			})
			for i := range n {
				if got := Ambiguous(resps[i], errs[i]); got != tt.want[i] {
					t.Errorf("create %d (%d %v): Ambiguous = %v, want %v", i+1, resps[i].Status, errs[i], got, tt.want[i])
				}
			}
		})
	}
}

// A caller that stops waiting leaves its create in the $batch, which may still go.
func TestBatcherCallerLeavingIsAmbiguous(t *testing.T) {
	b := &Batcher{Client: &Client{BaseURL: "http://127.0.0.1:1", Tokens: StaticToken(testToken)}, Linger: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	resp, err := b.Create(ctx, testRequest("left"))
	if !errors.Is(err, context.Canceled) || !Ambiguous(resp, err) {
		t.Errorf("%v: want an ambiguous cancellation", err)
	}
}
