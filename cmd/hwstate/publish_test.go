package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
