package worker_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/worker"
)

// BenchmarkPipeline takes b.N events from JetStream to their results through a zero-latency
// emulator with no rate limit: the worker's own cost per event, ledger and results on. The
// JetStream server and the emulator run in the same process, so the profile
// (-cpuprofile) shows all three; `hwstate bench` measures the worker alone.
func BenchmarkPipeline(b *testing.B) {
	ns := natstest.Start(b)
	_, js := natstest.Connect(b, ns.ClientURL())
	srv := httptest.NewServer(emulator.New(emulator.Config{}))
	b.Cleanup(srv.Close)
	client := &graph.Client{BaseURL: srv.URL + "/beta", Tokens: graph.StaticToken(testToken)}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: worker.DefaultStream, Subjects: []string{worker.DefaultSubject}}); err != nil {
		b.Fatal(err)
	}
	var acks []jetstream.PubAckFuture
	for i := range b.N {
		m := nats.NewMsg(worker.DefaultSubject)
		m.Header.Set(jetstream.MsgIDHeader, fmt.Sprintf("ev-%d", i))
		m.Data = event(configOK, i)
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			b.Fatal(err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}

	b.ReportAllocs()
	b.ResetTimer()
	w := worker.New(js, client, worker.Config{Rate: 1e6, Burst: 1000, Concurrency: 64})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	results, err := js.Stream(ctx, worker.DefaultResultStream)
	for err != nil {
		time.Sleep(10 * time.Millisecond)
		results, err = js.Stream(ctx, worker.DefaultResultStream)
	}
	for {
		info, err := results.Info(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if info.State.Msgs >= uint64(b.N) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	stop()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
