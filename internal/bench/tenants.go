package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// The tenants scenario (issue 13): one worker in multi-tenant mode writing into many
// emulated tenants at once, each with its own limit. Every tenant gets a backlog before the
// worker starts, enough to keep it busy for the whole run: the figures are then the
// worker's, with a thousand lanes all working at their tenants' limits, rather than a
// publisher's pacing, which at 5/s for each of 1,000 tenants would itself take the CPU
// the worker needs on a small machine.

// tenantGUID is the directory id of the bench's k-th tenant.
func tenantGUID(k int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012x", k+1) }

// tenantsMoment is what the tenants' Graph and the worker had done at one moment.
type tenantsMoment struct {
	at       time.Time
	stats    map[string]emulator.Stats // by tenant id
	outcomes uint64
	cpu      time.Duration // the worker's
	rssKiB   int64         // the worker's
	self     time.Duration // the bench's own (JetStream and the emulator)
}

func takeMoment(ctx context.Context, sb *sandbox.Sandbox, child *child) (tenantsMoment, error) {
	m := tenantsMoment{at: time.Now(), stats: sb.Emulator.TenantStats()}
	var err error
	if m.outcomes, err = sandbox.Count(ctx, sb.JS, sandbox.Outputs...); err != nil {
		return m, err
	}
	u, err := child.usage()
	if err != nil {
		return m, err
	}
	self, err := usageOf(os.Getpid())
	m.cpu, m.rssKiB, m.self = u.cpu, u.rss, self.cpu
	return m, err
}

// sample sums the tenants' counters into one sample of the run.
func (m tenantsMoment) sample(since time.Time) sample {
	s := sample{at: m.at.Sub(since), outcomes: m.outcomes, cpu: m.cpu, rssKiB: m.rssKiB}
	for _, st := range m.stats {
		s.requests += st.Requests
		s.throttled += st.Throttled
	}
	return s
}

// runTenants measures `hwstate run` with a tenants file of sc.tenants tenants, each with a
// backlog of its share of sc.events.
func runTenants(ctx context.Context, sc scenario, cfg Config, sb *sandbox.Sandbox) (*Report, error) {
	perTenant := sc.events / sc.tenants
	if perTenant < 1 {
		return nil, fmt.Errorf("--events %d is fewer than one per tenant (%d tenants)", sc.events, sc.tenants)
	}
	if sc.warmup >= sc.duration {
		sc.warmup = sc.duration / 3 // a shorter run (--duration) than the warmup
	}
	// As the worker would make it; made here, the backlog can wait in it.
	_, err := sb.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject + ".>"},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("input stream: %w", err)
	}
	fmt.Fprintf(cfg.Progress, "bench: publishing %d events for each of %d tenants...\n", perTenant, sc.tenants)
	ids := make([]string, perTenant)
	for k := range sc.tenants {
		for i := range ids {
			ids[i] = fmt.Sprintf("t%d-%d", k, i)
		}
		err := sandbox.PublishAllTo(ctx, sb.JS, worker.DefaultSubject+"."+tenantGUID(k), ids, func(i int) []byte { return sandbox.Event(sandbox.ConfigOK, i) }, 0)
		if err != nil {
			return nil, err
		}
	}
	if sc.tenantsFile, err = writeTenantsFile(sb, sc.tenants); err != nil {
		return nil, err
	}
	defer os.Remove(sc.tenantsFile)

	started := time.Now()
	child, err := startReadyWorker(ctx, sc, sb, cfg, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	defer child.kill()
	ready := time.Now()
	in, err := sb.JS.Stream(ctx, worker.DefaultStream)
	if err != nil {
		return nil, err
	}
	info, err := in.Info(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "bench: worker ready after %s with %d consumers; scenario %s: %s\n",
		ready.Sub(started).Round(time.Millisecond), info.State.Consumers, sc.name, sc.summary)

	f := &Report{sc: sc}
	var from, end tenantsMoment
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		m, err := takeMoment(ctx, sb, child)
		if err != nil {
			return nil, err
		}
		f.samples = append(f.samples, m.sample(ready))
		if from.stats == nil && m.at.Sub(ready) >= sc.warmup {
			from = m
		}
		if m.at.Sub(ready) >= sc.duration {
			end = m
			break
		}
		select {
		case <-tick.C:
		case <-child.exited:
			return nil, fmt.Errorf("the worker exited during the run: %v", child.waitErr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	atEnd, err := child.usage()
	if err != nil {
		return nil, err
	}
	if err := child.stop(time.Minute); err != nil {
		return nil, err
	}

	window := end.at.Sub(from.at).Seconds()
	f.seconds = window
	var shares []float64
	perTenantBudget := sc.tenantBudget() / float64(sc.tenants) // a bucket's rate or a window's
	var creates, requests, throttled, dupes uint64
	dry := 0
	for k := range sc.tenants {
		id := tenantGUID(k)
		a, b := from.stats[id], end.stats[id]
		creates += b.Creates - a.Creates
		requests += b.Requests - a.Requests
		throttled += b.Throttled - a.Throttled
		dupes += b.Duplicates
		shares = append(shares, percent(float64(b.Creates-a.Creates), perTenantBudget*window))
		if b.Creates >= uint64(perTenant) {
			dry++
		}
	}
	slices.Sort(shares)
	outcomes := int(end.outcomes - from.outcomes)
	f.add("tenants", "tenants", float64(sc.tenants), 0)
	f.add("consumers", "consumers on the input stream when ready", float64(info.State.Consumers), 0)
	f.add("start_seconds", "worker start s (until every tenant's consumer is made)", ready.Sub(started).Seconds(), 1)
	f.add("creates_per_second", "creates/s, summed over tenants", float64(creates)/window, 0)
	f.add("budget_creates_per_second", "the tenants' budget, creates/s", sc.tenantBudget(), 0)
	f.add("budget_used_percent", "budget used %", percent(float64(creates)/window, sc.tenantBudget()), 1)
	f.add("budget_used_min_percent", "budget used %, min over tenants", shares[0], 1)
	f.add("budget_used_median_percent", "budget used %, median over tenants", shares[len(shares)/2], 1)
	f.add("graph_requests", "Graph creates sent (429s included)", float64(requests), 0)
	f.add("graph_429_percent", "429 share %", percent(float64(throttled), float64(requests)), 2)
	if outcomes > 0 {
		f.add("cpu_ms_per_1000_events", "cpu ms/1000 events", msPer1000(end.cpu-from.cpu, outcomes), 1)
	}
	f.add("cpu_percent", "cpu % of a core", 100*(end.cpu-from.cpu).Seconds()/window, 1)
	f.add("server_cpu_percent", "JetStream+emulator cpu % of a core", 100*(end.self-from.self).Seconds()/window, 1)
	f.add("peak_rss_mib", "peak RSS MiB", float64(atEnd.hwmKiB)/1024, 1)
	f.add("tenants_dry", "tenants whose backlog ran out", float64(dry), 0)
	f.add("duplicate_creates", "duplicate creates", float64(dupes), 0)
	return f, nil
}

// writeTenantsFile writes a tenants file listing the bench's n tenants, each with its
// emulated tenant's Graph URL, to a temporary file.
func writeTenantsFile(sb *sandbox.Sandbox, n int) (string, error) {
	return writeTemp("hwstate-bench-tenants-*.yaml", func(w *bufio.Writer) {
		fmt.Fprintln(w, "tenants:")
		for k := range n {
			id := tenantGUID(k)
			fmt.Fprintf(w, "  - {id: %s, name: t%d, graphBaseUrl: %q}\n", id, k, sb.TenantGraphURL(id))
		}
	})
}
