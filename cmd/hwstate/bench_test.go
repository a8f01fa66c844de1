package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchUnlimited runs the bench end to end: its own JetStream and emulator, the worker
// as a child process, a table, JSON and a plot.
func TestBenchUnlimited(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole pipeline with a child process")
	}
	bin := hwstate.Path(t) // built once for the package's process tests
	plot := filepath.Join(t.TempDir(), "run.svg")

	cmd := exec.Command(bin, "bench", "--scenario", "unlimited", "--events", "500", "--json", "--plot", plot)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	var got struct {
		Scenario string             `json:"scenario"`
		Figures  map[string]float64 `json:"figures"`
		Targets  []struct {
			Figure string `json:"figure"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("bench --json: %v\n%s", err, out)
	}
	f := got.Figures
	for key, want := range map[string]float64{"events": 500, "graph_requests": 500, "graph_429": 0, "redeliveries": 0, "duplicate_creates": 0} {
		if f[key] != want {
			t.Errorf("%s = %v, want %v", key, f[key], want)
		}
	}
	for _, key := range []string{"events_per_second", "latency_p50_ms", "latency_p99_ms", "cpu_ms_per_1000_events", "peak_rss_mib"} {
		if f[key] <= 0 {
			t.Errorf("%s = %v, want a measured figure above 0", key, f[key])
		}
	}
	if f["latency_p99_ms"] < f["latency_p50_ms"] {
		t.Errorf("latency p99 %v below p50 %v", f["latency_p99_ms"], f["latency_p50_ms"])
	}
	if got.Scenario != "unlimited" || len(got.Targets) != 3 {
		t.Errorf("scenario %q with %d targets, want unlimited with 3", got.Scenario, len(got.Targets))
	}
	svg, err := os.ReadFile(plot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("<polyline")) {
		t.Errorf("plot is not an SVG with lines:\n%.300s", svg)
	}

	table, err := exec.Command(bin, "bench", "--scenario", "unlimited", "--events", "200").CombinedOutput()
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, table)
	}
	for _, want := range []string{"events/s", "latency p99 ms", "cpu ms/1000 events", "peak RSS MiB", "redeliveries", "duplicate creates"} {
		if !strings.Contains(string(table), want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
}
