package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/worker"
)

// benchScenario is one load the bench can put on the pipeline: what the emulated tenant
// does, how the worker is configured, and how events arrive.
type benchScenario struct {
	name, summary string
	events        int
	emulator      emulator.Config
	// Worker settings (HWSTATE_*).
	rate        float64
	burst       int
	concurrency int
	ackWait     time.Duration
	graphBatch  int
	fetchBatch  int // 0: auto
	// publishRate paces publishing while the worker runs (events/s); 0 publishes every event
	// before the worker starts, a backlog it drains.
	publishRate float64
	// publishCommand measures `hwstate publish` of events lines instead of the worker.
	publishCommand bool
	// duration, when set, runs the worker for that long instead of until every event has its
	// outcome; rates are then taken after warmup.
	duration, warmup time.Duration
	targets          []benchTarget
}

// unlimitedRate stands for "no limit": the worker needs some rate, and this one is never reached.
const unlimitedRate = 1e6

func benchScenarios() []benchScenario {
	return []benchScenario{
		{
			name: "unlimited", summary: "zero-latency emulator, no limit: what the worker costs per event",
			events: 100_000, rate: unlimitedRate, burst: 1000, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1,
			targets: []benchTarget{
				{figure: "events/s", atLeast: true, value: 8000, batchValue: 15000},
				{figure: "cpu ms/1000 events", value: 120},
				{figure: "peak RSS MiB", value: 64},
			},
		},
		{
			name: "latency", summary: "100 ms per Graph request, rate 400/s, concurrency 64, events published at 400/s",
			events: 12_000, emulator: emulator.Config{Latency: 100 * time.Millisecond},
			rate: 400, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1, publishRate: 400,
			targets: []benchTarget{{figure: "events/s", atLeast: true, value: 0.97 * 400}},
		},
		{
			name: "tenant", summary: "tenant allows 100 writes per sliding 20 s window (Retry-After); worker set to 10x that (50/s)",
			events: 3000, emulator: emulator.Config{Window: emulator.Window{Limit: 100, Per: 20 * time.Second}},
			rate: 50, burst: 1, concurrency: 32, ackWait: 60 * time.Second, graphBatch: 1,
			duration: 3*time.Minute + 30*time.Second, warmup: 20 * time.Second,
			targets: []benchTarget{
				{figure: "budget used %", atLeast: true, value: 95},
				{figure: "429 share %", value: 2},
			},
		},
		{
			name: "tenant-bucket", summary: "tenant token bucket 100/s (burst 5, Retry-After); worker set to 1,000/s",
			events: 20_000, emulator: emulator.Config{Rate: 100, Burst: 5},
			rate: 1000, burst: 1, concurrency: 64, ackWait: 60 * time.Second, graphBatch: 1,
			duration: time.Minute, warmup: 20 * time.Second,
			targets: []benchTarget{
				{figure: "budget used %", atLeast: true, value: 95},
				{figure: "429 share %", value: 2},
			},
		},
		{
			name: "backlog", summary: "2,000 pending events drained at 20 creates/s with a 10 s ack wait",
			events: 2000, rate: 20, burst: 1, concurrency: 32, ackWait: 10 * time.Second, graphBatch: 1,
			targets: []benchTarget{
				{figure: "redeliveries", value: 0},
				{figure: "duplicate creates", value: 0},
			},
		},
		{
			name: "publish", summary: "`hwstate publish` of an NDJSON file into the local JetStream",
			events: 1_000_000, publishCommand: true,
			targets: []benchTarget{
				{figure: "events/s", atLeast: true, value: 40000},
				{figure: "RSS growth MiB (after 10%)", value: 8},
			},
		},
		{
			name: "idle", summary: "the worker with nothing to do",
			rate: worker.DefaultRate, burst: 1, concurrency: worker.DefaultConcurrency, ackWait: worker.DefaultAckWait, graphBatch: 1,
			duration: 25 * time.Second, warmup: 5 * time.Second,
			targets: []benchTarget{
				{figure: "cpu % of a core", value: 1},
				{figure: "peak RSS MiB", value: 40},
			},
		},
	}
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var names []string
	for _, s := range benchScenarios() {
		names = append(names, s.name)
	}
	name := fs.String("scenario", "unlimited", "load scenario: "+strings.Join(names, ", "))
	events := fs.Int("events", 0, "events to publish (0: the scenario's)")
	batch := fs.Int("graph-batch", 0, "worker's HWSTATE_GRAPH_BATCH (0: the scenario's)")
	concurrency := fs.Int("concurrency", 0, "worker's HWSTATE_CONCURRENCY (0: the scenario's)")
	rate := fs.Float64("rate", 0, "worker's HWSTATE_RATE (0: the scenario's)")
	fetch := fs.Int("fetch-batch", 0, "worker's HWSTATE_FETCH_BATCH (0: auto)")
	duration := fs.Duration("duration", 0, "how long a timed scenario (tenant, tenant-bucket, idle) runs (0: the scenario's)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up when the events have not all reached an outcome by then")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	plot := fs.String("plot", "", "write a plot of the run over time (events/s, 429s, rate limit) to this SVG file")
	fs.Usage = flagUsage(fs, stdout, "usage: hwstate bench [flags]\n\nThe whole pipeline on this machine (embedded JetStream, the Graph emulator, the worker as a child process) under a load scenario, and a figure table.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	i := slices.IndexFunc(benchScenarios(), func(s benchScenario) bool { return s.name == *name })
	if i < 0 {
		return fmt.Errorf("unknown scenario %q: want one of %s", *name, strings.Join(names, ", "))
	}
	sc := benchScenarios()[i]
	override := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	override(&sc.events, *events)
	override(&sc.graphBatch, *batch)
	override(&sc.concurrency, *concurrency)
	override(&sc.fetchBatch, *fetch)
	if *rate > 0 {
		sc.rate = *rate
	}
	if *duration > 0 && sc.duration > 0 {
		sc.duration = *duration
	}
	if sc.duration == 0 && sc.events == 0 {
		return errors.New("--events must be above 0")
	}

	var fig benchFigures
	var samples []benchSample
	if sc.publishCommand {
		var err error
		if fig, samples, err = benchPublishCommand(ctx, sc, *timeout, stderr); err != nil {
			return err
		}
	} else {
		run, err := benchRun(ctx, sc, *timeout, stderr)
		if err != nil {
			return err
		}
		fig, samples = run.figures(), run.samples
	}
	if *plot != "" {
		if err := os.WriteFile(*plot, plotSVG(sc, samples), 0o644); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if *asJSON {
		return writeFiguresJSON(stdout, fig)
	}
	writeFigures(stdout, fig)
	return nil
}

// benchEnv is what a bench run stands on: JetStream in a temporary directory and the Graph
// emulator, both in this process and on loopback.
type benchEnv struct {
	natsURL  string
	graphURL string
	nc       *nats.Conn
	js       jetstream.JetStream
	emu      *emulator.Emulator
	close    func()
}

const benchToken = "bench-token"

func startBenchEnv(sc benchScenario) (env *benchEnv, err error) {
	var closers []func()
	env = &benchEnv{close: func() {
		for _, c := range slices.Backward(closers) {
			c()
		}
	}}
	defer func() {
		if err != nil {
			env.close()
		}
	}()
	dir, err := os.MkdirTemp("", "hwstate-bench-")
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = os.RemoveAll(dir) })
	ns, err := startEmbedded(dir, "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { ns.Shutdown(); ns.WaitForShutdown() })
	env.natsURL = ns.ClientURL()
	if env.nc, err = nats.Connect(env.natsURL); err != nil {
		return nil, err
	}
	closers = append(closers, env.nc.Close)
	if env.js, err = jetstream.New(env.nc); err != nil {
		return nil, err
	}

	cfg := sc.emulator
	cfg.Token = benchToken
	env.emu = emulator.New(cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: env.emu, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	closers = append(closers, func() { _ = srv.Close() })
	env.graphURL = "http://" + ln.Addr().String() + "/beta"
	return env, nil
}
