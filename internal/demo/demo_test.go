package demo_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hwstate/hwstate/internal/demo"
	"github.com/hwstate/hwstate/internal/proctest"
)

// The demo is the newcomer's first run: it must end with every sample accounted for, each
// kind of event with its expected outcome, and say so.
func TestDemoAccountsForEveryEvent(t *testing.T) {
	proctest.SkipShort(t)
	var out proctest.Buffer
	if err := demo.Run(context.Background(), demo.Config{Events: 60, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
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
