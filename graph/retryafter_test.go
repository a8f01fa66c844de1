package graph

import (
	"math"
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"2", 2 * time.Second, true},
		{"2.128", 2128 * time.Millisecond, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{"0.0005", 500 * time.Microsecond, true},
		{"-1", 0, true},
		{"-0.5", 0, true},
		{"99999999999999999999", math.MaxInt64, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{now.Add(time.Minute).Format(time.RFC850), time.Minute, true},
		{"", 0, false},
		{"abc", 0, false},
		{"2.", 0, false},
		{".5", 0, false},
		{"+2", 0, false},
		{"1e3", 0, false},
		{"Inf", 0, false},
		{"NaN", 0, false},
		{"0x10", 0, false},
		{"2 s", 0, false},
		{"-", 0, false},
		{now.Format(time.RFC3339), 0, false},
	}
	for _, tt := range tests {
		got, ok := ParseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
}

// The emulator's Retry-After must read back as at least the wait it stands for.
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
		if d, ok := ParseRetryAfter(got, time.Now()); !ok || d < tt.in || d-max(tt.in, 0) >= time.Millisecond {
			t.Errorf("ParseRetryAfter(formatRetryAfter(%v)) = %v, %v", tt.in, d, ok)
		}
	}
}
