package emulator

import (
	"encoding/json"
	"mime"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

// subRequest is one create, sent alone or inside a $batch.
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
	err    *graphError // otherwise, the error's code and message
}

// graphError is Graph's error object, as in {"error":{"code","message","innerError"}}.
type graphError struct {
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	InnerError json.RawMessage `json:"innerError,omitempty"`
}

type errorBody struct {
	Error *graphError `json:"error"`
}

// methodNotAllowed answers 405 for anything but POST, naming what was asked for.
func methodNotAllowed(method, what string) subResponse {
	resp := failure(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+method+" is not allowed on "+what+".")
	resp.header = http.Header{"Allow": {http.MethodPost}}
	return resp
}

func failure(status int, code, message string) subResponse {
	return subResponse{status: status, err: &graphError{Code: code, Message: message}}
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
	body, _ := json.Marshal(errorBody{&graphErr}) // cannot fail: inner is valid JSON
	return h, body
}

// create answers one create the way Graph's service would, after the transport and
// authentication checks.
func (e *Emulator) create(st *state, r subRequest) subResponse {
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
	userState, err := schema.DecodeUserState(r.body)
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
	entity := userState.AppendGraphBody(nil)
	body := make([]byte, 0, len(odataContext)+len(entity)+72)
	body = append(body, `{"@odata.context":`...)
	body = append(body, odataContext...)
	body = append(body, `,"id":"`...)
	body = append(body, uuid.NewString()...)
	body = append(body, `",`...)
	body = append(body, entity[1:]...) // entity is an object with @odata.type at least
	return subResponse{status: http.StatusCreated, body: body}
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
