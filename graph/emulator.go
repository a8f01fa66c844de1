package graph

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/hwstate/hwstate/schema"
)

const (
	// controlPrefix is where the emulator's own endpoints live; Graph has no path
	// starting with an underscore, so they cannot hide a Graph route.
	controlPrefix = "/_emulator/"
	// maxRequestBody bounds a create's body (Graph's own limit is a few MiB; an entity
	// is under 1 KiB) and maxControlBody a configuration.
	maxRequestBody = 1 << 20
	maxControlBody = 64 << 10
)

// EmulatorConfig is what the Emulator does besides answering like Graph. Every field
// can change while it runs (SetConfig, or PUT/PATCH /_emulator/config).
//
// Its JSON form, used by the control endpoint, names the fields in lowerCamel case
// (token, latency, rate, burst, retryAfter, omitRetryAfter, throttleFirst, failFirst,
// failStatus, errorRate, throttleRate, seed, outage, outageFor, notFoundIds, rejectIds,
// failIds, throttleIds),
// writes durations as Go duration strings ("250ms", "2s"), and refuses unknown fields.
type EmulatorConfig struct {
	// Token, when set, is the only bearer token accepted; when empty, any is.
	Token string `json:"token"`
	// Latency is added to every answer.
	Latency time.Duration `json:"latency"`
	// Rate is the creates per second the emulated tenant allows, in a token bucket of
	// Burst (at least 1); beyond it the answer is 429 with a Retry-After of the time
	// until the next token, rounded up to the millisecond. 0 means no limit. Unlike
	// Graph, a throttled request takes no token, so a client that waits as told gets
	// through.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// RetryAfter is the Retry-After of the injected 429s (ThrottleFirst, ThrottleRate).
	RetryAfter time.Duration `json:"retryAfter"`
	// OmitRetryAfter leaves Retry-After out of every 429, as Intune sometimes does.
	OmitRetryAfter bool `json:"omitRetryAfter"`
	// ThrottleFirst: the first ThrottleFirst requests of each client-request-id answer
	// 429. Then FailFirst: the next FailFirst requests answer FailStatus (a 5xx; 0
	// means 503). Requests without a client-request-id count together.
	ThrottleFirst int `json:"throttleFirst"`
	FailFirst     int `json:"failFirst"`
	FailStatus    int `json:"failStatus"`
	// ErrorRate and ThrottleRate are the probabilities (0 to 1) of a 503 and of a 429,
	// drawn from a generator seeded with Seed (0: a random seed). Reseeding happens
	// only when Seed changes.
	ErrorRate    float64 `json:"errorRate"`
	ThrottleRate float64 `json:"throttleRate"`
	Seed         int64   `json:"seed"`
	// Outage answers every request 503 without Retry-After, before anything else.
	Outage bool `json:"outage"`
	// OutageFor is an outage window: like Outage for this long from the moment a
	// configuration with a different OutageFor is put in force (so PATCHing other fields
	// does not restart it; set 0 first to start an equal window again).
	OutageFor time.Duration `json:"outageFor"`
	// NotFoundIDs are configuration ids that answer 404 ResourceNotFound, RejectIDs ones
	// that answer 400 BadRequest to a valid create, and FailIDs ones that answer
	// FailStatus to every create, a failure that never clears; GUIDs, any case.
	NotFoundIDs []string `json:"notFoundIds"`
	RejectIDs   []string `json:"rejectIds"`
	FailIDs     []string `json:"failIds"`
	// ThrottleIDs are configuration ids whose first create of each client-request-id
	// answers 429 (with RetryAfter), the next one as usual: one event throttled among
	// others that are not, as inside a $batch.
	ThrottleIDs []string `json:"throttleIds"`
}

// emulatorConfigJSON is EmulatorConfig with its durations as strings; the outer
// fields hide the embedded ones of the same JSON name.
type emulatorConfigJSON struct {
	*plainEmulatorConfig
	Latency    *string `json:"latency,omitempty"`
	RetryAfter *string `json:"retryAfter,omitempty"`
	OutageFor  *string `json:"outageFor,omitempty"`
}

// plainEmulatorConfig has EmulatorConfig's fields without its JSON methods.
type plainEmulatorConfig EmulatorConfig

