package emulator

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// injectFault decides the configured 429s and 5xx for the n-th request of a
// client-request-id; failed reports whether there is one.
func (tn *Tenant) injectFault(st *state, n int) (resp subResponse, failed bool) {
	cfg := &st.cfg
	switch {
	case n <= cfg.ThrottleFirst, tn.chance(cfg.ThrottleRate):
		return throttled(cfg.RetryAfter, cfg.OmitRetryAfter), true
	}
	if wait := admitWrite(tn.now(), st.bucket, st.window); wait > 0 {
		return throttled(wait, cfg.OmitRetryAfter), true
	}
	switch {
	case n <= cfg.ThrottleFirst+cfg.FailFirst:
		return serverError(cfg.failStatus()), true
	case tn.chance(cfg.ErrorRate):
		return serverError(http.StatusServiceUnavailable), true
	}
	return subResponse{}, false
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

// serverError is an injected 5xx, its code the status text the way Graph spells
// codes ("ServiceUnavailable", "GatewayTimeout").
func serverError(status int) subResponse {
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	if code == "" {
		code = "ServiceError"
	}
	return failure(status, code, "Injected failure.")
}

func (tn *Tenant) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	tn.mu.Lock()
	defer tn.mu.Unlock()
	return tn.rng.Float64() < p
}

// lostAnswer is what happens to an answer that must not reach the client.
type lostAnswer int

const (
	answered lostAnswer = iota
	hang                // held until the client gives up
	drop                // the connection closed without an answer
)

// ambiguous draws, for a create just made whose answer is created, whether AmbiguousRate
// loses that answer, and how; Stats count it.
func (tn *Tenant) ambiguous(cfg *Config, created subResponse) subResponse {
	if cfg.AmbiguousRate <= 0 {
		return created
	}
	kinds := cfg.AmbiguousFaults
	if len(kinds) == 0 {
		kinds = ambiguousFaults
	}
	tn.mu.Lock()
	fault := ""
	if tn.rng.Float64() < cfg.AmbiguousRate {
		fault = kinds[tn.rng.IntN(len(kinds))]
	}
	tn.mu.Unlock()
	switch fault {
	case "":
		return created
	case Fault500:
		created = serverError(http.StatusInternalServerError)
	case Fault504:
		created = serverError(http.StatusGatewayTimeout)
	case FaultHang:
		created.lost = hang
	default:
		created.lost = drop
	}
	tn.stats.ambiguous.Add(1)
	return created
}

// withhold makes sure the client never gets an answer to r.
func withhold(w http.ResponseWriter, r *http.Request, lost lostAnswer) {
	if lost == hang {
		<-r.Context().Done() // the client gave up, or the server is shutting down
		return
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not HTTP/1 (or a wrapper that cannot hijack): abort the response instead,
		// which the server does without logging.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}
