package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const publishConfig = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"

// writeLines writes an NDJSON file of the lines.
func writeLines(t *testing.T, lines []string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.ndjson")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// summaryCount reads one figure of publish's summary.
func summaryCount(t *testing.T, out, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %q in the summary:\n%s", name, out)
	}
	var n int
	fmt.Sscan(m[1], &n)
	return n
}

// badLines is a file of valid events with mistakes at known line numbers.
func badLines() (lines []string, bad map[int]string) {
	good := event(publishConfig, 1)
	lines = []string{
		event(publishConfig, 1),
		event(publishConfig, 2),
		"",
		strings.Replace(good, `"failedDeviceCount":1`, `"failedDeviceCount":"1"`, 1),
		event(publishConfig, 3) + "\r", // a CRLF line is the same event
		`{"hardwareConfigurationId": `,
		"   ",
		strings.Replace(good, publishConfig, "../../x", 1),
		`{"x":"` + strings.Repeat("y", 70<<10) + `"}`,
		event(publishConfig, 1), // the same bytes as line 1: the same event
		event(publishConfig, 4),
	}
	bad = map[int]string{
		4: "userState.failedDeviceCount",
		6: "body",
		8: "hardwareConfigurationId",
		9: "longer than an event",
	}
	return lines, bad
}

func TestPublishValidateReportsBadLinesByNumber(t *testing.T) {
	lines, bad := badLines()
	path := writeLines(t, lines)
	e := &toolEnv{t: t}
	// No server at all: --validate must not need one.
	out, _, err := e.run(runPublish, "--validate", "--nats-url", "nats://127.0.0.1:1", "--file", path)
	if err == nil || !strings.Contains(err.Error(), "4 of 9 lines") {
		t.Errorf("error %v, want one counting 4 of 9 lines invalid", err)
	}
	reported := regexp.MustCompile(`(?m)^line (\d+): (.*)$`).FindAllStringSubmatch(out, -1)
	if len(reported) != len(bad) {
		t.Errorf("%d lines reported, want %d", len(reported), len(bad))
	}
	for _, r := range reported {
		var n int
		fmt.Sscan(r[1], &n)
		if want, ok := bad[n]; !ok || !strings.Contains(r[2], want) {
			t.Errorf("line %d reported as %q; want it to name %q", n, r[2], want)
		}
	}
	for name, want := range map[string]int{"lines": 11, "valid": 5, "invalid": 4, "blank": 2} {
		if got := summaryCount(t, out, name); got != want {
			t.Errorf("summary %s = %d, want %d", name, got, want)
		}
	}
}

func TestPublishRerunPublishesNothingNew(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	e.createInputStream(time.Hour)
	lines, _ := badLines()
	path := writeLines(t, lines)

	out, _, err := e.run(runPublish, "--nats-url", e.natsURL, "--file", path)
	if err == nil || !strings.Contains(err.Error(), "4 lines are not valid") {
		t.Errorf("error %v, want one saying 4 lines were not published", err)
	}
	if got := summaryCount(t, out, "published"); got != 4 {
		t.Errorf("first run published %d, want 4 (line 10 repeats line 1)", got)
	}
	if got := summaryCount(t, out, "duplicates"); got != 1 {
		t.Errorf("first run: %d duplicates, want 1", got)
	}
	e.waitMsgs(worker.DefaultStream, 4)

	// Each message's id is the SHA-256 of its line, and its body the line without its ending.
	want := map[string]bool{}
	for _, n := range []int{1, 2, 5, 11} {
		line := strings.TrimSuffix(lines[n-1], "\r")
		sum := sha256.Sum256([]byte(line))
		want[hex.EncodeToString(sum[:])] = true
	}
	e.each(worker.DefaultStream, func(m jetstream.Msg) {
		id := m.Headers().Get(jetstream.MsgIDHeader)
		sum := sha256.Sum256(m.Data())
		if !want[id] || id != hex.EncodeToString(sum[:]) {
			t.Errorf("message with id %q and body %.40s... is not one of the valid lines", id, m.Data())
		}
	})

	out, _, _ = e.run(runPublish, "--nats-url", e.natsURL, "--file", path)
	if got := summaryCount(t, out, "published"); got != 0 {
		t.Errorf("re-run published %d, want 0", got)
	}
	if got := summaryCount(t, out, "duplicates"); got != 5 {
		t.Errorf("re-run: %d duplicates, want 5", got)
	}
	if got := e.msgs(worker.DefaultStream); got != 4 {
		t.Errorf("the stream holds %d messages after the re-run, want 4", got)
	}
}

