package emulator

import (
	"net/http"
	"sync/atomic"
)

// Stats counts the emulator's answers to Graph requests (not to the control endpoint).
// BadRequests counts every 4xx but 401, 403, 404 and 429 (400, 405, 413, 415).
//
// Every create counts, sent alone or as a sub-request of a $batch (as Graph counts them
// against a tenant's limits); a $batch refused as a whole (401, 503, a malformed batch)
// counts once, by its status. Batches counts $batch requests, whatever their answer.
type Stats struct {
	Requests uint64 `json:"requests"`
	Batches  uint64 `json:"batches"`
	// Creates counts the user states created, whether or not their answer reached the
	// client; Ambiguous counts those whose answer was lost on purpose (AmbiguousRate),
	// also counted by their 5xx in ServerErrors.
	Creates   uint64 `json:"creates"`
	Ambiguous uint64 `json:"ambiguous"`
	// Duplicates counts creates whose client-request-id already had one: what an
	// idempotent client must keep at 0.
	Duplicates uint64 `json:"duplicates"`
	// Lists counts list requests answered 200.
	Lists uint64 `json:"lists"`
	// Throttled counts every 429: injected, or beyond Rate or Window.
	Throttled    uint64 `json:"throttled"`
	ServerErrors uint64 `json:"serverErrors"`
	Unauthorized uint64 `json:"unauthorized"`
	// Forbidden counts the 403s of Forbidden.
	Forbidden   uint64 `json:"forbidden"`
	BadRequests uint64 `json:"badRequests"`
	NotFound    uint64 `json:"notFound"`
}

type counters struct {
	requests, batches, creates, ambiguous, duplicates, lists, throttled, serverErrors, unauthorized, forbidden, badRequests, notFound atomic.Uint64
}

func (c *counters) count(status int) {
	c.requests.Add(1)
	switch {
	case status == http.StatusOK:
		c.lists.Add(1)
	case status == http.StatusUnauthorized:
		c.unauthorized.Add(1)
	case status == http.StatusForbidden:
		c.forbidden.Add(1)
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

// Stats returns the tenant's counters so far.
func (tn *Tenant) Stats() Stats {
	c := &tn.stats
	return Stats{
		Requests:     c.requests.Load(),
		Batches:      c.batches.Load(),
		Creates:      c.creates.Load(),
		Ambiguous:    c.ambiguous.Load(),
		Duplicates:   c.duplicates.Load(),
		Lists:        c.lists.Load(),
		Throttled:    c.throttled.Load(),
		ServerErrors: c.serverErrors.Load(),
		Unauthorized: c.unauthorized.Load(),
		Forbidden:    c.forbidden.Load(),
		BadRequests:  c.badRequests.Load(),
		NotFound:     c.notFound.Load(),
	}
}
