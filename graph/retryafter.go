package graph

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ParseRetryAfter reads a Retry-After value: delta seconds, possibly fractional as
// Graph sends them ("2.128"), or an HTTP date, taken relative to now. A negative
// value or a date in the past gives 0; a value too large for a Duration saturates.
// Anything else (empty, "abc", "1e3", "0x10") gives false, so the caller falls back
// to its own backoff instead of trusting a misread.
func ParseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if isDecimal(v) {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		switch ns := secs * float64(time.Second); {
		case ns <= 0:
			return 0, true
		case ns >= math.MaxInt64:
			return math.MaxInt64, true
		default:
			// Rounding undoes binary fractions: "2.128" is 2.128s, not 2.127999999s.
			return time.Duration(math.Round(ns)), true
		}
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	return max(t.Sub(now), 0), true
}

// isDecimal reports whether s is -?digits(.digits)?, the only number syntax a
// Retry-After may use; strconv.ParseFloat alone would also take "Inf" or "1e3".
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	whole, frac, dot := strings.Cut(s, ".")
	return allDigits(whole) && (!dot || allDigits(frac))
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
