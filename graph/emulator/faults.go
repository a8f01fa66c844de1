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
func (e *Emulator) injectFault(st *state, n int) (resp subResponse, failed bool) {
	cfg := &st.cfg
	switch {
	case n <= cfg.ThrottleFirst, e.chance(cfg.ThrottleRate):
		return throttled(cfg.RetryAfter, cfg.OmitRetryAfter), true
	}
	if wait := admitWrite(e.now(), st.bucket, st.window); wait > 0 {
		return throttled(wait, cfg.OmitRetryAfter), true
	}
	switch {
	case n <= cfg.ThrottleFirst+cfg.FailFirst:
		return serverError(cfg.failStatus()), true
	case e.chance(cfg.ErrorRate):
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

func (e *Emulator) chance(p float64) bool {
	if p <= 0 {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rng.Float64() < p
}
