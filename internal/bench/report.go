package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"
)

// target is a figure a scenario must reach (issues #6, #11): at least or at most value, or
// unbatched when the worker never sends $batch (--graph-batch 1).
type target struct {
	figure    string
	atLeast   bool
	value     float64
	unbatched float64
}

func (t target) want(sc scenario) float64 {
	if t.unbatched > 0 && sc.graphBatch == 1 {
		return t.unbatched
	}
	return t.value
}

// coldStart is the start-up span whose 429s the cold-start figure counts (issue #11).
const coldStart = 20 * time.Second

// graphBatch is HWSTATE_GRAPH_BATCH for a scenario: a count, or auto (0).
func (sc scenario) graphBatchSetting() string {
	if sc.graphBatch == 0 {
		return "auto"
	}
	return strconv.Itoa(sc.graphBatch)
}

// figure is one line of the table: a label for people, a key for machines.
type figure struct {
	key, label string
	value      float64
	decimals   int
}

// Report is what a run comes to: its figures in table order, and its samples over time.
type Report struct {
	sc       scenario
	seconds  float64
	list     []figure
	samples  []sample
	ceilings *ceilings // nil unless measured
}

func (r *result) report() *Report {
	sc := r.sc
	f := &Report{sc: sc, samples: r.samples}
	add := f.add
	events := len(r.outTimes)
	timed := sc.duration > 0
	from := r.ready
	if timed {
		from = r.ready.Add(sc.warmup)
	}
	f.seconds = r.end.Sub(from).Seconds()
	add("events", "events with an outcome", float64(events), 0)

	// Drained scenarios: from the first outcome to the last, so the worker's start does not
	// count; timed ones: the outcomes after the warmup over the time after it.
	var perSecond float64
	switch {
	case timed:
		perSecond = r.ratePer(from, r.end.Sub(from))
	case events > 1:
		f.seconds = r.outTimes[events-1].Sub(r.outTimes[0]).Seconds()
		perSecond = float64(events-1) / f.seconds
	}
	add("events_per_second", "events/s", perSecond, 0)
	if c := r.ceilings; c != nil {
		f.ceilings = c
		add("ceiling_emulator_creates_per_second", "ceiling: emulator alone, creates/s", c.emulator.perSecond, 0)
		add("ceiling_emulator_cpu_ms_per_1000", "emulator alone: cpu ms/1000 creates, client included", c.emulator.cpuMs, 1)
		add("ceiling_jetstream_events_per_second", "ceiling: JetStream alone (fetch, publish, ack), events/s", c.jetStream.perSecond, 0)
		add("ceiling_jetstream_cpu_ms_per_1000", "JetStream alone: cpu ms/1000 events, client included", c.jetStream.cpuMs, 1)
		add("ceiling_jetstream_ledger_events_per_second", "ceiling: JetStream alone with the ledger's writes, events/s", c.ledger.perSecond, 0)
		add("ceiling_jetstream_ledger_cpu_ms_per_1000", "JetStream with the ledger's writes: cpu ms/1000 events", c.ledger.cpuMs, 1)
		add("percent_of_lower_ceiling", "events/s as % of the lower ceiling", percent(perSecond, c.lower()), 1)
	}
	if budget := sc.tenantBudget(); budget > 0 {
		add("budget_used_percent", "budget used %", 100*perSecond/budget, 1)
		if r.oneStopped > 0 {
			// How soon the replicas left take the stopped one's part.
			add("budget_used_percent_after_stop", "budget used %, 20 s after a replica stopped",
				100*r.ratePer(r.ready.Add(r.oneStopped), coldStart)/budget, 1)
		}
	}
	add("latency_p50_ms", "latency p50 ms (publish to outcome)", quantileMs(r.latencies, 0.50), 1)
	add("latency_p99_ms", "latency p99 ms", quantileMs(r.latencies, 0.99), 1)

	requests, throttled := r.requests, r.throttled
	if timed {
		// The share after the warmup, as the target asks.
		if s, ok := r.sampleAt(sc.warmup); ok {
			requests, throttled = requests-s.requests, throttled-s.throttled
		}
	}
	add("graph_requests", "Graph creates sent (429s included)", float64(r.requests), 0)
	if sc.graphBatch != 1 {
		add("graph_batches", "Graph $batch requests", float64(r.batches), 0)
		// How full the batches were: --graph-batch when every one is, lower when the tail
		// of each pull, or creates trickling in, send them part-full.
		perBatch := 0.0
		if r.batches > 0 {
			perBatch = float64(r.requests) / float64(r.batches)
		}
		add("creates_per_batch", "creates per $batch", perBatch, 1)
	}
	add("graph_429", "Graph 429s", float64(r.throttled), 0)
	if timed {
		// Cold start: how hard the worker was throttled finding the tenant's limit.
		if s, ok := r.sampleAt(coldStart); ok {
			add("cold_start_429_per_1000", "429s per 1,000 creates, first 20 s", 10*percent(float64(s.throttled), float64(s.requests)), 1)
		}
	}
	if r.restarted > 0 {
		// The second start: how much of what the first learned the restarted worker kept.
		s0, ok0 := r.sampleAt(r.restarted)
		s1, ok1 := r.sampleAt(r.restarted + coldStart)
		if ok0 && ok1 {
			add("restart_429_per_1000", "429s per 1,000 creates, 20 s after the restart",
				10*percent(float64(s1.throttled-s0.throttled), float64(s1.requests-s0.requests)), 1)
		}
	}
	add("graph_429_percent", "429 share %", percent(float64(throttled), float64(requests)), 2)

	if events > 0 {
		add("cpu_ms_per_1000_events", "cpu ms/1000 events", msPer1000(r.atEnd.cpu, events), 1)
	}
	cpuFrom := time.Duration(0)
	if s, ok := r.sampleAt(from.Sub(r.ready)); ok {
		cpuFrom = s.cpu
	}
	add("cpu_percent", "cpu % of a core", 100*(r.atEnd.cpu-cpuFrom).Seconds()/r.end.Sub(from).Seconds(), 2)
	add("server_cpu_percent", "JetStream+emulator cpu % of a core", 100*r.serverCPU.Seconds()/r.end.Sub(r.ready).Seconds(), 1)
	if events > 0 {
		add("server_cpu_ms_per_1000_events", "JetStream+emulator cpu ms/1000 events", msPer1000(r.serverCPU, events), 1)
	}
	add("peak_rss_mib", "peak RSS MiB", float64(r.atEnd.hwmKiB)/1024, 1)
	add("redeliveries", "redeliveries", float64(r.consumer.Delivered.Consumer-r.consumer.Delivered.Stream), 0)
	add("duplicate_creates", "duplicate creates", float64(r.dupes), 0)
	return f
}

