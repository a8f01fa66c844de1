// Package graph sends hwstate's Microsoft Graph calls: the create of a
// hardwareConfigurationUserState (CONTRACT section 2), alone or in $batch requests, and
// the listing of a configuration's user states that looks for an entity before it is
// created again (section 3, "Exactly once against Graph"). It says what each answer means
// for the event (section 3), including whether a failed create may have created the
// entity all the same (Ambiguous). The emulator of these endpoints is graph/emulator.
//
// The package never retries on its own beyond one forced token refresh: whether and
// when to send a create again is the caller's decision, because only the caller knows
// whether a duplicate create is possible and what the idempotency record says.
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

const (
	defaultTimeout = 30 * time.Second
	// maxResponseBody bounds what is read of an answer; a created entity is under
	// 1 KiB, so anything near this is not Graph talking.
	maxResponseBody = 1 << 20
	// requestIDNamespace is the hwstate namespace of version 5 client-request-ids.
	// Changing it changes the id of every event: never do.
	requestIDNamespace = "e4d7a626-33a3-4975-9240-5c212d72c83d"
)

// defaultHTTPClient serves Clients without an HTTPClient. It is shared so that all of
// them share one connection pool, and is never modified after initialisation.
var defaultHTTPClient = newDefaultHTTPClient()

func newDefaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = http.ProxyFromEnvironment // HTTPS_PROXY and NO_PROXY apply to Graph
	// The stock 2 idle connections per host (and 100 in all) would make a worker with
	// many creates in flight (32 a tenant, a thousand tenants on graph.microsoft.com) open
	// and close connections all the time over HTTP/1.1: a proxy, an emulator. Graph itself
	// speaks HTTP/2, where they share a few connections.
	t.MaxIdleConns = 1024
	t.MaxIdleConnsPerHost = t.MaxIdleConns
	return &http.Client{
		Transport: t,
		// Graph does not redirect creates. Following one would turn the POST into a
		// GET (301/302/303) or send the body elsewhere: hand it to Classify instead.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Request is one create.
type Request struct {
	// ConfigurationID is the hardwareConfiguration's id. It becomes a URL path
	// segment, so Create refuses anything but a GUID without sending.
	ConfigurationID string
	// ClientRequestID is the client-request-id header, from ClientRequestID(eventID).
	ClientRequestID string
	// Body is the entity JSON, as schema's AppendGraphBody writes it.
	Body []byte
}

// Response is Graph's answer to a create, or to a list request (ListUserStates).
type Response struct {
	Status int
	Class  Class
	// RetryAfter is Graph's Retry-After, valid when HasRetryAfter; it can come with
	// any status, though 429 and 503 are where Graph sends it.
	RetryAfter    time.Duration
	HasRetryAfter bool
	// RequestID, ClientRequestID and Date are the request-id, client-request-id and
	// Date headers: Microsoft support asks for all three.
	RequestID       string
	ClientRequestID string
	Date            string
	// Body is the created entity as Graph sent it, on 201 only, and only when it is
	// valid JSON, so it can be embedded in a result as is.
	Body json.RawMessage
	// GraphID is the created entity's id on 201. A 201 whose body has no id stays
	// Created with an empty GraphID: the entity exists, and sending the create again
	// would make a second one.
	GraphID string
	// Error is the parsed error body of a non-2xx answer; nil if there is none or it
	// is not Graph's error JSON.
	Error *Error
}

// Client sends creates and list requests to Graph. Its fields must not change once it is in use;
// it is safe for concurrent use.
type Client struct {
	// BaseURL is the Graph root with its version, e.g. https://graph.microsoft.com/beta.
	// A trailing slash is ignored.
	BaseURL string
	// HTTPClient sends the requests; nil means a shared client that honours
	// HTTPS_PROXY and NO_PROXY and never follows redirects.
	HTTPClient *http.Client
	// Tokens gives the bearer token; it is required.
	Tokens TokenSource
	// Timeout limits one HTTP request, answer body included; 0 means 30s. The
	// forced-refresh retry after a 401 gets a Timeout of its own.
	Timeout time.Duration
}

// Create sends one create.
//
// Any HTTP answer is returned as a Response with its Class. A 401 or 403 is answered by
// asking Tokens for a fresh token (force=true) and sending the request once more; the
// second answer is the one returned (one create request for the caller's accounting:
// the first cannot have created anything). A 403 is retried too because a token issued
// before the admin consent lacks the permission that a fresh one carries. If the refresh
// fails or gives the same token (a StaticToken), the first answer is returned: either way
// the credentials are what is wrong.
//
// A non-nil error means there is no usable answer: a network error, a timeout
// (errors.Is(err, context.DeadlineExceeded)), an unreadable or oversized body, all
// transient for the caller; ErrNoToken, when nothing was sent for want of a token; or
// ErrInvalidConfigurationID. Errors wrap their cause with %w and never contain the
// token. Whether Graph may have created the entity all the same is Ambiguous's to say.
func (c *Client) Create(ctx context.Context, req Request) (Response, error) {
	if !schema.IsGUID(req.ConfigurationID) {
		return Response{}, fmt.Errorf("%w: %q", ErrInvalidConfigurationID, req.ConfigurationID)
	}
	a, err := c.do(ctx, call{
		what: "create", method: http.MethodPost, url: c.url("/" + userRunStatesPath(req.ConfigurationID)),
		body: req.Body, clientRequestID: req.ClientRequestID, limit: maxResponseBody,
	})
	if err != nil {
		return Response{}, err
	}
	return newResponse(a.status, a.header, a.body, time.Now()), nil
}

// userRunStatesPath is the create's URL below the base, without a leading slash.
func userRunStatesPath(configurationID string) string {
	return "deviceManagement/hardwareConfigurations/" + configurationID + "/userRunStates"
}

// url is path below BaseURL.
func (c *Client) url(path string) string {
	return strings.TrimSuffix(c.BaseURL, "/") + path
}

// call is one HTTP request to Graph.
type call struct {
	what   string // names the request in errors: "create", "list"
	method string
	url    string
	body   []byte // nil: none
	// clientRequestID is the client-request-id header; "" sends none.
	clientRequestID string
	// limit is the most bytes of the answer's body read: more is an error wrapping
	// errTooLarge.
	limit int
}

// answer is an HTTP answer, its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// errTooLarge is wrapped by do's error for an answer whose body is over the call's limit.
var errTooLarge = errors.New("graph: answer too large")

// do sends r with a token and, after a 401 or 403, once more with a fresh one (see Create).
func (c *Client) do(ctx context.Context, r call) (answer, error) {
	token, err := c.Tokens.Token(ctx, false)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	a, err := c.send(ctx, r, token)
	if err != nil || a.status != http.StatusUnauthorized && a.status != http.StatusForbidden {
		return a, err
	}
	fresh, err := c.Tokens.Token(ctx, true)
	if err != nil || fresh == token {
		return a, nil // the same token would get the same answer
	}
	return c.send(ctx, r, fresh)
}

// send makes one HTTP request, within the Client's Timeout. An error after a POST was
// written in full wraps ErrAmbiguous, unless the status, received before the body failed,
// says the request did not run.
func (c *Client) send(ctx context.Context, r call, token string) (answer, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// WroteRequest is the one sure sign that Graph may have the request: before it, a
	// refused connection, a failed DNS lookup or TLS handshake, or a timeout leave nothing
	// on Graph's side. net/http calls it after the last byte was flushed to the connection.
	var written atomic.Bool
	if r.method == http.MethodPost {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteRequest: func(info httptrace.WroteRequestInfo) {
				if info.Err == nil {
					written.Store(true)
				}
			},
		})
	}
	lost := func(status int, err error) error {
		if written.Load() && (status == 0 || mayHaveRun(status)) {
			return fmt.Errorf("%w: %w", ErrAmbiguous, err)
		}
		return err
	}

	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return answer{}, fmt.Errorf("graph: building the %s request: %w", r.what, redactQuery(err))
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Accept", "application/json")
	if r.body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if r.clientRequestID != "" {
		hreq.Header.Set("client-request-id", r.clientRequestID)
	}

	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return answer{}, lost(0, fmt.Errorf("graph: %s: %w", r.what, redactQuery(err)))
	}
	defer hresp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(hresp.Body, int64(r.limit)+1))
	if err != nil {
		return answer{}, lost(hresp.StatusCode, fmt.Errorf("graph: reading the %s answer (%d): %w", r.what, hresp.StatusCode, err))
	}
	if len(got) > r.limit {
		return answer{}, lost(hresp.StatusCode,
			fmt.Errorf("%w: the %s answer (%d) is larger than %d bytes", errTooLarge, r.what, hresp.StatusCode, r.limit))
	}
	return answer{status: hresp.StatusCode, header: hresp.Header, body: got}, nil
}

