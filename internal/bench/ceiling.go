package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/schema"
	"github.com/hwstate/hwstate/worker"
)

// ceilings are the rates around the worker (issue #11), each measured alone on the run's
// sandbox once the worker has stopped: what the emulator serves, and what JetStream does with
// the worker's operations on an event. The pipeline needs both at once, on the same cores, so
// the lower one bounds it.
type ceilings struct {
	events    int     // what each was measured over
	fetch     int     // messages per pull
	emulator  ceiling // creates served at the worker's concurrency and $batch setting
	jetStream ceiling // events fetched, their results published, acked
	ledger    ceiling // the same, with the ledger's writes: a KV create and a KV put per event
}

// ceiling is one rate, and the CPU this process (client and server both) spent per 1,000: on
// a busy machine the rate swings with the other work, the CPU much less.
type ceiling struct{ perSecond, cpuMs float64 }

// String says how the ceilings were measured; "" for none.
func (c *ceilings) String() string {
	if c == nil {
		return ""
	}
	return fmt.Sprintf("each alone after the run, over %d events; the emulator serving graph.Client, "+
		"JetStream fetching %d at a time with asynchronous writes; the lower one is the emulator's or "+
		"JetStream's with the ledger's writes", c.events, c.fetch)
}

// ceilingEvents bounds the creates and events each ceiling is measured over: a few seconds
// each on a small machine, JetStream's one or two (over fewer, a busy machine's noise decides
// the figure).
const ceilingEvents = 40_000

// lower is the lower ceiling of the emulator and of JetStream doing the worker's writes.
func (c ceilings) lower() float64 { return min(c.emulator.perSecond, c.ledger.perSecond) }

// measureCeilings measures the ceilings over events, fetching fetch messages at a time as the
// worker does.
func measureCeilings(ctx context.Context, sc scenario, sb *sandbox.Sandbox, fetch int, progress io.Writer) (*ceilings, error) {
	c := &ceilings{events: min(sc.events, ceilingEvents), fetch: fetch}
	fmt.Fprintf(progress, "bench: measuring the emulator alone and JetStream alone over %d events...\n", c.events)
	var err error
	if c.emulator, err = measure(c.events, func() (float64, error) { return emulatorRate(ctx, sb, sc, c.events) }); err != nil {
		return nil, fmt.Errorf("the emulator alone: %w", err)
	}
	if c.jetStream, err = measure(c.events, func() (float64, error) { return jetStreamRate(ctx, sb.Conn, c.events, fetch, false) }); err != nil {
		return nil, fmt.Errorf("JetStream alone: %w", err)
	}
	if c.ledger, err = measure(c.events, func() (float64, error) { return jetStreamRate(ctx, sb.Conn, c.events, fetch, true) }); err != nil {
		return nil, fmt.Errorf("JetStream alone with the ledger's writes: %w", err)
	}
	return c, nil
}

// measure takes the rate rate finds over n and the CPU this process spent on them.
func measure(n int, rate func() (float64, error)) (ceiling, error) {
	before, err := usageOf(os.Getpid())
	if err != nil {
		return ceiling{}, err
	}
	perSecond, err := rate()
	if err != nil {
		return ceiling{}, err
	}
	after, err := usageOf(os.Getpid())
	if err != nil {
		return ceiling{}, err
	}
	return ceiling{perSecond, msPer1000(after.cpu-before.cpu, n)}, nil
}

// creator sends a create as the worker does: alone (graph.Client) or in a $batch
// (graph.Batcher).
type creator interface {
	Create(context.Context, graph.Request) (graph.Response, error)
}

