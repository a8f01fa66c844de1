package graph

import (
	"context"
	"sync"
	"testing"

	"github.com/hwstate/hwstate/graph/emulator"
)

// BenchmarkBatcherCreate sends MaxBatch concurrent creates per op through a Batcher to the
// emulator over loopback HTTP: the $batch encode, the emulator's decode and answer, and the
// decode of the answer into one Response per create. Compare BenchmarkCreate per create.
func BenchmarkBatcherCreate(b *testing.B) {
	_, srv := newEmulatorServer(b, emulator.Config{Token: testToken})
	bt := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}}
	reqs := make([]Request, MaxBatch)
	for i := range reqs {
		reqs[i] = testRequest(string(rune('a' + i)))
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for _, req := range reqs {
			wg.Go(func() {
				if resp, err := bt.Create(ctx, req); err != nil || resp.Class != Created {
					b.Error(err, resp.Status)
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*MaxBatch), "ns/create")
}
