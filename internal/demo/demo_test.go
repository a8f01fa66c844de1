package demo_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/hwstate/hwstate/internal/demo"
	"github.com/hwstate/hwstate/internal/proctest"
)

// The demo is the newcomer's first run: it must end with every sample accounted for, each
// kind of event with its expected outcome, and say so; then show three tenants side by side
// (Run fails unless every tenant's event has its one expected outcome, the refused tenant's
// are created only after its consent returns, and nothing is sent to the unlisted tenant).
func TestDemoAccountsForEveryEvent(t *testing.T) {
	proctest.SkipShort(t)
	var out proctest.Buffer
	if err := demo.Run(context.Background(), demo.Config{Events: 60, TenantEvents: 10, Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}, &out); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	t.Log(got)
	for _, want := range []string{
		"created ", "invalid_event ", "graph_rejected ", "retries_exhausted ",
		"answered 429 (retried)", "0 duplicate creates", "each exactly once with its expected outcome",
		"What to notice", "Each event has exactly one outcome",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The tenants' rows: events, created, dead-lettered, waiting, 429s, 403s, Graph requests.
	for _, row := range []struct{ what, re string }{
		{"northwind waiting, refused, before its consent returns", `(?m)^\s*northwind\s+10\s+0\s+0\s+10\s+0\s+[1-9]\d*\s`},
		{"northwind created after", `(?m)^\s*northwind\s+10\s+10\s+0\s+0\s`},
		{"contoso created, never throttled or refused", `(?m)^\s*contoso\s+10\s+10\s+0\s+0\s+0\s+0\s+10\s`},
		{"fabrikam throttled", `(?m)^\s*fabrikam\s+10\s+10\s+0\s+0\s+[1-9]\d*\s`},
		{"unlisted dead-lettered, no Graph request", `(?m)^\s*unlisted\s+3\s+0\s+3\s+0\s+0\s+0\s+0\s`},
	} {
		if !regexp.MustCompile(row.re).MatchString(got) {
			t.Errorf("no row showing %s", row.what)
		}
	}
}
