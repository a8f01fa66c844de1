// Package bench measures the pipeline on this machine under a load scenario: the sandbox
// (embedded JetStream and the Graph emulator) in this process, the worker (`hwstate run`)
// or the backfill (`hwstate publish`) as a child process, so that its CPU and memory are
// its own, and a report of figures against the scenario's targets, with a plot over time.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/hwstate/hwstate/internal/sandbox"
)

// Config is a bench run: a scenario and what the run changes in it.
type Config struct {
	Scenario string
	// Executable is the hwstate binary whose `run` and `publish` are measured.
	Executable string
	// Progress receives what the bench is doing and the child's log.
	Progress io.Writer

	// Overrides of the scenario's settings; 0 keeps the scenario's.
	Events, GraphBatch, Concurrency, FetchBatch, Tenants int
	Rate                                                 float64
	// Duration is how long a timed scenario runs.
	Duration time.Duration
	// Timeout is when a run gives up on events still without an outcome.
	Timeout time.Duration
}

// Names are the scenarios' names.
func Names() []string {
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.name)
	}
	return names
}

// Run runs the scenario and reports its figures.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	i := slices.IndexFunc(scenarios(), func(s scenario) bool { return s.name == cfg.Scenario })
	if i < 0 {
		return nil, fmt.Errorf("unknown scenario %q: want one of %s", cfg.Scenario, strings.Join(Names(), ", "))
	}
	sc := scenarios()[i]
	override := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	override(&sc.events, cfg.Events)
	override(&sc.graphBatch, cfg.GraphBatch)
	override(&sc.concurrency, cfg.Concurrency)
	override(&sc.fetchBatch, cfg.FetchBatch)
	if sc.tenants > 0 {
		override(&sc.tenants, cfg.Tenants)
	}
	if cfg.Rate > 0 {
		sc.rate = cfg.Rate
	}
	if cfg.Duration > 0 && sc.duration > 0 {
		sc.duration = cfg.Duration
	}
	if sc.duration == 0 && sc.events == 0 {
		return nil, errors.New("--events must be above 0")
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	sb, err := sandbox.New(sandbox.WithEmulator(sc.emulator))
	if err != nil {
		return nil, err
	}
	defer sb.Close()
	if sc.tenants > 0 {
		return runTenants(ctx, sc, cfg, sb)
	}
	// The worker would create the input stream; made here, events can wait for it.
	if _, err := sandbox.CreateInputStream(ctx, sb.JS, time.Hour); err != nil {
		return nil, err
	}
	if sc.publishCommand {
		return runPublish(ctx, sc, cfg, sb)
	}
	res, err := runWorker(ctx, sc, cfg, sb)
	if err != nil {
		return nil, err
	}
	if sc.ceilings {
		// At a rate that never binds, auto pulls as many as the consumer lets be pending.
		fetch := res.consumer.Config.MaxAckPending
		if sc.fetchBatch > 0 {
			fetch = min(fetch, sc.fetchBatch)
		}
		if res.ceilings, err = measureCeilings(ctx, sc, sb, fetch, cfg.Progress); err != nil {
			return nil, err
		}
	}
	return res.report(), nil
}