// redactQuery drops the query from the URL that net/http puts into its errors: a list's
// query holds a UPN, personal data that logs must not show (CONTRACT section 4).
func redactQuery(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if i := strings.IndexByte(ue.URL, '?'); i >= 0 {
			ue.URL = ue.URL[:i] + "?..."
		}
	}
	return err
}

// newResponse reads an answer to one create, sent alone or inside a $batch.
func newResponse(status int, header http.Header, body []byte, now time.Time) Response {
	resp := Response{
		Status:          status,
		Class:           Classify(status),
		RequestID:       header.Get("request-id"),
		ClientRequestID: header.Get("client-request-id"),
		Date:            header.Get("Date"),
	}
	if v := header.Get("Retry-After"); v != "" {
		resp.RetryAfter, resp.HasRetryAfter = ParseRetryAfter(v, now)
	}
	switch {
	case resp.Status == http.StatusCreated:
		if json.Valid(body) {
			var entity struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(body, &entity) // an id that is not a string leaves GraphID empty
			resp.Body, resp.GraphID = body, entity.ID
		}
	case resp.Status < 200 || resp.Status > 299:
		resp.Error = parseError(body)
	}
	return resp
}

// ClientRequestID is the client-request-id of an event: a name-based (version 5,
// SHA-1) UUID of the event id, so that every attempt, also after a restart or on
// another replica, sends the same one, and Graph's logs tie them together.
func ClientRequestID(eventID string) string {
	return uuid.NewSHA1(uuid.MustParse(requestIDNamespace), []byte(eventID)).String()
}
