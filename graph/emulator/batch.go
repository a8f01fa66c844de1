package emulator

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// maxBatch is the most requests Graph takes in one $batch.
const maxBatch = 20

// batchRequest and batchAnswer are the JSON of a $batch and of its answer, as Graph
// documents them: written here from the documentation, not shared with any client, so
// that a client's mistake in the format fails against the emulator.
type batchRequest struct {
	Requests []batchSubRequest `json:"requests"`
}

type batchSubRequest struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers"`
	Body    json.RawMessage   `json:"body"`
	// DependsOn is Graph's ordering of sub-requests; accepted and ignored, as every
	// sub-request here is answered on its own.
	DependsOn []string `json:"dependsOn"`
}

type batchAnswer struct {
	Responses []batchSubResponse `json:"responses"`
}

type batchSubResponse struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// isBatchPath says whether an escaped path is {prefix}/$batch.
func isBatchPath(path string) bool {
	return strings.HasSuffix(path, "/$batch") || strings.HasSuffix(path, "/%24batch")
}

// serveBatch answers POST {prefix}/$batch the way Graph does: the batch as a whole is
// refused (outage, Authorization, and 400 for a payload Graph would refuse: not JSON, no
// requests or more than maxBatch, an id missing or used twice, a sub-request without
// method or url, or with a body but no Content-Type), or answered 200 with one
// sub-response per sub-request, in an order of its own. Each sub-request goes through
// create like a create sent alone: faults, rate limits and counters included (a
// sub-request whose answer is lost by hang or drop loses the answer of the $batch).
func (tn *Tenant) serveBatch(st *state, r *http.Request) subResponse {
	if r.Method != http.MethodPost {
		return methodNotAllowed(r.Method, "$batch", http.MethodPost)
	}
	body, refused := tn.admit(st, r)
	if refused != nil {
		return *refused
	}
	if mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mediaType != "application/json" {
		return failure(http.StatusUnsupportedMediaType, "UnsupportedMediaType", "Content-Type must be application/json.")
	}
	reqs, msg := parseBatch(body)
	if msg != "" {
		return failure(http.StatusBadRequest, "BadRequest", "Invalid batch payload: "+msg)
	}
	base := baseURL(r, strings.TrimSuffix(strings.TrimSuffix(r.URL.EscapedPath(), "/$batch"), "/%24batch"))
	now := tn.now()
	lost := answered
	answers := batchAnswer{Responses: make([]batchSubResponse, len(reqs))}
	for i, sub := range reqs {
		header := make(http.Header, len(sub.Headers))
		for k, v := range sub.Headers {
			header.Set(k, v)
		}
		resp := tn.serveSub(st, base, sub, header)
		tn.stats.count(resp.status)
		// The first sub-request whose answer is lost loses the whole answer.
		if resp.lost != answered && lost == answered {
			lost = resp.lost
		}
		h, b := resp.finish(header.Get("client-request-id"), now)
		flat := make(map[string]string, len(h))
		for k := range h {
			flat[k] = h.Get(k)
		}
		answers.Responses[i] = batchSubResponse{ID: sub.ID, Status: resp.status, Headers: flat, Body: b}
	}
	// Graph promises no order; neither does the emulator, so clients cannot come to rely on one.
	rand.Shuffle(len(answers.Responses), func(i, j int) {
		answers.Responses[i], answers.Responses[j] = answers.Responses[j], answers.Responses[i]
	})
	out, err := json.Marshal(answers)
	if err != nil { // bodies are the emulator's own JSON: cannot fail
		return failure(http.StatusInternalServerError, "InternalServerError", err.Error())
	}
	return subResponse{status: http.StatusOK, body: out, lost: lost}
}

// parseBatch decodes a $batch payload and checks it as a whole; msg says what is wrong.
func parseBatch(body []byte) (reqs []batchSubRequest, msg string) {
	var br batchRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&br); err != nil {
		return nil, "not a batch: " + err.Error()
	}
	if dec.More() {
		return nil, "data after the batch object"
	}
	switch n := len(br.Requests); {
	case n == 0:
		return nil, "no requests"
	case n > maxBatch:
		return nil, "the number of requests exceeds the limit of " + strconv.Itoa(maxBatch)
	}
	ids := make(map[string]bool, len(br.Requests))
	for _, sub := range br.Requests {
		switch {
		case sub.ID == "":
			return nil, "a request has no id"
		case ids[sub.ID]:
			return nil, "the id " + strconv.Quote(sub.ID) + " is used twice"
		case sub.Method == "" || sub.URL == "":
			return nil, "request " + strconv.Quote(sub.ID) + " has no method or no url"
		case len(sub.Body) > 0 && !hasHeader(sub.Headers, "Content-Type"):
			return nil, "request " + strconv.Quote(sub.ID) + " has a body but no Content-Type header"
		}
		ids[sub.ID] = true
	}
	return br.Requests, ""
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// serveSub answers one sub-request: its url is relative to the Graph root the $batch was
// sent to, with or without a leading slash.
func (tn *Tenant) serveSub(st *state, base string, sub batchSubRequest, header http.Header) subResponse {
	if strings.Contains(sub.URL, "://") {
		return failure(http.StatusBadRequest, "BadRequest", "The url of a batch request must be relative.")
	}
	prefix, configID, ok := splitCreatePath("/" + strings.TrimPrefix(sub.URL, "/"))
	switch {
	case !ok || prefix != "":
		return failure(http.StatusNotFound, "ResourceNotFound", "No resource at "+sub.URL+".")
	case !strings.EqualFold(sub.Method, http.MethodPost):
		return methodNotAllowed(sub.Method, "userRunStates inside a $batch", http.MethodPost)
	}
	return tn.create(st, subRequest{base: base, configID: configID, header: header, body: sub.Body})
}