// MarshalJSON writes durations as Go duration strings.
func (c EmulatorConfig) MarshalJSON() ([]byte, error) {
	latency, retryAfter, outageFor := c.Latency.String(), c.RetryAfter.String(), c.OutageFor.String()
	return json.Marshal(emulatorConfigJSON{
		plainEmulatorConfig: (*plainEmulatorConfig)(&c), Latency: &latency, RetryAfter: &retryAfter, OutageFor: &outageFor,
	})
}

// UnmarshalJSON reads durations as Go duration strings and refuses unknown fields.
// Fields absent from the JSON keep their value, which is what PATCH relies on.
func (c *EmulatorConfig) UnmarshalJSON(data []byte) error {
	aux := emulatorConfigJSON{plainEmulatorConfig: (*plainEmulatorConfig)(c)}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&aux); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		text *string
		dst  *time.Duration
	}{{"latency", aux.Latency, &c.Latency}, {"retryAfter", aux.RetryAfter, &c.RetryAfter}, {"outageFor", aux.OutageFor, &c.OutageFor}} {
		if d.text == nil {
			continue
		}
		v, err := time.ParseDuration(*d.text)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	return nil
}

func (c EmulatorConfig) clone() EmulatorConfig {
	c.NotFoundIDs = slices.Clone(c.NotFoundIDs)
	c.RejectIDs = slices.Clone(c.RejectIDs)
	c.FailIDs = slices.Clone(c.FailIDs)
	c.ThrottleIDs = slices.Clone(c.ThrottleIDs)
	return c
}

// Validate is for configurations from outside (flags, the control endpoint). SetConfig
// takes anything, making the best of out-of-range values, as a library call should
// not fail over a test's odd setting.
func (c *EmulatorConfig) Validate() error {
	var errs []error
	check := func(ok bool, field, rule string) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s", field, rule))
		}
	}
	check(c.Latency >= 0, "latency", "must not be negative")
	check(c.RetryAfter >= 0, "retryAfter", "must not be negative")
	check(c.OutageFor >= 0, "outageFor", "must not be negative")
	check(c.Rate >= 0, "rate", "must not be negative")
	check(c.Burst >= 0, "burst", "must not be negative")
	check(c.ThrottleFirst >= 0, "throttleFirst", "must not be negative")
	check(c.FailFirst >= 0, "failFirst", "must not be negative")
	check(c.FailStatus == 0 || c.FailStatus >= 500 && c.FailStatus <= 599, "failStatus", "must be 0 or a 5xx status")
	check(c.ErrorRate >= 0 && c.ErrorRate <= 1, "errorRate", "must be from 0 to 1")
	check(c.ThrottleRate >= 0 && c.ThrottleRate <= 1, "throttleRate", "must be from 0 to 1")
	for _, list := range []struct {
		field string
		ids   []string
	}{{"notFoundIds", c.NotFoundIDs}, {"rejectIds", c.RejectIDs}, {"failIds", c.FailIDs}, {"throttleIds", c.ThrottleIDs}} {
		for _, id := range list.ids {
			check(schema.IsGUID(id), list.field, fmt.Sprintf("%q is not a GUID", id))
		}
	}
	return errors.Join(errs...)
}

// failStatus is FailStatus if it is a 5xx, else 503.
func (c *EmulatorConfig) failStatus() int {
	if c.FailStatus < 500 || c.FailStatus > 599 {
		return http.StatusServiceUnavailable
	}
	return c.FailStatus
}

// EmulatorStats counts the emulator's answers to Graph requests (not to the control
// endpoint). BadRequests counts every 4xx but 401, 404 and 429 (400, 405, 413, 415).
//
// Every create counts, sent alone or as a sub-request of a $batch (as Graph counts them
// against a tenant's limits); a $batch refused as a whole (401, 503, a malformed batch)
// counts once, by its status. Batches counts $batch requests, whatever their answer.
type EmulatorStats struct {
	Requests uint64 `json:"requests"`
	Batches  uint64 `json:"batches"`
	Creates  uint64 `json:"creates"`
	// Duplicates counts creates whose client-request-id already had one: what an
	// idempotent client must keep at 0.
	Duplicates   uint64 `json:"duplicates"`
	Throttled    uint64 `json:"throttled"`
	ServerErrors uint64 `json:"serverErrors"`
	Unauthorized uint64 `json:"unauthorized"`
	BadRequests  uint64 `json:"badRequests"`
	NotFound     uint64 `json:"notFound"`
}

type emulatorCounters struct {
	requests, batches, creates, duplicates, throttled, serverErrors, unauthorized, badRequests, notFound atomic.Uint64
}

