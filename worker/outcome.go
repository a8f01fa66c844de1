package worker

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/hwstate/hwstate/graph"
)

// Outcome is how an event ended (CONTRACT.md section 3).
type Outcome string

const (
	Created          Outcome = "created"
	InvalidEvent     Outcome = "invalid_event"
	GraphRejected    Outcome = "graph_rejected"
	RetriesExhausted Outcome = "retries_exhausted"
)

// Result is the body published for a created event.
type Result struct {
	EventID string `json:"eventId"`
	// TenantID is the tenant of the event's subject in multi-tenant mode.
	TenantID                string          `json:"tenantId,omitempty"`
	HardwareConfigurationID string          `json:"hardwareConfigurationId"`
	GraphID                 string          `json:"graphId"`
	Status                  int             `json:"status"`
	Attempts                int             `json:"attempts"`
	ClientRequestID         string          `json:"clientRequestId"`
	GraphRequestID          string          `json:"graphRequestId"`
	CompletedAt             time.Time       `json:"completedAt"`
	Created                 json.RawMessage `json:"created"`
	// Reconciled: the entity was found in Graph, made by an earlier attempt whose answer
	// was lost, instead of being created again.
	Reconciled bool `json:"reconciled,omitempty"`
	// CreatedTruncated: Graph's body would not fit the server's max payload; Created holds
	// only its id.
	CreatedTruncated bool `json:"createdTruncated,omitempty"`
}

// DeadLetter is the body published for an event that could not be created.
type DeadLetter struct {
	EventID string `json:"eventId"`
	// TenantID is the tenant of the event's subject in multi-tenant mode.
	TenantID          string      `json:"tenantId,omitempty"`
	Reason            Outcome     `json:"reason"`
	Error             string      `json:"error"`
	HTTPStatus        int         `json:"httpStatus,omitempty"`
	GraphError        *GraphError `json:"graphError,omitempty"`
	GraphRequestID    string      `json:"graphRequestId,omitempty"`
	Attempts          int         `json:"attempts"`
	Stream            string      `json:"stream"`
	StreamSequence    uint64      `json:"streamSequence"`
	Subject           string      `json:"subject"`
	FailedAt          time.Time   `json:"failedAt"`
	Original          *string     `json:"original,omitempty"`
	OriginalBase64    string      `json:"originalBase64,omitempty"`
	OriginalTruncated bool        `json:"originalTruncated,omitempty"`
}

// GraphError is the part of Graph's error body a person triaging the DLQ needs.
type GraphError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// payloadMargin leaves room, under the server's max payload, for an output's headers (an
// event id is at most maxIDBytes) and the ledger's envelope around its body.
const payloadMargin = 4 << 10

// maxText bounds each free text in a dead letter (our error, Graph's message): the facts of
// a failure must fit beside the original, whatever Graph said.
const maxText = 2 << 10

// outputLimit is the most bytes an output's body may have.
func (w *Worker) outputLimit() int { return int(w.js.Conn().MaxPayload()) - payloadMargin }

// result is the record of a created event: Graph's answer to its create, or the entity that
// reconciliation found.
func (w *Worker) result(ev *event, configurationID, clientRequestID string, ans answer) record {
	r := Result{
		EventID:                 ev.id.value,
		TenantID:                ev.id.tenant,
		HardwareConfigurationID: configurationID,
		GraphID:                 ans.resp.GraphID,
		Status:                  ans.resp.Status,
		Attempts:                ev.attempts,
		ClientRequestID:         clientRequestID,
		GraphRequestID:          ans.resp.RequestID,
		CompletedAt:             w.opts.now().UTC(),
		Created:                 ans.resp.Body,
	}
	if f := ans.found; f != nil {
		// The entity exists: that is what 201 said. The request id is the lookup's.
		r.GraphID, r.Status, r.Created, r.Reconciled = f.ID, 201, mustMarshal(f), true
	}
	if !json.Valid(r.Created) {
		r.Created = nil // a result without Graph's body beats no result
	}
	body := mustMarshal(r)
	if len(body) > w.outputLimit() {
		r.Created, r.CreatedTruncated = mustMarshal(struct {
			ID string `json:"id"`
		}{r.GraphID}), true
		body = mustMarshal(r)
	}
	return record{Outcome: Created, Body: body}
}

// mustMarshal encodes what holds only strings, numbers and checked JSON: it cannot fail.
func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding an output: %v", err))
	}
	return b
}

// setAnswer copies what Graph said into a dead letter; a status of 0 means Graph never answered.
func (d *DeadLetter) setAnswer(resp graph.Response) {
	if resp.Status == 0 {
		return
	}
	d.HTTPStatus = resp.Status
	d.GraphRequestID = resp.RequestID
	if resp.Error != nil {
		d.GraphError = &GraphError{Code: cut(resp.Error.Code), Message: cut(resp.Error.Message)}
	}
}

// deadLetter completes a dead letter with where the event came from and its original body,
// and makes it fit the server's max payload.
func (w *Worker) deadLetter(ev *event, dl *DeadLetter) record {
	dl.EventID, dl.TenantID = ev.id.value, ev.id.tenant
	dl.Error = cut(dl.Error)
	dl.Stream = ev.meta.Stream
	dl.StreamSequence = ev.meta.Sequence.Stream
	dl.Subject = ev.msg.Subject()
	dl.FailedAt = w.opts.now().UTC()
	body, err := dl.marshalFitting(ev.msg.Data(), w.outputLimit())
	if err != nil {
		panic(fmt.Sprintf("encoding a dead letter: %v", err))
	}
	return record{Outcome: dl.Reason, Body: body}
}

// cut bounds a free text to maxText bytes, on a rune boundary.
func cut(s string) string {
	if len(s) <= maxText {
		return s
	}
	return string(trimPartialRune([]byte(s[:maxText]))) + "…"
}

// setOriginal keeps the event's body in the dead letter: as a string when it is text, so a
// person can read and redrive it, and base64 otherwise.
func (d *DeadLetter) setOriginal(body []byte) {
	if utf8.Valid(body) {
		s := string(body)
		d.Original, d.OriginalBase64 = &s, ""
		return
	}
	d.Original, d.OriginalBase64 = nil, base64.StdEncoding.EncodeToString(body)
}

// marshalFitting encodes the dead letter within limit bytes, cutting the original body (never
// the facts about the failure) when it would not fit the server's max payload.
func (d *DeadLetter) marshalFitting(original []byte, limit int) ([]byte, error) {
	text := utf8.Valid(original)
	d.setOriginal(original)
	data, err := json.Marshal(d)
	for err == nil && len(data) > limit && len(original) > 0 {
		// JSON escaping or base64 can make the encoded original larger than its bytes; cut
		// by the excess, at least a quarter, until it fits.
		cut := max(len(data)-limit, len(original)/4)
		original = original[:max(0, len(original)-cut)]
		if text {
			original = trimPartialRune(original)
		}
		d.OriginalTruncated = true
		d.setOriginal(original)
		data, err = json.Marshal(d)
	}
	return data, err
}

// trimPartialRune drops a UTF-8 sequence cut in the middle, so a text body stays text.
func trimPartialRune(b []byte) []byte {
	for len(b) > 0 {
		if r, size := utf8.DecodeLastRune(b); r != utf8.RuneError || size > 1 {
			break
		}
		b = b[:len(b)-1]
	}
	return b
}