// emulatorRate is how many creates per second the sandbox's emulator serves to the project's
// Graph client with sc.concurrency creates in flight: each alone with graph batch 1, else in
// $batch requests of the set size, 20 for auto (under this load auto's batches are full).
func emulatorRate(ctx context.Context, sb *sandbox.Sandbox, sc scenario, n int) (float64, error) {
	client := sb.Client(30 * time.Second)
	var send creator = client
	if sc.graphBatch != 1 {
		send = &graph.Batcher{Client: client, Size: sc.graphBatch}
	}
	ev, err := schema.Decode(sandbox.Event(sandbox.ConfigOK, 0))
	if err != nil {
		return 0, err
	}
	body := ev.UserState.AppendGraphBody(nil)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	errs := make(chan error, sc.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for range sc.concurrency {
		wg.Go(func() {
			for i := next.Add(1); i <= int64(n); i = next.Add(1) {
				req := graph.Request{ConfigurationID: sandbox.ConfigOK, ClientRequestID: graph.ClientRequestID("ceiling-" + strconv.FormatInt(i, 10)), Body: body}
				resp, err := send.Create(ctx, req)
				if err == nil && resp.Status != http.StatusCreated {
					err = fmt.Errorf("a create answered %d", resp.Status)
				}
				if err != nil {
					errs <- err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(n) / elapsed.Seconds(), nil
}

// The stream and bucket JetStream's ceiling writes to, apart from the worker's.
const (
	ceilingStream  = "HWSTATE_BENCH_CEILING"
	ceilingSubject = "hwstate.bench.ceiling"
	ceilingBucket  = "HWSTATE_BENCH_CEILING"
)

// jetStreamRate is how many of the input stream's events per second JetStream lets a client
// fetch (fetch at a time, as the worker pulls), publish a result for (with its Nats-Msg-Id)
// and ack; with ledger, also write a KV create and a KV put of the event's key, as the
// worker's claim and record. Every write is asynchronous, its acknowledgement awaited at the
// end, so the figure is JetStream's, not a round trip's.
func jetStreamRate(ctx context.Context, conn *nats.Conn, n, fetch int, ledger bool) (float64, error) {
	var refused atomic.Int64
	js, err := jetstream.New(conn, jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { refused.Add(1) }))
	if err != nil {
		return 0, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: ceilingStream, Subjects: []string{ceilingSubject}, Storage: jetstream.FileStorage, Duplicates: time.Hour,
	}); err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteStream(context.Background(), ceilingStream) }()
	if ledger {
		if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: ceilingBucket, Storage: jetstream.FileStorage, TTL: worker.DefaultLedgerTTL,
		}); err != nil {
			return 0, err
		}
		defer func() { _ = js.DeleteKeyValue(context.Background(), ceilingBucket) }()
	}
	cons, err := js.CreateConsumer(ctx, worker.DefaultStream, jetstream.ConsumerConfig{AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		return 0, err
	}
	defer func() { _ = js.DeleteConsumer(context.Background(), worker.DefaultStream, cons.CachedInfo().Name) }()

	// Past nats.go's bound on pending publishes, a publish waits for room instead of failing.
	stall := jetstream.WithStallWait(time.Minute)
	publish := func(m *nats.Msg, opts ...jetstream.PublishOpt) error {
		_, err := js.PublishMsgAsync(m, append(opts, stall)...)
		return err
	}
	start := time.Now()
	for got := 0; got < n; {
		batch, err := cons.Fetch(min(fetch, n-got))
		if err != nil {
			return 0, err
		}
		for msg := range batch.Messages() {
			got++
			id := msg.Headers().Get(jetstream.MsgIDHeader)
			if ledger {
				key := "$KV." + ceilingBucket + "." + id
				if err := errors.Join(
					publish(&nats.Msg{Subject: key, Data: []byte(`{"claim":true}`)}, jetstream.WithExpectLastSequencePerSubject(0)),
					publish(&nats.Msg{Subject: key, Data: msg.Data()}),
				); err != nil {
					return 0, err
				}
			}
			result := nats.NewMsg(ceilingSubject)
			result.Header.Set(jetstream.MsgIDHeader, id)
			result.Data = msg.Data()
			if err := errors.Join(publish(result), msg.Ack()); err != nil {
				return 0, err
			}
		}
		if err := batch.Error(); err != nil {
			return 0, err
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if err := conn.Flush(); err != nil { // the acks have reached the server
		return 0, err
	}
	elapsed := time.Since(start)
	if k := refused.Load(); k > 0 {
		return 0, fmt.Errorf("JetStream refused %d of the writes", k)
	}
	return float64(n) / elapsed.Seconds(), nil
}