func (c *emulatorCounters) count(status int) {
	c.requests.Add(1)
	switch {
	case status == http.StatusCreated:
		c.creates.Add(1)
	case status == http.StatusUnauthorized:
		c.unauthorized.Add(1)
	case status == http.StatusNotFound:
		c.notFound.Add(1)
	case status == http.StatusTooManyRequests:
		c.throttled.Add(1)
	case status >= 500:
		c.serverErrors.Add(1)
	case status >= 400:
		c.badRequests.Add(1)
	}
}

// Emulator is an http.Handler that answers the create like Graph
// (POST {any prefix}/deviceManagement/hardwareConfigurations/{id}/userRunStates), as
// strictly, with the faults its EmulatorConfig asks for. Create one with NewEmulator.
//
// A request is checked in this order: route (404; 405 for a method other than POST),
// Outage and OutageFor (503), Authorization (401), client-request-id (400 unless absent
// or a GUID); then the injected faults: ThrottleFirst, ThrottleRate and Rate (429),
// FailFirst and ErrorRate (5xx); then Content-Type (415 unless application/json), the
// configuration id (400 unless a GUID; 404 if in NotFoundIDs; 429 for the first request
// of a client-request-id if in ThrottleIDs), the body (400 when schema.DecodeUserState
// refuses it, naming the field), RejectIDs (400) and FailIDs (FailStatus); at last, 201
// with the entity as posted plus its new id and @odata.context.
//
// POST {any prefix}/$batch is served too, as strictly as Graph (see serveBatch): each
// sub-request is checked from client-request-id on, like a create sent alone.
//
// Latency is added after the answer is decided, as with a slow Graph: a client that
// gives up waiting has still created the entity, the ambiguous case that idempotency
// records exist for, and Duplicates shows what a retry then does.
//
// Control endpoints, without authentication: GET /_emulator/stats (EmulatorStats as
// JSON), GET /_emulator/config, PUT /_emulator/config (replaces the configuration) and
// PATCH /_emulator/config (changes only the fields given); the last two answer the
// configuration now in force, or 400 for an invalid one.
//
// The emulator remembers every client-request-id it has seen, a few dozen bytes each,
// for as long as it runs.
type Emulator struct {
	state   atomic.Pointer[emulatorState]
	control *http.ServeMux
	stats   emulatorCounters

	mu  sync.Mutex // serialises configuration changes; guards rng and ids
	rng *rand.Rand
	ids map[uuid.UUID]idCounts
}

// emulatorState is one configuration in force, swapped whole, so a request sees one
// configuration from start to end without locking.
type emulatorState struct {
	cfg                              EmulatorConfig
	limiter                          *rate.Limiter // nil: no rate limit
	outageUntil                      time.Time     // the end of the OutageFor window
	notFound, reject, fail, throttle map[uuid.UUID]bool
}

type idCounts struct{ seen, created int }

// NewEmulator returns an Emulator running with cfg.
func NewEmulator(cfg EmulatorConfig) *Emulator {
	e := &Emulator{ids: make(map[uuid.UUID]idCounts)}
	e.SetConfig(cfg)
	e.control = http.NewServeMux()
	e.control.HandleFunc("GET "+controlPrefix+"stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Stats())
	})
	e.control.HandleFunc("GET "+controlPrefix+"config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Config())
	})
	e.control.HandleFunc("PUT "+controlPrefix+"config", e.changeConfig(true))
	e.control.HandleFunc("PATCH "+controlPrefix+"config", e.changeConfig(false))
	return e
}

// SetConfig replaces the configuration; requests already being answered finish
// with the old one. The rate limiter keeps its level unless Rate or Burst changes.
func (e *Emulator) SetConfig(cfg EmulatorConfig) {
	_ = e.update(func(c *EmulatorConfig) error { // cannot fail
		*c = cfg.clone()
		return nil
	})
}

// Config returns the configuration in force.
func (e *Emulator) Config() EmulatorConfig {
	return e.state.Load().cfg.clone()
}