func (f *Report) add(key, label string, v float64, decimals int) {
	f.list = append(f.list, figure{key, label, v, decimals})
}

// tenantBudget is the creates per second the emulated tenant allows, or all the tenants
// together; 0 for no limit.
func (sc scenario) tenantBudget() float64 {
	perTenant := sc.emulator.Rate
	if w := sc.emulator.Window; w.Limit > 0 {
		perTenant = float64(w.Limit) / w.Per.Seconds()
	}
	return perTenant * float64(max(sc.tenants, 1))
}

// ratePer is the outcomes per second over the span d from from.
func (r *result) ratePer(from time.Time, d time.Duration) float64 {
	n := 0
	for _, t := range r.outTimes {
		if !t.Before(from) && t.Before(from.Add(d)) {
			n++
		}
	}
	return float64(n) / d.Seconds()
}

// sampleAt is the first sample taken at or after d into the run.
func (r *result) sampleAt(d time.Duration) (sample, bool) {
	for _, s := range r.samples {
		if s.at >= d {
			return s, true
		}
	}
	return sample{}, false
}

// msPer1000 is cpu in milliseconds per 1,000 of n.
func msPer1000(cpu time.Duration, n int) float64 {
	return cpu.Seconds() * 1e6 / float64(n)
}

// percent is part as a percentage of whole; 0 when whole is.
func percent(part, whole float64) float64 {
	if whole == 0 {
		return 0
	}
	return 100 * part / whole
}

