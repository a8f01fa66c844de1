package graph

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
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

// The emulator's Retry-After must read back as at least the wait it stands for, and
// less than a millisecond more.
func TestRetryAfterFromEmulator(t *testing.T) {
	for _, d := range []time.Duration{-time.Second, 0, time.Nanosecond, 250 * time.Millisecond, time.Second,
		1000100 * time.Microsecond, 2128 * time.Millisecond, 3 * time.Minute} {
		_, srv := newEmulatorServer(t, emulator.Config{ThrottleFirst: 1, RetryAfter: d})
		c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}
		resp, err := c.Create(context.Background(), testRequest("retry-after"))
		if err != nil || resp.Status != 429 || !resp.HasRetryAfter || resp.RetryAfter < d || resp.RetryAfter-max(d, 0) >= time.Millisecond {
			t.Errorf("Retry-After for %v: %v (%v), status %d, %v", d, resp.RetryAfter, resp.HasRetryAfter, resp.Status, err)
		}
	}
}