// update applies change to a copy of the configuration in force and, unless it
// fails, puts the copy in force.
func (e *Emulator) update(change func(*EmulatorConfig) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.state.Load()
	var cfg EmulatorConfig
	if old != nil {
		cfg = old.cfg.clone()
	}
	if err := change(&cfg); err != nil {
		return err
	}
	st := &emulatorState{
		cfg:      cfg,
		notFound: guidSet(cfg.NotFoundIDs),
		reject:   guidSet(cfg.RejectIDs),
		fail:     guidSet(cfg.FailIDs),
		throttle: guidSet(cfg.ThrottleIDs),
	}
	switch {
	case cfg.OutageFor <= 0:
	case old != nil && old.cfg.OutageFor == cfg.OutageFor:
		st.outageUntil = old.outageUntil
	default:
		st.outageUntil = time.Now().Add(cfg.OutageFor)
	}
	switch {
	case cfg.Rate <= 0: // no limit, no limiter
	case old != nil && old.limiter != nil && old.cfg.Rate == cfg.Rate && old.cfg.Burst == cfg.Burst:
		st.limiter = old.limiter
	default:
		st.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Burst, 1))
	}
	if old == nil || old.cfg.Seed != cfg.Seed {
		seed := uint64(cfg.Seed)
		if seed == 0 {
			seed = rand.Uint64()
		}
		e.rng = rand.New(rand.NewPCG(seed, seed))
	}
	e.state.Store(st)
	return nil
}

func guidSet(ids []string) map[uuid.UUID]bool {
	set := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			set[u] = true
		}
	}
	return set
}

// Stats returns the counters so far.
func (e *Emulator) Stats() EmulatorStats {
	c := &e.stats
	return EmulatorStats{
		Requests:     c.requests.Load(),
		Batches:      c.batches.Load(),
		Creates:      c.creates.Load(),
		Duplicates:   c.duplicates.Load(),
		Throttled:    c.throttled.Load(),
		ServerErrors: c.serverErrors.Load(),
		Unauthorized: c.unauthorized.Load(),
		BadRequests:  c.badRequests.Load(),
		NotFound:     c.notFound.Load(),
	}
}

// CreatesFor returns how many creates (201s) a client-request-id has had: 1 for every
// event of a client that never duplicates.
func (e *Emulator) CreatesFor(clientRequestID string) int {
	key, err := uuid.Parse(clientRequestID)
	if err != nil {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ids[key].created
}

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		e.control.ServeHTTP(w, r)
		return
	}
	st := e.state.Load()
	var resp subResponse
	if isBatchPath(r.URL.EscapedPath()) {
		e.stats.batches.Add(1)
		resp = e.serveBatch(st, r)
	} else {
		resp = e.serve(st, r)
	}
	if resp.status != http.StatusOK { // a $batch answered 200 has counted its creates
		e.stats.count(resp.status)
	}
	if !sleep(r.Context(), st.cfg.Latency) {
		return // the client is gone
	}
	clientRequestID := r.Header.Get("client-request-id")
	header, body := resp.finish(clientRequestID, time.Now())
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(body) // a client that stopped reading has nothing to be told
}

// serve answers what belongs to the HTTP request as a whole, then hands the create
// to create, which a $batch would call once per sub-request.
func (e *Emulator) serve(st *emulatorState, r *http.Request) subResponse {
	prefix, configID, ok := splitCreatePath(r.URL.EscapedPath())
	switch {
	case !ok:
		return failure(http.StatusNotFound, "ResourceNotFound", "No resource at "+r.URL.EscapedPath()+".")
	case r.Method != http.MethodPost:
		return methodNotAllowed(r.Method, "userRunStates here")
	}
	body, refused := admit(st, r)
	if refused != nil {
		return *refused
	}
	return e.create(st, subRequest{
		base:     baseURL(r, prefix),
		configID: configID,
		header:   r.Header,
		body:     body,
	})
}

