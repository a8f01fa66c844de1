package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// sample is the pipeline's state at one moment of a run, taken every second.
type sample struct {
	at        time.Duration // since the worker was ready
	outcomes  uint64        // results and dead letters published
	requests  uint64        // Graph requests that reached the tenant
	throttled uint64        // of them answered 429
	limit     float64       // the worker's current rate limit (hwstate_rate_limit)
	cpu       time.Duration // the worker's CPU time so far
	rssKiB    int64
}

// result is everything a run measured.
type result struct {
	sc      scenario
	ready   time.Time // when the worker was bound to its consumer
	end     time.Time // when every event had its outcome, or the duration was over
	samples []sample
	atEnd   procUsage // the worker's usage at end, before it was stopped
	// The bench's own CPU (JetStream and the emulator) from ready to end: what else the
	// machine was busy with.
	serverCPU time.Duration
	latencies []time.Duration // publish to outcome, per event with an outcome
	outTimes  []time.Time     // the outcome's stream timestamp, per event with an outcome
	consumer  *jetstream.ConsumerInfo
	requests  uint64
	batches   uint64
	throttled uint64
	creates   uint64
	dupes     uint64
	ceilings  *ceilings // nil unless the scenario measures them
	// restarted is when the workers were ready again after the restart (since ready); 0
	// when the scenario has none.
	restarted time.Duration
	// oneStopped is when one of the replicas was stopped (since ready); 0 when none was.
	oneStopped time.Duration
}

// runWorker measures `hwstate run` under the scenario.
func runWorker(ctx context.Context, sc scenario, cfg Config, sb *sandbox.Sandbox) (*result, error) {
	ids := make([]string, sc.events)
	for i := range ids {
		ids[i] = fmt.Sprintf("bench-%d", i)
	}
	publish := func(ctx context.Context, perSecond float64) error {
		return sandbox.PublishAll(ctx, sb.JS, ids, func(i int) []byte { return sandbox.Event(sandbox.ConfigOK, i) }, perSecond)
	}
	if sc.publishRate == 0 {
		fmt.Fprintf(cfg.Progress, "bench: publishing %d events...\n", sc.events)
		if err := publish(ctx, 0); err != nil {
			return nil, err
		}
	}

	replicas := max(sc.replicas, 1)
	ws, err := startWorkers(sc, sb, cfg, replicas)
	if err != nil {
		return nil, err
	}
	defer ws.kill()
	if err := ws.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	res := &result{sc: sc, ready: time.Now()}
	self, err := usageOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(cfg.Progress, "bench: scenario %s: %s\n", sc.name, sc.summary)

	pubCtx, stopPublishing := context.WithCancel(ctx)
	defer stopPublishing()
	published := make(chan error, 1)
	if sc.publishRate > 0 {
		go func() { published <- publish(pubCtx, sc.publishRate) }()
	}

	deadline := res.ready.Add(cfg.Timeout)
	if sc.duration > 0 {
		deadline = res.ready.Add(sc.duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s, err := res.sample(sb, ws)
		if err != nil {
			return nil, err
		}
		res.samples = append(res.samples, s)
		if sc.restartAt > 0 && res.restarted == 0 && s.at >= sc.restartAt {
			fmt.Fprintf(cfg.Progress, "bench: stopping the worker and starting it again\n")
			if err := ws.stop(time.Minute); err != nil {
				return nil, err
			}
			if err := ws.start(sc, sb, cfg, replicas); err != nil {
				return nil, err
			}
			if err := ws.waitReady(ctx, 30*time.Second); err != nil {
				return nil, err
			}
			res.restarted = time.Since(res.ready)
			continue // a sample at once: where the second start begins
		}
		if sc.stopOneAt > 0 && res.oneStopped == 0 && s.at >= sc.stopOneAt {
			fmt.Fprintf(cfg.Progress, "bench: stopping one of the workers\n")
			if err := ws.stopOne(time.Minute); err != nil {
				return nil, err
			}
			res.oneStopped = time.Since(res.ready)
		}
		done := sc.duration == 0 && s.outcomes >= uint64(sc.events)
		if done || time.Now().After(deadline) {
			if !done && sc.duration == 0 {
				return nil, fmt.Errorf("only %d of %d events reached an outcome within %s", s.outcomes, sc.events, cfg.Timeout)
			}
			break
		}
		select {
		case <-tick.C:
		case err := <-published:
			if err != nil {
				return nil, err
			}
		case <-ws.exited:
			return nil, fmt.Errorf("the worker exited during the run: %v", ws.exitErr())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res.end = time.Now()
	stopPublishing()
	if res.atEnd, err = ws.usage(); err != nil {
		return nil, err
	}
	selfEnd, err := usageOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	res.serverCPU = selfEnd.cpu - self.cpu
	cons, err := sb.JS.Consumer(ctx, worker.DefaultStream, worker.DefaultConsumer)
	if err != nil {
		return nil, err
	}
	if res.consumer, err = cons.Info(ctx); err != nil {
		return nil, err
	}
	st := sb.Emulator.Stats()
	res.requests, res.batches, res.throttled, res.creates, res.dupes = st.Requests, st.Batches, st.Throttled, st.Creates, st.Duplicates
	if err := ws.stop(time.Minute); err != nil {
		return nil, err
	}
	if err := res.readLatencies(ctx, sb.JS); err != nil {
		return nil, err
	}
	return res, nil
}

// sample takes the pipeline's figures now.
func (r *result) sample(sb *sandbox.Sandbox, ws *workers) (sample, error) {
	st := sb.Emulator.Stats()
	s := sample{at: time.Since(r.ready), requests: st.Requests, throttled: st.Throttled}
	n, err := sandbox.Count(context.Background(), sb.JS, sandbox.Outputs...)
	if err != nil {
		return s, err
	}
	s.outcomes = n
	if limit, err := ws.rateLimit(); err == nil {
		s.limit = limit
	}
	u, err := ws.usage()
	if err != nil {
		return s, err
	}
	s.cpu, s.rssKiB = u.cpu, u.rss
	return s, nil
}

// readLatencies pairs each event's stream timestamp with its outcome's, by event id.
func (r *result) readLatencies(ctx context.Context, js jetstream.JetStream) error {
	published := map[string]time.Time{}
	err := sandbox.Each(ctx, js, worker.DefaultStream, func(m jetstream.Msg) error {
		meta, err := m.Metadata()
		if err != nil {
			return err
		}
		published[m.Headers().Get(jetstream.MsgIDHeader)] = meta.Timestamp
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range sandbox.Outputs {
		err := sandbox.Each(ctx, js, name, func(m jetstream.Msg) error {
			meta, err := m.Metadata()
			if err != nil {
				return err
			}
			if at, ok := published[m.Headers().Get(jetstream.MsgIDHeader)]; ok {
				r.latencies = append(r.latencies, meta.Timestamp.Sub(at))
				r.outTimes = append(r.outTimes, meta.Timestamp)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	slices.Sort(r.latencies)
	slices.SortFunc(r.outTimes, time.Time.Compare)
	return nil
}
