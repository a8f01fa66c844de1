package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hwstate/hwstate/internal/bench"
	"github.com/hwstate/hwstate/internal/proctest"
)

// TestRunUnlimited runs the bench end to end: its own JetStream and emulator (the
// sandbox), the worker as a child process of the binary built for the test, and what it
// reports: a table, JSON and a plot.
func TestRunUnlimited(t *testing.T) {
	proctest.SkipShort(t)
	dir := t.TempDir()
	bin := proctest.NewBinary(dir).Path(t)
	var progress proctest.Buffer
	run := func(events, graphBatch int) *bench.Report {
		t.Helper()
		r, err := bench.Run(context.Background(), bench.Config{
			Scenario: "unlimited", Events: events, GraphBatch: graphBatch, Executable: bin, Progress: &progress, Timeout: 5 * time.Minute,
		})
		if err != nil {
			t.Fatalf("bench: %v\n%s", err, progress.String())
		}
		return r
	}

	r := run(500, 0)
	var got struct {
		Scenario string             `json:"scenario"`
		Figures  map[string]float64 `json:"figures"`
		Targets  []struct {
			Figure string `json:"figure"`
		} `json:"targets"`
	}
	decodeReport(t, r, &got)
	f := got.Figures
	checkFigures(t, f, map[string]float64{"events": 500, "graph_requests": 500, "graph_429": 0, "redeliveries": 0, "duplicate_creates": 0},
		"events_per_second", "latency_p50_ms", "latency_p99_ms", "cpu_ms_per_1000_events", "peak_rss_mib",
		"ceiling_emulator_creates_per_second", "ceiling_jetstream_events_per_second", "ceiling_jetstream_ledger_events_per_second", "percent_of_lower_ceiling",
		"ceiling_emulator_cpu_ms_per_1000", "ceiling_jetstream_cpu_ms_per_1000", "ceiling_jetstream_ledger_cpu_ms_per_1000", "server_cpu_ms_per_1000_events")
	if f["latency_p99_ms"] < f["latency_p50_ms"] {
		t.Errorf("latency p99 %v below p50 %v", f["latency_p99_ms"], f["latency_p50_ms"])
	}
	if got.Scenario != "unlimited" || len(got.Targets) != 3 {
		t.Errorf("scenario %q with %d targets, want unlimited with 3", got.Scenario, len(got.Targets))
	}
	svg := r.Plot()
	if !bytes.HasPrefix(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("<polyline")) {
		t.Errorf("plot is not an SVG with lines:\n%.300s", svg)
	}

	// With $batch, the table says how many batches carried the creates, and how full.
	var table bytes.Buffer
	run(200, 20).WriteTable(&table)
	for _, want := range []string{"events/s", "latency p99 ms", "cpu ms/1000 events", "peak RSS MiB", "redeliveries", "duplicate creates", "Graph $batch requests", "creates per $batch", "429 share %"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestRunTenants runs the tenants scenario small: one worker, a tenants file of 20 tenants
// each with its own emulated tenant and backlog, and the figures issue 13 asks for.
func TestRunTenants(t *testing.T) {
	proctest.SkipShort(t)
	bin := proctest.NewBinary(t.TempDir()).Path(t)
	var progress proctest.Buffer
	r, err := bench.Run(context.Background(), bench.Config{
		Scenario: "tenants", Tenants: 20, Events: 20 * 100, Duration: 9 * time.Second, Executable: bin, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	var got struct {
		Figures map[string]float64 `json:"figures"`
	}
	decodeReport(t, r, &got)
	f := got.Figures
	checkFigures(t, f, map[string]float64{"tenants": 20, "consumers": 20, "budget_creates_per_second": 100, "tenants_dry": 0, "duplicate_creates": 0},
		"start_seconds", "creates_per_second", "budget_used_percent", "budget_used_min_percent", "budget_used_median_percent",
		"graph_requests", "cpu_ms_per_1000_events", "peak_rss_mib")
	if f["budget_used_min_percent"] > f["budget_used_median_percent"] {
		t.Errorf("budget used: min %v above median %v", f["budget_used_min_percent"], f["budget_used_median_percent"])
	}
}

// decodeReport decodes the report's JSON into v.
func decodeReport(t *testing.T, r *bench.Report, v any) {
	t.Helper()
	var out bytes.Buffer
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
}

// checkFigures checks that the figures have the values exact gives and a measured value
// above 0 for each key of measured.
func checkFigures(t *testing.T, f, exact map[string]float64, measured ...string) {
	t.Helper()
	for key, want := range exact {
		if f[key] != want {
			t.Errorf("%s = %v, want %v", key, f[key], want)
		}
	}
	for _, key := range measured {
		if f[key] <= 0 {
			t.Errorf("%s = %v, want a measured figure above 0", key, f[key])
		}
	}
}
