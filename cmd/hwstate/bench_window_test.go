package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestBenchUnknownScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"bench", "--scenario", "nope"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "unknown scenario") {
		t.Errorf("exit %d, stderr %q: want 1 and unknown scenario", code, stderr.String())
	}
}

func TestWindowLimiterAdmitsLimitPerWindow(t *testing.T) {
	w := newWindowLimiter(windowLimit{limit: 3, per: 20 * time.Second}, nil)
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if wait := w.admit(t0.Add(time.Duration(i) * time.Second)); wait != 0 {
			t.Fatalf("write %d refused, wait %v", i, wait)
		}
	}
	// The oldest of the last three went at t0: room again at t0+20s, not before.
	if wait := w.admit(t0.Add(5 * time.Second)); wait != 15*time.Second {
		t.Errorf("fourth write at 5s: wait %v, want 15s", wait)
	}
	if wait := w.admit(t0.Add(20 * time.Second)); wait != 0 {
		t.Errorf("write at 20s refused, wait %v", wait)
	}
	if wait := w.admit(t0.Add(20 * time.Second)); wait != time.Second {
		t.Errorf("next write at 20s: wait %v, want 1s (the write at 1s leaves the window at 21s)", wait)
	}
}
