package emulator

import (
	"testing"
	"time"
)

// Retry-After is rounded up to the millisecond: a client waiting as told is never early.
func TestFormatRetryAfter(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{-time.Second, "0"},
		{0, "0"},
		{time.Nanosecond, "0.001"},
		{250 * time.Millisecond, "0.250"},
		{time.Second, "1"},
		{1000100 * time.Microsecond, "1.001"},
		{2128 * time.Millisecond, "2.128"},
		{3 * time.Minute, "180"},
	}
	for _, tt := range tests {
		got := formatRetryAfter(tt.in)
		if got != tt.want {
			t.Errorf("formatRetryAfter(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
