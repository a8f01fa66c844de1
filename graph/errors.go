package graph

import (
	"encoding/json"
	"errors"
)

// ErrInvalidConfigurationID is returned by Create, without sending anything, for a
// configuration id that is not a GUID. It is the one error of Create that is not
// transient: callers validate events first (CONTRACT section 1), so it means a bug.
var ErrInvalidConfigurationID = errors.New("graph: configuration id is not a GUID")

// ErrNoToken is wrapped by Create's error when Tokens gave no token (sign-in failed), so
// nothing was sent: the worker's credentials or the sign-in authority are at fault, never
// the event.
var ErrNoToken = errors.New("graph: no token")

// Error is Graph's error body {"error":{"code","message","innerError":{...}}}.
// Branch on Code, never on Message: messages change without notice.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// InnerError is kept as Graph sent it: it carries request-id, date and
	// client-request-id for support, and may nest further innerErrors.
	InnerError json.RawMessage `json:"innerError,omitempty"`
}

func (e *Error) Error() string {
	return "graph: " + e.Code + ": " + e.Message
}

// parseError reads an error body; nil when the body is not one (empty, HTML from a
// proxy, or JSON without a code), so callers never mistake garbage for Graph's word.
func parseError(body []byte) *Error {
	var envelope struct {
		Error *Error `json:"error"`
	}
	if json.Unmarshal(body, &envelope) != nil || envelope.Error == nil || envelope.Error.Code == "" {
		return nil
	}
	return envelope.Error
}
