// Package graph sends hwstate's one Microsoft Graph call, the create of a
// hardwareConfigurationUserState (CONTRACT section 2), and says what each answer
// means for the event (section 3). It also holds an emulator of that endpoint, strict
// like Graph and able to inject latency, throttling, failures and outages, for tests,
// demos and load tests.
//
// The package never retries on its own beyond one forced token refresh: whether and
// when to send a create again is the caller's decision, because only the caller knows
// whether a duplicate create is possible and what the idempotency record says.
package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
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
	// The stock 2 idle connections per host would make a worker with 32 creates in
	// flight open and close connections all the time over HTTP/1.1.
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

// Response is Graph's answer to a create.
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

// Client sends creates to Graph. Its fields must not change once it is in use;
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
// token.
func (c *Client) Create(ctx context.Context, req Request) (Response, error) {
	if !schema.IsGUID(req.ConfigurationID) {
		return Response{}, fmt.Errorf("%w: %q", ErrInvalidConfigurationID, req.ConfigurationID)
	}
	a, err := c.post(ctx, "/"+userRunStatesPath(req.ConfigurationID), req.Body, req.ClientRequestID)
	if err != nil {
		return Response{}, err
	}
	return newResponse(a.status, a.header, a.body, time.Now()), nil
}

// userRunStatesPath is the create's URL below the base, without a leading slash.
func userRunStatesPath(configurationID string) string {
	return "deviceManagement/hardwareConfigurations/" + configurationID + "/userRunStates"
}

// answer is an HTTP answer, its body read.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// post sends body to path below BaseURL with a token and, after a 401 or 403, once more
// with a fresh one (see Create).
func (c *Client) post(ctx context.Context, path string, body []byte, clientRequestID string) (answer, error) {
	url := strings.TrimSuffix(c.BaseURL, "/") + path
	token, err := c.Tokens.Token(ctx, false)
	if err != nil {
		return answer{}, fmt.Errorf("%w: %w", ErrNoToken, err)
	}
	a, err := c.send(ctx, url, token, body, clientRequestID)
	if err != nil || a.status != http.StatusUnauthorized && a.status != http.StatusForbidden {
		return a, err
	}
	fresh, err := c.Tokens.Token(ctx, true)
	if err != nil || fresh == token {
		return a, nil // the same token would get the same answer
	}
	return c.send(ctx, url, fresh, body, clientRequestID)
}

// send makes one HTTP request, within the Client's Timeout.
func (c *Client) send(ctx context.Context, url, token string, body []byte, clientRequestID string) (answer, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, fmt.Errorf("graph: building the request: %w", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("Content-Type", "application/json")
	if clientRequestID != "" {
		hreq.Header.Set("client-request-id", clientRequestID)
	}

	hc := c.HTTPClient
	if hc == nil {
		hc = defaultHTTPClient
	}
	hresp, err := hc.Do(hreq)
	if err != nil {
		return answer{}, fmt.Errorf("graph: create: %w", err)
	}
	defer hresp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(hresp.Body, maxResponseBody+1))
	if err != nil {
		return answer{}, fmt.Errorf("graph: reading the answer (%d): %w", hresp.StatusCode, err)
	}
	if len(got) > maxResponseBody {
		return answer{}, fmt.Errorf("graph: answer (%d) larger than %d bytes", hresp.StatusCode, maxResponseBody)
	}
	return answer{status: hresp.StatusCode, header: hresp.Header, body: got}, nil
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
