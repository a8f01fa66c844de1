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

	var out bytes.Buffer
	r := run(500, 0)
	if err := r.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Scenario string             `json:"scenario"`
		Figures  map[string]float64 `json:"figures"`
		Targets  []struct {
			Figure string `json:"figure"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out.String())
	}
	f := got.Figures
	for key, want := range map[string]float64{"events": 500, "graph_requests": 500, "graph_429": 0, "redeliveries": 0, "duplicate_creates": 0} {
		if f[key] != want {
			t.Errorf("%s = %v, want %v", key, f[key], want)
		}
	}
	for _, key := range []string{"events_per_second", "latency_p50_ms", "latency_p99_ms", "cpu_ms_per_1000_events", "peak_rss_mib",
		"ceiling_emulator_creates_per_second", "ceiling_jetstream_events_per_second", "ceiling_jetstream_ledger_events_per_second", "percent_of_lower_ceiling",
		"ceiling_emulator_cpu_ms_per_1000", "ceiling_jetstream_cpu_ms_per_1000", "ceiling_jetstream_ledger_cpu_ms_per_1000", "server_cpu_ms_per_1000_events"} {
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