// A window of pending acks far smaller than the file makes publish wait for acks as it goes.
func TestPublishManyLinesWithFewPendingAcks(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	e.createInputStream(time.Hour)
	const n = 3000
	lines := make([]string, n)
	for i := range lines {
		lines[i] = event(publishConfig, i)
	}
	path := writeLines(t, lines)
	out, _, err := e.run(runPublish, "--nats-url", e.natsURL, "--file", path, "--max-pending", "4")
	if err != nil {
		t.Fatal(err)
	}
	if got := summaryCount(t, out, "published"); got != n {
		t.Errorf("published %d, want %d", got, n)
	}
	if got := e.msgs(worker.DefaultStream); got != n {
		t.Errorf("stream holds %d, want %d", got, n)
	}
}

func TestPublishRefusals(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	path := writeLines(t, []string{event(publishConfig, 1)})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"--nats-url", e.natsURL}, "--file is required"},
		{"missing file", []string{"--nats-url", e.natsURL, "--file", path + ".missing"}, "no such file"},
		{"no stream", []string{"--nats-url", e.natsURL, "--file", path}, "no stream captures subject"},
		{"no pending", []string{"--nats-url", e.natsURL, "--file", path, "--max-pending", "0"}, "--max-pending"},
		{"tenant not a GUID", []string{"--nats-url", e.natsURL, "--file", path, "--tenant", "contoso"}, `--tenant "contoso": want a tenant (directory) id`},
		{"no stream of the tenant", []string{"--nats-url", e.natsURL, "--file", path, "--tenant", tenantA}, "no stream captures subject " + worker.DefaultSubject + "." + tenantA + ":"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := e.run(runPublish, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// event is a valid event, one line of a file to publish.
func event(config string, i int) string { return string(sandbox.Event(config, i)) }

const (
	tenantA = "4f1c2d3e-0000-4000-8000-000000000001"
	tenantB = "9a8b7c6d-0000-4000-8000-000000000002"
)

// tenantEvent is a valid event of multi-tenant mode whose body names its tenant.
func tenantEvent(tenant string, i int) string {
	return `{"tenantId":"` + tenant + `",` + strings.TrimPrefix(event(publishConfig, i), "{")
}

// In multi-tenant mode each event goes to its tenant's subject: --tenant's, or its body's
// tenantId's; a body naming another tenant than --tenant is a bad line.
func TestPublishTenants(t *testing.T) {
	subj := func(tenant string) string { return worker.DefaultSubject + "." + tenant }
	for _, tc := range []struct {
		name  string
		args  []string
		lines []string
		bad   map[int]string // line: what its report names
		want  map[string]int // messages by subject
		err   string
	}{
		{
			name:  "--tenant",
			args:  []string{"--tenant", tenantA},
			lines: []string{event(publishConfig, 1), tenantEvent(tenantA, 2), tenantEvent(tenantB, 3), event(publishConfig, 4)},
			bad:   map[int]string{3: "tenantId " + tenantB + " disagrees with --tenant " + tenantA},
			want:  map[string]int{subj(tenantA): 3},
			err:   "1 lines are not valid",
		},
		{
			name:  "--tenant in upper case",
			args:  []string{"--tenant", strings.ToUpper(tenantA)},
			lines: []string{event(publishConfig, 1), tenantEvent(tenantA, 2)},
			want:  map[string]int{subj(tenantA): 2},
		},
		{
			name:  "each body's tenantId",
			lines: []string{tenantEvent(tenantA, 1), tenantEvent(tenantB, 2), tenantEvent(strings.ToUpper(tenantB), 3)},
			want:  map[string]int{subj(tenantA): 1, subj(tenantB): 2},
		},
		{
			name:  "a tenant's invalid event",
			lines: []string{strings.Replace(tenantEvent(tenantA, 1), `"failedDeviceCount":1`, `"failedDeviceCount":"1"`, 1), tenantEvent(tenantA, 2)},
			bad:   map[int]string{1: "userState.failedDeviceCount"},
			want:  map[string]int{subj(tenantA): 1},
			err:   "1 lines are not valid",
		},
		{
			name:  "a line of no tenant",
			lines: []string{tenantEvent(tenantA, 1), event(publishConfig, 2)},
			bad:   map[int]string{2: "not published: no stream captures subject " + worker.DefaultSubject + ":"},
			want:  map[string]int{subj(tenantA): 1},
			err:   "1 lines not published",
		},
		{
			name:  "a tenantId not a GUID",
			lines: []string{tenantEvent("contoso", 1), tenantEvent(tenantA, 2)},
			bad:   map[int]string{1: "tenantId: must be a GUID"},
			want:  map[string]int{subj(tenantA): 1},
			err:   "1 lines are not valid",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newToolEnv(t, emulator.Config{})
			e.createTenantsStream()
			path := writeLines(t, tc.lines)
			out, _, err := e.run(runPublish, append([]string{"--nats-url", e.natsURL, "--file", path}, tc.args...)...)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want %q", err, tc.err)
			}
			reported := regexp.MustCompile(`(?m)^line (\d+): (.*)$`).FindAllStringSubmatch(out, -1)
			if len(reported) != len(tc.bad) {
				t.Errorf("%d lines reported, want %d", len(reported), len(tc.bad))
			}
			for _, r := range reported {
				var n int
				fmt.Sscan(r[1], &n)
				if want, ok := tc.bad[n]; !ok || !strings.Contains(r[2], want) {
					t.Errorf("line %d reported as %q; want it to name %q", n, r[2], want)
				}
			}
			if got := e.bySubject(worker.DefaultStream); !maps.Equal(got, tc.want) {
				t.Errorf("the stream holds %v, want %v", got, tc.want)
			}
		})
	}
}

