package main

import (
	"context"
	"strings"
	"testing"

	"github.com/hwstate/hwstate/internal/proctest"
)

// The demo is the newcomer's first run: it must end with every sample accounted for, each
// kind of event with its expected outcome, and say so.
func TestDemoAccountsForEveryEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline")
	}
	var out, errOut proctest.Buffer
	if err := runDemo(context.Background(), []string{"--events", "60"}, &out, &errOut); err != nil {
		t.Fatalf("demo: %v\n%s\n%s", err, out.String(), errOut.String())
	}
	got := out.String()
	t.Log(got)
	for _, want := range []string{
		"created ", "invalid_event ", "graph_rejected ", "retries_exhausted ",
		"answered 429 (retried)", "0 duplicate creates", "each exactly once with its expected outcome",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
}
