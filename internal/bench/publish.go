package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// runPublish measures `hwstate publish` as a child process: sc.events lines of an
// NDJSON file into the bench's JetStream, its rate, CPU and whether its memory stays flat.
func runPublish(ctx context.Context, sc scenario, cfg Config, sb *sandbox.Sandbox) (*Report, error) {
	f := &Report{sc: sc}
	file, err := writeEventsFile(sc.events)
	if err != nil {
		return nil, err
	}
	defer os.Remove(file)

	fmt.Fprintf(cfg.Progress, "bench: scenario %s: %s\n", sc.name, sc.summary)
	start := time.Now()
	child, err := startChild(cfg.Executable, []string{"publish", "--file", file}, map[string]string{"NATS_URL": sb.NATSURL}, cfg.Progress, io.Discard)
	if err != nil {
		return nil, err
	}
	var samples []sample
	var peakKiB int64 // VmHWM at the last reading before the child exited
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(cfg.Timeout)
sampling:
	for {
		s := sample{at: time.Since(start)}
		if u, err := child.usage(); err == nil {
			s.cpu, s.rssKiB = u.cpu, u.rss
			peakKiB = max(peakKiB, u.hwmKiB)
		}
		if n, err := sandbox.Count(ctx, sb.JS, worker.DefaultStream); err == nil {
			s.outcomes = n
		}
		samples = append(samples, s)
		select {
		case <-tick.C:
		case <-child.exited:
			break sampling
		case <-deadline:
			_ = child.cmd.Process.Kill()
			<-child.exited
			return nil, fmt.Errorf("publish did not finish within %s", cfg.Timeout)
		case <-ctx.Done():
			_ = child.cmd.Process.Kill()
			<-child.exited
			return nil, ctx.Err()
		}
	}
	elapsed := time.Since(start)
	if !child.cmd.ProcessState.Success() {
		return nil, fmt.Errorf("hwstate publish: %v", child.waitErr)
	}
	published, err := sandbox.Count(ctx, sb.JS, worker.DefaultStream)
	if err != nil {
		return nil, err
	}
	ru, _ := child.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	events := float64(published)
	f.seconds = elapsed.Seconds()
	f.add("events", "events in the stream", events, 0)
	f.add("events_per_second", "events/s", events/elapsed.Seconds(), 0)
	f.add("cpu_ms_per_1000_events", "cpu ms/1000 events", msPer1000(cpu, max(int(published), 1)), 1)
	f.add("cpu_percent", "cpu % of a core", 100*cpu.Seconds()/elapsed.Seconds(), 1)
	f.add("peak_rss_mib", "peak RSS MiB", float64(peakKiB)/1024, 1)
	f.add("rss_growth_mib", "RSS growth MiB (after 10%)", rssGrowth(samples, uint64(sc.events/10)), 1)
	f.samples = samples
	return f, nil
}

// rssGrowth is how much the resident set grew from the first sample with at least from events
// published to the last one that still had a reading: flat memory is near 0.
func rssGrowth(samples []sample, from uint64) float64 {
	var first, last int64 = -1, 0
	for _, s := range samples {
		if s.rssKiB == 0 {
			continue
		}
		if first < 0 && s.outcomes >= from {
			first = s.rssKiB
		}
		last = s.rssKiB
	}
	if first < 0 {
		return 0
	}
	return float64(last-first) / 1024
}

// writeEventsFile writes n distinct valid events, one a line, to a temporary file.
func writeEventsFile(n int) (string, error) {
	return writeTemp("hwstate-bench-*.ndjson", func(w *bufio.Writer) {
		for i := range n {
			_, _ = w.Write(sandbox.Event(sandbox.ConfigOK, i))
			_ = w.WriteByte('\n')
		}
	})
}

// writeTemp writes what fill writes to a new temporary file named after pattern
// (os.CreateTemp's), and returns its name.
func writeTemp(pattern string, fill func(*bufio.Writer)) (string, error) {
	f, err := os.CreateTemp("", pattern)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	fill(w)
	err = w.Flush()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	return f.Name(), nil
}