// admit checks what comes before any create, alone or in a $batch: outage,
// Authorization, and the body's size; it returns the body, or the answer refusing it.
func admit(st *emulatorState, r *http.Request) ([]byte, *subResponse) {
	refuse := func(resp subResponse) ([]byte, *subResponse) { return nil, &resp }
	if st.cfg.Outage || time.Now().Before(st.outageUntil) {
		return refuse(failure(http.StatusServiceUnavailable, "ServiceUnavailable", "The service is unavailable (emulated outage)."))
	}
	if msg := checkAuthorization(r.Header.Get("Authorization"), st.cfg.Token); msg != "" {
		return refuse(failure(http.StatusUnauthorized, "InvalidAuthenticationToken", msg))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	switch {
	case err != nil:
		return refuse(failure(http.StatusBadRequest, "BadRequest", "The request body could not be read."))
	case len(body) > maxRequestBody:
		return refuse(failure(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large."))
	}
	return body, nil
}

// baseURL is scheme://host/prefix of a request, for @odata.context.
func baseURL(r *http.Request, prefix string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + prefix
}

// splitCreatePath splits an escaped path into the prefix before /deviceManagement and
// the configuration id; ok is false unless the path is the userRunStates collection.
// The id is taken escaped, so an encoded slash stays inside it and fails the GUID check.
func splitCreatePath(path string) (prefix, configID string, ok bool) {
	const parent = "/deviceManagement/hardwareConfigurations/"
	i := strings.Index(path, parent)
	if i < 0 {
		return "", "", false
	}
	configID, ok = strings.CutSuffix(path[i+len(parent):], "/userRunStates")
	if !ok || configID == "" || strings.Contains(configID, "/") {
		return "", "", false
	}
	return path[:i], configID, true
}

// checkAuthorization returns why an Authorization header is refused, or "".
func checkAuthorization(header, want string) string {
	scheme, token, _ := strings.Cut(header, " ")
	switch {
	case !strings.EqualFold(scheme, "Bearer") || token == "":
		return "Access token is empty."
	case want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1:
		return "Access token validation failure. Invalid audience."
	}
	return ""
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// subRequest is one create, sent alone or (later) inside a $batch.
type subRequest struct {
	base     string // scheme://host/prefix, for @odata.context
	configID string // as in the URL, still escaped
	header   http.Header
	body     []byte
}

// subResponse is the answer to one create, before the headers every answer gets.
type subResponse struct {
	status int
	header http.Header // Retry-After, Allow
	body   []byte      // on 201, the entity
	err    *Error      // otherwise, the error's code and message
}

// methodNotAllowed answers 405 for anything but POST, naming what was asked for.
func methodNotAllowed(method, what string) subResponse {
	resp := failure(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+method+" is not allowed on "+what+".")
	resp.header = http.Header{"Allow": {http.MethodPost}}
	return resp
}

func failure(status int, code, message string) subResponse {
	return subResponse{status: status, err: &Error{Code: code, Message: message}}
}

func throttled(retryAfter time.Duration, omit bool) subResponse {
	resp := failure(http.StatusTooManyRequests, "TooManyRequests", "Too many requests. Please retry after a while.")
	if !omit {
		resp.header = http.Header{"Retry-After": {formatRetryAfter(retryAfter)}}
	}
	return resp
}

// formatRetryAfter writes d as whole seconds when it is whole, else as seconds with
// milliseconds ("0.250"), the way Graph does; always rounded up, so that a client
// waiting exactly that long is not early.
func formatRetryAfter(d time.Duration) string {
	ms := max((d+time.Millisecond-1)/time.Millisecond, 0)
	if ms%1000 == 0 {
		return strconv.FormatInt(int64(ms/1000), 10)
	}
	return fmt.Sprintf("%d.%03d", ms/1000, ms%1000)
}

// finish gives resp what Graph puts on every answer: request-id, the echoed
// client-request-id, Date, and, for an error, the innerError support asks for.
func (resp subResponse) finish(clientRequestID string, now time.Time) (http.Header, []byte) {
	requestID := uuid.NewString()
	h := http.Header{
		"Content-Type": {"application/json"},
		"Request-Id":   {requestID},
		"Date":         {now.UTC().Format(http.TimeFormat)},
	}
	if clientRequestID != "" {
		h.Set("client-request-id", clientRequestID)
	}
	for k, v := range resp.header {
		h[k] = v
	}
	if resp.err == nil {
		return h, resp.body
	}
	inner, _ := json.Marshal(struct { // strings only: cannot fail
		Date            string `json:"date"`
		RequestID       string `json:"request-id"`
		ClientRequestID string `json:"client-request-id,omitempty"`
	}{now.UTC().Format("2006-01-02T15:04:05"), requestID, clientRequestID})
	graphErr := *resp.err
	graphErr.InnerError = inner
	body, _ := json.Marshal(struct { // cannot fail: inner is valid JSON
		Error *Error `json:"error"`
	}{&graphErr})
	return h, body
}

// create answers one create the way Graph's service would, after the transport and
// authentication checks.
func (e *Emulator) create(st *emulatorState, r subRequest) subResponse {
	var key uuid.UUID // uuid.Nil for requests without a client-request-id
	if id := r.header.Get("client-request-id"); id != "" {
		if !schema.IsGUID(id) {
			return failure(http.StatusBadRequest, "BadRequest", "The client-request-id header must be a GUID.")
		}
		key = uuid.MustParse(id)
	}
	n := e.arrive(key)
	if resp, failed := e.injectFault(st, n); failed {
		return resp
	}

	if mediaType, _, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		return failure(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json.")
	}
	if !schema.IsGUID(r.configID) {
		return failure(http.StatusBadRequest, "BadRequest", "hardwareConfigurationId must be a GUID.")
	}
	configID := uuid.MustParse(r.configID)
	switch {
	case st.notFound[configID]:
		return failure(http.StatusNotFound, "ResourceNotFound", "No hardwareConfiguration with id "+r.configID+".")
	case st.throttle[configID] && n == 1:
		return throttled(st.cfg.RetryAfter, st.cfg.OmitRetryAfter)
	}
	state, err := schema.DecodeUserState(r.body)
	if err != nil {
		return failure(http.StatusBadRequest, "BadRequest", "Invalid hardwareConfigurationUserState: "+err.Error())
	}
	switch {
	case st.reject[configID]:
		return failure(http.StatusBadRequest, "BadRequest", "The hardwareConfiguration "+r.configID+" refuses user states (emulated).")
	case st.fail[configID]:
		return serverError(st.cfg.failStatus())
	}

	e.recordCreate(key)
	odataContext, _ := json.Marshal(r.base + "/$metadata#deviceManagement/hardwareConfigurations('" + r.configID + "')/userRunStates/$entity") // a string: cannot fail
	entity := state.AppendGraphBody(nil)
	body := make([]byte, 0, len(odataContext)+len(entity)+72)
	body = append(body, `{"@odata.context":`...)
	body = append(body, odataContext...)
	body = append(body, `,"id":"`...)
	body = append(body, uuid.NewString()...)
	body = append(body, `",`...)
	body = append(body, entity[1:]...) // entity is an object with @odata.type at least
	return subResponse{status: http.StatusCreated, body: body}
}

// injectFault decides the configured 429s and 5xx for the n-th request of a
// client-request-id; failed reports whether there is one.
func (e *Emulator) injectFault(st *emulatorState, n int) (resp subResponse, failed bool) {
	cfg := &st.cfg
	now := time.Now()
	switch {
	case n <= cfg.ThrottleFirst, e.chance(cfg.ThrottleRate):
		return throttled(cfg.RetryAfter, cfg.OmitRetryAfter), true
	case st.limiter != nil && !st.limiter.AllowN(now, 1):
		wait := (1 - st.limiter.TokensAt(now)) / float64(st.limiter.Limit())
		return throttled(time.Duration(wait*float64(time.Second)), cfg.OmitRetryAfter), true
	case n <= cfg.ThrottleFirst+cfg.FailFirst:
		return serverError(cfg.failStatus()), true
	case e.chance(cfg.ErrorRate):
		return serverError(http.StatusServiceUnavailable), true
	}
	return subResponse{}, false
}

// serverError is an injected 5xx, its code the status text the way Graph spells
// codes ("ServiceUnavailable", "GatewayTimeout").
func serverError(status int) subResponse {
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	if code == "" {
		code = "ServiceError"
	}
	return failure(status, code, "Injected failure.")
}

// arrive counts a request of a client-request-id and returns its number, from 1.
func (e *Emulator) arrive(key uuid.UUID) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.ids[key]
	c.seen++
	e.ids[key] = c
	return c.seen
}

func (e *Emulator) recordCreate(key uuid.UUID) {
	if key == uuid.Nil {
		return // no identity, so no duplicate either
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.ids[key]
	c.created++
	e.ids[key] = c
	if c.created > 1 {
		e.stats.duplicates.Add(1)
	}
}

func (e *Emulator) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rng.Float64() < p
}

// changeConfig serves PUT (replace) and PATCH (!replace) of the configuration.
func (e *Emulator) changeConfig(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err == nil {
			err = e.update(func(c *EmulatorConfig) error {
				if replace {
					*c = EmulatorConfig{}
				}
				if err := json.Unmarshal(body, c); err != nil {
					return err
				}
				return c.Validate()
			})
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, struct {
				Error *Error `json:"error"`
			}{&Error{Code: "BadRequest", Message: err.Error()}})
			return
		}
		writeJSON(w, http.StatusOK, e.Config())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
