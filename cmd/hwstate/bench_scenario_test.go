package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestBenchUnknownScenario(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := mainExit([]string{"bench", "--scenario", "nope"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "unknown scenario") {
		t.Errorf("exit %d, stderr %q: want 1 and unknown scenario", code, stderr.String())
	}
}
