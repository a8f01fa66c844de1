package graph

import "strconv"

// Class is what an answer means for the event.
type Class int

const (
	// Created is 201: the entity exists.
	Created Class = iota + 1
	// Rejected is a 4xx other than 401, 403, 405, 408, 424 and 429: the event's own
	// fault, so sending it again cannot help (graph_rejected).
	Rejected
	// Transient is 408, 424, 429 and any 5xx (and, for the caller, any error from
	// Create: network error, timeout): the same request may succeed later.
	Transient
	// Systemic is 401, 403 and 405: the worker's credentials, permissions or tenant are
	// wrong, not the event. Any other answer that is neither 201 nor 4xx/5xx (a redirect,
	// a 200) is Systemic too: it means the base URL does not lead to Graph, which is
	// also the deployment's fault, not the event's.
	Systemic
	// Listed is a 200 to a list request (ListUserStates): the page was read. Creates
	// never have it.
	Listed
)

func (c Class) String() string {
	switch c {
	case Created:
		return "created"
	case Rejected:
		return "rejected"
	case Transient:
		return "transient"
	case Systemic:
		return "systemic"
	case Listed:
		return "listed"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Classify says what an HTTP status from a create means (CONTRACT section 3).
//
// 424 (Failed Dependency) only comes from a sub-request of a $batch whose dependsOn
// failed; should a plain request ever get it, it is Transient there too, because it
// says nothing about the event itself.
func Classify(status int) Class {
	switch {
	case status == 201:
		return Created
	case status == 401, status == 403, status == 405:
		return Systemic
	case status == 408, status == 424, status == 429, status >= 500 && status <= 599:
		return Transient
	case status >= 400 && status <= 499:
		return Rejected
	}
	return Systemic
}