func quantileMs(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(q*float64(len(sorted))))
	return float64(sorted[i]) / float64(time.Millisecond)
}

func (f Report) value(label string) (float64, bool) {
	for _, fig := range f.list {
		if fig.label == label {
			return fig.value, true
		}
	}
	return 0, false
}

// verdict says whether a figure meets its target, and the target as text.
func (f Report) verdict(t target) (want string, met bool) {
	v, _ := f.value(t.figure)
	w := t.want(f.sc)
	if t.atLeast {
		return ">= " + strconv.FormatFloat(w, 'f', -1, 64), v >= w
	}
	return "<= " + strconv.FormatFloat(w, 'f', -1, 64), v <= w
}

func (f Report) settings() string {
	sc := f.sc
	if sc.publishCommand {
		return "hwstate publish --file <events, one a line> (default --max-pending)"
	}
	s := fmt.Sprintf("rate %g/s burst %d, concurrency %d, ack wait %s, graph batch %s", sc.rate, sc.burst, sc.concurrency, sc.ackWait, sc.graphBatchSetting())
	if sc.rate == unlimitedRate {
		s = fmt.Sprintf("rate unlimited, concurrency %d, ack wait %s, graph batch %s", sc.concurrency, sc.ackWait, sc.graphBatchSetting())
	}
	if sc.replicas > 1 {
		s = fmt.Sprintf("%d workers, each: %s", sc.replicas, s)
	}
	if sc.restartAt > 0 {
		s += fmt.Sprintf("; restarted after %s", sc.restartAt)
	}
	return s
}

// WriteTable writes the figures as a table, each with its target and whether it was met.
func (f *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "scenario %s: %s\nmeasured: %s; %d events; over %.1f s\n",
		f.sc.name, f.sc.summary, f.settings(), f.sc.events, f.seconds)
	if f.ceilings != nil {
		fmt.Fprintf(w, "ceilings: %s\n", f.ceilings)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\t\t")
	for _, fig := range f.list {
		target, verdict := "", ""
		for _, t := range f.sc.targets {
			if t.figure == fig.label {
				want, met := f.verdict(t)
				target, verdict = want, "met"
				if !met {
					verdict = "MISSED"
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", fig.label, strconv.FormatFloat(fig.value, 'f', fig.decimals, 64), target, verdict)
	}
	_ = tw.Flush()
}

// WriteJSON writes the figures and targets as JSON.
func (f *Report) WriteJSON(w io.Writer) error {
	type target struct {
		Figure string  `json:"figure"`
		Want   string  `json:"want"`
		Value  float64 `json:"value"`
		Met    bool    `json:"met"`
	}
	out := struct {
		Scenario string             `json:"scenario"`
		Summary  string             `json:"summary"`
		Settings string             `json:"settings"`
		Events   int                `json:"eventsPublished"`
		Seconds  float64            `json:"seconds"`
		Ceilings string             `json:"ceilings,omitempty"`
		Figures  map[string]float64 `json:"figures"`
		Targets  []target           `json:"targets"`
	}{Scenario: f.sc.name, Summary: f.sc.summary, Settings: f.settings(), Events: f.sc.events, Seconds: f.seconds,
		Ceilings: f.ceilings.String(), Figures: map[string]float64{}, Targets: []target{}}
	for _, fig := range f.list {
		out.Figures[fig.key] = fig.value
	}
	for _, t := range f.sc.targets {
		want, met := f.verdict(t)
		v, _ := f.value(t.figure)
		out.Targets = append(out.Targets, target{t.figure, want, v, met})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
