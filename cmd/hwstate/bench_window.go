package main

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// windowLimit is a tenant's write budget as Intune publishes it: limit writes per sliding
// window of per (100 per 20 s per app per tenant).
type windowLimit struct {
	limit int
	per   time.Duration
}

func (w windowLimit) perSecond() float64 { return float64(w.limit) / w.per.Seconds() }

// windowLimiter stands in front of the Graph emulator and answers 429 with a Retry-After to
// any create beyond the window's budget. The emulator's own limit is a token bucket, which
// smooths where a sliding window lets a whole budget through at once and then nothing for
// the rest of the window: the harder shape for a worker's pacing. Like the emulator, a
// throttled request takes nothing from the budget. Only single creates are counted; a
// $batch passes through unlimited.
type windowLimiter struct {
	lim  windowLimit
	next http.Handler

	mu       sync.Mutex
	admitted []time.Time // the last lim.limit admissions, a ring from head
	head     int
	rejected atomic.Uint64
}

func newWindowLimiter(lim windowLimit, next http.Handler) *windowLimiter {
	return &windowLimiter{lim: lim, next: next, admitted: make([]time.Time, 0, lim.limit)}
}

func (w *windowLimiter) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/userRunStates") {
		w.next.ServeHTTP(rw, r)
		return
	}
	if wait := w.admit(time.Now()); wait > 0 {
		w.rejected.Add(1)
		// Whole milliseconds rounded up, so a client waiting as told is never early.
		ms := (wait + time.Millisecond - 1) / time.Millisecond
		rw.Header().Set("Retry-After", strconv.FormatFloat(float64(ms)/1000, 'f', 3, 64))
		rw.Header().Set("Content-Type", "application/json")
		rw.WriteHeader(http.StatusTooManyRequests)
		_, _ = rw.Write([]byte(`{"error":{"code":"TooManyRequests","message":"Too many requests. Please retry after a while (emulated sliding window)."}}`))
		return
	}
	w.next.ServeHTTP(rw, r)
}

// admit takes a write from the budget at now, or returns how long until the window has room.
func (w *windowLimiter) admit(now time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.admitted) < w.lim.limit {
		w.admitted = append(w.admitted, now)
		return 0
	}
	if wait := w.admitted[w.head].Add(w.lim.per).Sub(now); wait > 0 {
		return wait
	}
	w.admitted[w.head] = now
	w.head = (w.head + 1) % w.lim.limit
	return 0
}
