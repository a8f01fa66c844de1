package worker

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
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
	EventID                 string          `json:"eventId"`
	HardwareConfigurationID string          `json:"hardwareConfigurationId"`
	GraphID                 string          `json:"graphId"`
	Status                  int             `json:"status"`
	Attempts                int             `json:"attempts"`
	ClientRequestID         string          `json:"clientRequestId"`
	GraphRequestID          string          `json:"graphRequestId"`
	CompletedAt             time.Time       `json:"completedAt"`
	Created                 json.RawMessage `json:"created"`
}

// DeadLetter is the body published for an event that could not be created.
type DeadLetter struct {
	EventID           string      `json:"eventId"`
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