// A tenant's events' ids hash the tenant too: one file published to two tenants is two sets
// of events, and a line whose body names its tenant is the same event with --tenant or without.
func TestPublishTenantsRerun(t *testing.T) {
	e := newToolEnv(t, emulator.Config{})
	e.createTenantsStream()
	path := writeLines(t, []string{event(publishConfig, 1), event(publishConfig, 2)})
	own := writeLines(t, []string{tenantEvent(tenantB, 3)})
	for _, tc := range []struct {
		args                  []string
		published, duplicates int
	}{
		{[]string{"--file", path, "--tenant", tenantA}, 2, 0},
		{[]string{"--file", path, "--tenant", tenantB}, 2, 0},
		{[]string{"--file", path, "--tenant", tenantA}, 0, 2},
		{[]string{"--file", own}, 1, 0},
		{[]string{"--file", own, "--tenant", tenantB}, 0, 1},
	} {
		out, _, err := e.run(runPublish, append([]string{"--nats-url", e.natsURL}, tc.args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if p, d := summaryCount(t, out, "published"), summaryCount(t, out, "duplicates"); p != tc.published || d != tc.duplicates {
			t.Errorf("%v: %d published, %d duplicates; want %d and %d", tc.args, p, d, tc.published, tc.duplicates)
		}
	}
	want := map[string]int{worker.DefaultSubject + "." + tenantA: 2, worker.DefaultSubject + "." + tenantB: 3}
	if got := e.bySubject(worker.DefaultStream); !maps.Equal(got, want) {
		t.Errorf("the stream holds %v, want %v", got, want)
	}
}

func TestPublishValidateTenants(t *testing.T) {
	path := writeLines(t, []string{event(publishConfig, 1), tenantEvent(tenantB, 2), tenantEvent(tenantA, 3)})
	e := &toolEnv{t: t}
	out, _, err := e.run(runPublish, "--validate", "--file", path, "--tenant", tenantA)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 lines") {
		t.Errorf("error %v, want one counting 1 of 3 lines invalid", err)
	}
	if !strings.Contains(out, "line 2: tenantId "+tenantB+" disagrees with --tenant "+tenantA) {
		t.Errorf("line 2 not reported as disagreeing:\n%s", out)
	}
}
