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
	lost   lostAnswer  // set when the answer must not reach the client
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

// methodNotAllowed answers 405 for a method other than allow, naming what was asked for.
func methodNotAllowed(method, what, allow string) subResponse {
	resp := failure(http.StatusMethodNotAllowed, "MethodNotAllowed", "The method "+method+" is not allowed on "+what+".")
	resp.header = http.Header{"Allow": {allow}}
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

// write sends resp, with what Graph puts on every answer, to the client.
func (resp subResponse) write(w http.ResponseWriter, r *http.Request, now time.Time) {
	header, body := resp.finish(r.Header.Get("client-request-id"), now)
	for k, v := range header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(body) // a client that stopped reading has nothing to be told
}

// create answers one create the way Graph's service would, after the transport and
// authentication checks.
func (tn *Tenant) create(st *state, r subRequest) subResponse {
	n, key, refused := tn.arrive(st, r.header)
	if refused != nil {
		return *refused
	}
	if mediaType, _, err := mime.ParseMediaType(r.header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		return failure(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json.")
	}
	configID, refused := configuration(st, r.configID)
	switch {
	case refused != nil:
		return *refused
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

	entity := tn.store(key, configID, userState)
	odataContext, _ := json.Marshal(r.base + "/$metadata#deviceManagement/hardwareConfigurations('" + r.configID + "')/userRunStates/$entity") // a string: cannot fail
	body := make([]byte, 0, len(odataContext)+len(entity)+20)
	body = append(body, `{"@odata.context":`...)
	body = append(body, odataContext...)
	body = append(body, ',')
	body = append(body, entity[1:]...)
	return tn.ambiguous(&st.cfg, subResponse{status: http.StatusCreated, body: body})
}

// forbiddenMessage is the message of Intune's 403 to an app without the permission, a
// JSON document of its own inside the string.
const forbiddenMessage = `{"_version":3,"Message":"Application is not authorized to perform this operation. ` +
	`Application must have one of the following scopes: DeviceManagementConfiguration.ReadWrite.All - ` +
	`Operation ID (for customer support): 00000000-0000-0000-0000-000000000000 (emulated)",` +
	`"CustomApiErrorPhrase":"","RetryAfter":null,"ErrorSourceService":"","HttpHeaders":"{}"}`

// arrive checks the permission (Forbidden) and the client-request-id of a Graph request
// (create or list), counts the request as its n-th, and injects the faults configured for
// it; refused is the answer when it goes no further.
func (tn *Tenant) arrive(st *state, header http.Header) (n int, key uuid.UUID, refused *subResponse) {
	if st.cfg.Forbidden {
		resp := failure(http.StatusForbidden, "Forbidden", forbiddenMessage)
		return 0, key, &resp
	}
	// key stays uuid.Nil for requests without a client-request-id: they count together.
	if id := header.Get("client-request-id"); id != "" {
		if !schema.IsGUID(id) {
			resp := failure(http.StatusBadRequest, "BadRequest", "The client-request-id header must be a GUID.")
			return 0, key, &resp
		}
		key = uuid.MustParse(id)
	}
	tn.mu.Lock()
	c := tn.ids[key]
	c.seen++
	tn.ids[key] = c
	tn.mu.Unlock()
	if resp, failed := tn.injectFault(st, c.seen); failed {
		return c.seen, key, &resp
	}
	return c.seen, key, nil
}

// configuration reads the configuration id of a request's URL: 400 unless a GUID, 404 if
// in NotFoundIDs.
func configuration(st *state, escaped string) (uuid.UUID, *subResponse) {
	if !schema.IsGUID(escaped) {
		resp := failure(http.StatusBadRequest, "BadRequest", "hardwareConfigurationId must be a GUID.")
		return uuid.Nil, &resp
	}
	id := uuid.MustParse(escaped)
	if st.notFound[id] {
		resp := failure(http.StatusNotFound, "ResourceNotFound", "No hardwareConfiguration with id "+escaped+".")
		return id, &resp
	}
	return id, nil
}

// store keeps a created user state under its configuration, with a new id, and counts
// it; it returns the entity as Graph holds it: {"id":...,"@odata.type":...,...}.
func (tn *Tenant) store(key, configID uuid.UUID, u schema.UserState) []byte {
	body := u.AppendGraphBody(nil) // an object with @odata.type at least
	entity := make([]byte, 0, len(body)+48)
	entity = append(entity, `{"id":"`...)
	entity = append(entity, uuid.NewString()...)
	entity = append(entity, `",`...)
	entity = append(entity, body[1:]...)
	tn.stats.creates.Add(1)
	tn.mu.Lock()
	defer tn.mu.Unlock()
	tn.entities[configID] = append(tn.entities[configID], storedState{upn: u.UPN, entity: entity})
	if key == uuid.Nil {
		return entity // no identity, so no duplicate either
	}
	c := tn.ids[key]
	c.created++
	tn.ids[key] = c
	if c.created > 1 {
		tn.stats.duplicates.Add(1)
	}
	return entity
}

// CreatesFor returns how many creates (201s) a client-request-id has had in this tenant:
// 1 for every event of a client that never duplicates.
func (tn *Tenant) CreatesFor(clientRequestID string) int {
	key, err := uuid.Parse(clientRequestID)
	if err != nil {
		return 0
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.ids[key].created
}
