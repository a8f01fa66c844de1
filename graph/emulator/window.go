package emulator

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// window is a Window in force: the times of the last Limit creates it admitted.
type window struct {
	per time.Duration

	mu       sync.Mutex
	admitted []time.Time // a ring from head once full
	head     int
}

func newWindow(w Window) *window {
	return &window{per: w.Per, admitted: make([]time.Time, 0, w.Limit)}
}

// wait is how long from now until the window has room; 0 when it has. Called with mu held.
func (w *window) wait(now time.Time) time.Duration {
	if len(w.admitted) < cap(w.admitted) {
		return 0
	}
	return max(w.admitted[w.head].Add(w.per).Sub(now), 0)
}

// take records a create admitted at now. Called with mu held, after wait said 0.
func (w *window) take(now time.Time) {
	if len(w.admitted) < cap(w.admitted) {
		w.admitted = append(w.admitted, now)
		return
	}
	w.admitted[w.head] = now
	w.head = (w.head + 1) % len(w.admitted)
}

// admitWrite takes one create at now from the tenant's limits, the bucket and the window
// (either may be nil), or returns how long until both would have room. A create refused
// by one takes from neither: the window is held while the bucket is asked.
func admitWrite(now time.Time, bucket *rate.Limiter, w *window) time.Duration {
	if w != nil {
		w.mu.Lock()
		defer w.mu.Unlock()
		if wait := w.wait(now); wait > 0 {
			return wait
		}
	}
	if bucket != nil && !bucket.AllowN(now, 1) {
		tokens := (1 - bucket.TokensAt(now)) / float64(bucket.Limit())
		return max(time.Duration(tokens*float64(time.Second)), 1)
	}
	if w != nil {
		w.take(now)
	}
	return 0
}
