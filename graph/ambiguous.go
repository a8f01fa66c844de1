package graph

import (
	"errors"
	"net/http"
)

// ErrAmbiguous is wrapped by the error of a create (sent alone or in a $batch) whose
// request reached Graph in full but whose answer was lost: a timeout, a dropped
// connection or an unreadable body after the request was written. Graph may have created
// the entity. Errors of requests that were never written (a refused connection, a failed
// DNS lookup or TLS handshake, a timeout while connecting, no token) do not wrap it: Graph
// cannot have run those.
var ErrAmbiguous = errors.New("graph: the request was sent and its answer lost: it may have been executed")

// Ambiguous reports whether a create that gave resp and err may have created the entity
// although it did not answer 201 (CONTRACT section 3, "ended ambiguously"), so that a
// retry must first look for the entity (ListUserStates) instead of creating blindly.
//
// With an error it is errors.Is(err, ErrAmbiguous). With an answer it is the status: 500,
// 502 and 504 say the request may have run, and so does any other 5xx except 501, 503, 505
// and 509, which say it was refused before running (erring on the side of a lookup costs
// one list request; the other side costs a duplicate). A 408, 429, 401, 403, any other 4xx
// (424 included: a $batch sub-request not run because another failed) and a 201 are not
// ambiguous.
func Ambiguous(resp Response, err error) bool {
	if err != nil {
		return errors.Is(err, ErrAmbiguous)
	}
	return ambiguousStatus(resp.Status)
}

func ambiguousStatus(status int) bool {
	switch status {
	case http.StatusNotImplemented, http.StatusServiceUnavailable, http.StatusHTTPVersionNotSupported, 509:
		return false
	}
	return status >= 500 && status <= 599
}

// mayHaveRun reports whether an answer with this status, whose body could not be read,
// may come from a request that ran: a success, or an ambiguous status.
func mayHaveRun(status int) bool {
	return status >= 200 && status <= 299 || ambiguousStatus(status)
}
