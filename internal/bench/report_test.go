package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The ceilings appear beside the pipeline's rate, which is given as a share of the lower of
// the emulator's and JetStream's with the ledger's writes; without ceilings, none appear.
func TestReportCeilings(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name     string
		ceilings *ceilings
		want     map[string]float64 // figures by key; 0 when absent
	}{
		{"none", nil, map[string]float64{"events_per_second": 2, "percent_of_lower_ceiling": 0}},
		{"emulator lower", &ceilings{events: 5, fetch: 7, emulator: ceiling{8, 1.5}, jetStream: ceiling{40, 2.5}, ledger: ceiling{20, 3.5}},
			map[string]float64{
				"events_per_second": 2, "ceiling_emulator_creates_per_second": 8, "ceiling_jetstream_events_per_second": 40,
				"ceiling_jetstream_ledger_events_per_second": 20, "percent_of_lower_ceiling": 25,
				"ceiling_emulator_cpu_ms_per_1000": 1.5, "ceiling_jetstream_cpu_ms_per_1000": 2.5, "ceiling_jetstream_ledger_cpu_ms_per_1000": 3.5,
			}},
		{"ledger lower", &ceilings{events: 5, fetch: 7, emulator: ceiling{8, 1}, jetStream: ceiling{5, 1}, ledger: ceiling{4, 1}},
			map[string]float64{"ceiling_jetstream_events_per_second": 5, "percent_of_lower_ceiling": 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &result{
				sc:    scenario{name: "unlimited", events: 5, concurrency: 64, graphBatch: 1},
				ready: t0, end: t0.Add(2 * time.Second),
				// 5 outcomes over 2 s from the first to the last: 2 events/s.
				outTimes: []time.Time{t0, t0.Add(500 * time.Millisecond), t0.Add(time.Second), t0.Add(1500 * time.Millisecond), t0.Add(2 * time.Second)},
				consumer: &jetstream.ConsumerInfo{},
				ceilings: tc.ceilings,
			}
			var out bytes.Buffer
			if err := r.report().WriteJSON(&out); err != nil {
				t.Fatal(err)
			}
			var got struct {
				Ceilings string             `json:"ceilings"`
				Figures  map[string]float64 `json:"figures"`
			}
			if err := json.Unmarshal(out.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			for key, want := range tc.want {
				if got.Figures[key] != want {
					t.Errorf("%s = %v, want %v", key, got.Figures[key], want)
				}
			}
			if measured := strings.Contains(got.Ceilings, "over 5 events") && strings.Contains(got.Ceilings, "fetching 7"); measured != (tc.ceilings != nil) {
				t.Errorf("ceilings described as %q", got.Ceilings)
			}
			var table bytes.Buffer
			r.report().WriteTable(&table)
			if shown := strings.Contains(table.String(), "% of the lower ceiling"); shown != (tc.ceilings != nil) {
				t.Errorf("table with ceilings %v:\n%s", tc.ceilings != nil, table.String())
			}
		})
	}
}

func TestMsPer1000(t *testing.T) {
	for _, tc := range []struct {
		cpu  time.Duration
		n    int
		want float64
	}{
		{time.Second, 1000, 1000},
		{150 * time.Millisecond, 1000, 150},
		{3 * time.Millisecond, 20_000, 0.15},
	} {
		if got := msPer1000(tc.cpu, tc.n); got != tc.want {
			t.Errorf("msPer1000(%v, %d) = %v, want %v", tc.cpu, tc.n, got, tc.want)
		}
	}
}

func TestPercent(t *testing.T) {
	for _, tc := range []struct{ part, whole, want float64 }{
		{1, 4, 25},
		{3, 2, 150},
		{0, 5, 0},
		{5, 0, 0},
	} {
		if got := percent(tc.part, tc.whole); got != tc.want {
			t.Errorf("percent(%v, %v) = %v, want %v", tc.part, tc.whole, got, tc.want)
		}
	}
}
