package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hwstate/hwstate/internal/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench", stdout, stderr, "usage: hwstate bench [flags]\n\nThe whole pipeline on this machine (embedded JetStream, the Graph emulator, the worker as a child process) under a load scenario, and a figure table.")
	cfg := bench.Config{Progress: stderr}
	fs.StringVar(&cfg.Scenario, "scenario", "unlimited", "load scenario: "+strings.Join(bench.Names(), ", "))
	fs.IntVar(&cfg.Events, "events", 0, "events to publish (0: the scenario's)")
	fs.IntVar(&cfg.GraphBatch, "graph-batch", 0, "worker's HWSTATE_GRAPH_BATCH (0: the scenario's)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 0, "worker's HWSTATE_CONCURRENCY (0: the scenario's)")
	fs.Float64Var(&cfg.Rate, "rate", 0, "worker's HWSTATE_RATE (0: the scenario's)")
	fs.IntVar(&cfg.FetchBatch, "fetch-batch", 0, "worker's HWSTATE_FETCH_BATCH (0: auto)")
	fs.IntVar(&cfg.Tenants, "tenants", 0, "tenants of the tenants scenario (0: the scenario's); --events are shared among them")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long a timed scenario (tenant, tenant-bucket, tenants, idle) runs (0: the scenario's)")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Minute, "give up when the events have not all reached an outcome by then")
	asJSON := fs.Bool("json", false, "print the figures as JSON")
	plot := fs.String("plot", "", "write a plot of the run over time (events/s, 429s, rate limit) to this SVG file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the hwstate executable: %w", err)
	}
	cfg.Executable = exe

	report, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *plot != "" {
		if err := os.WriteFile(*plot, report.Plot(), 0o644); err != nil {
			return fmt.Errorf("plot: %w", err)
		}
	}
	if *asJSON {
		return report.WriteJSON(stdout)
	}
	report.WriteTable(stdout)
	return nil
}
