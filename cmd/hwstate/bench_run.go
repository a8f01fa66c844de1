package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/worker"
)

// benchSample is the pipeline's state at one moment of a run, taken every second.
type benchSample struct {
	at        time.Duration // since the worker was ready
	outcomes  uint64        // results and dead letters published
	requests  uint64        // Graph requests that reached the tenant
	throttled uint64        // of them answered 429
	limit     float64       // the worker's current rate limit (hwstate_rate_limit)
	cpu       time.Duration // the worker's CPU time so far
	rssKiB    int64
}

// benchResult is everything a run measured.
type benchResult struct {
	sc      benchScenario
	ready   time.Time // when the worker was bound to its consumer
	end     time.Time // when every event had its outcome, or the duration was over
	samples []benchSample
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
}

// benchOutputs are the result and dead-letter streams the worker publishes into.
var benchOutputs = []string{worker.DefaultResultStream, worker.DefaultDLQStream}

func benchRun(ctx context.Context, sc benchScenario, timeout time.Duration, stderr io.Writer) (*benchResult, error) {
	env, err := startBenchEnv(sc)
	if err != nil {
		return nil, err
	}
	defer env.close()
	// The worker would create the input stream; made here, events can wait for it.
	if _, err := env.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject},
		Storage: jetstream.FileStorage, Duplicates: time.Hour,
	}); err != nil {
		return nil, fmt.Errorf("input stream: %w", err)
	}
	if sc.publishRate == 0 {
		fmt.Fprintf(stderr, "bench: publishing %d events...\n", sc.events)
		if err := benchPublish(ctx, env.js, sc.events, 0); err != nil {
			return nil, err
		}
	}

	child, err := startWorkerChild(sc, env, stderr)
	if err != nil {
		return nil, err
	}
	defer func() {
		if child.cmd.ProcessState == nil {
			_ = child.cmd.Process.Kill()
			<-child.exited
		}
	}()
	if err := child.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	res := &benchResult{sc: sc, ready: time.Now()}
	self, err := usageOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "bench: scenario %s: %s\n", sc.name, sc.summary)

	pubCtx, stopPublishing := context.WithCancel(ctx)
	defer stopPublishing()
	published := make(chan error, 1)
	if sc.publishRate > 0 {
		go func() { published <- benchPublish(pubCtx, env.js, sc.events, sc.publishRate) }()
	}

	deadline := res.ready.Add(timeout)
	if sc.duration > 0 {
		deadline = res.ready.Add(sc.duration)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s, err := res.sample(env, child)
		if err != nil {
			return nil, err
		}
		res.samples = append(res.samples, s)
		done := sc.duration == 0 && s.outcomes >= uint64(sc.events)
		if done || time.Now().After(deadline) {
			if !done && sc.duration == 0 {
				return nil, fmt.Errorf("only %d of %d events reached an outcome within %s", s.outcomes, sc.events, timeout)
			}
			break
		}
		select {
		case <-tick.C:
		case err := <-published:
			if err != nil {
				return nil, err
			}
		case <-child.exited:
			return nil, fmt.Errorf("the worker exited during the run: %v", child.waitErr)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res.end = time.Now()
	stopPublishing()
	if res.atEnd, err = child.usage(); err != nil {
		return nil, err
	}
	selfEnd, err := usageOf(os.Getpid())
	if err != nil {
		return nil, err
	}
	res.serverCPU = selfEnd.cpu - self.cpu
	cons, err := env.js.Consumer(ctx, worker.DefaultStream, worker.DefaultConsumer)
	if err != nil {
		return nil, err
	}
	if res.consumer, err = cons.Info(ctx); err != nil {
		return nil, err
	}
	st := env.emu.Stats()
	res.requests, res.batches, res.throttled, res.creates, res.dupes = st.Requests, st.Batches, st.Throttled, st.Creates, st.Duplicates
	if err := child.stop(time.Minute); err != nil {
		return nil, err
	}
	if err := res.readLatencies(ctx, env.js); err != nil {
		return nil, err
	}
	return res, nil
}

// sample takes the pipeline's figures now.
func (r *benchResult) sample(env *benchEnv, child *workerChild) (benchSample, error) {
	st := env.emu.Stats()
	s := benchSample{at: time.Since(r.ready), requests: st.Requests, throttled: st.Throttled}
	for _, name := range benchOutputs {
		n, err := streamMsgs(context.Background(), env.js, name)
		if err != nil {
			return s, err
		}
		s.outcomes += n
	}
	if m, err := child.metrics(); err == nil {
		s.limit = m["hwstate_rate_limit"]
	}
	u, err := child.usage()
	if err != nil {
		return s, err
	}
	s.cpu, s.rssKiB = u.cpu, u.rss
	return s, nil
}

// readLatencies pairs each event's stream timestamp with its outcome's, by event id.
func (r *benchResult) readLatencies(ctx context.Context, js jetstream.JetStream) error {
	published := map[string]time.Time{}
	err := eachMessage(ctx, js, worker.DefaultStream, func(m jetstream.Msg) error {
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
	for _, name := range benchOutputs {
		err := eachMessage(ctx, js, name, func(m jetstream.Msg) error {
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

// benchPublish publishes n events with ids bench-<i>, acknowledged by the stream, at
// perSecond (0: as fast as JetStream takes them, with bounded async publishes).
func benchPublish(ctx context.Context, js jetstream.JetStream, n int, perSecond float64) error {
	// Acks are awaited a chunk at a time: below nats.go's bound on pending async publishes
	// (4,000 by default), beyond which a publish fails instead of waiting.
	const chunk = 1000
	start := time.Now()
	for i := 0; i < n; {
		end := min(i+chunk, n)
		for perSecond > 0 {
			// Whatever is due by now, so a late wake-up on a busy machine catches up instead
			// of lowering the arrival rate.
			if due := min(n, int(perSecond*time.Since(start).Seconds())+1); due > i {
				end = min(end, due)
				break
			}
			if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
				return err
			}
		}
		acks := make([]jetstream.PubAckFuture, 0, end-i)
		for ; i < end; i++ {
			m := nats.NewMsg(worker.DefaultSubject)
			m.Data = []byte(demoEvent(benchConfigID, i))
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("bench-%d", i))
			f, err := js.PublishMsgAsync(m)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			acks = append(acks, f)
		}
		for _, f := range acks {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return fmt.Errorf("publish: %w", err)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// benchConfigID is the hardwareConfiguration every bench event goes to.
const benchConfigID = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"
