package worker_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/worker"
)

// batching makes the harness's workers send creates through a Batcher of size n.
func (h *harness) batching(n int, linger time.Duration) {
	h.creator = &graph.Batcher{Client: h.client, Size: n, Linger: linger}
}

// TestBatchCarriesCreatesAnsweredAsIfAlone: with $batch 20 and more events in flight at once
// than a batch holds, creates share batches, and each is answered exactly as if it had been
// sent alone. How full the batches are is a figure of `hwstate bench --graph-batch 20`.
func TestBatchCarriesCreatesAnsweredAsIfAlone(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	// Batches fill only when creates are in flight at once: concurrency above the batch
	// size, a rate limit that is not what holds them back, and a linger long enough for a
	// busy machine to start a second create before the first goes.
	h.cfg.Concurrency, h.cfg.Rate, h.cfg.Burst = 40, 100000, 100
	h.batching(20, 200*time.Millisecond)
	const n = 200
	// The first worker makes the streams; the events wait for the second, which finds them
	// all there to send.
	h.start().stop(t)
	for i := range n {
		h.publish(fmt.Sprintf("b-%d", i), event(configOK, i))
	}
	h.start()
	out := h.waitOutputs(n, 60*time.Second)
	if len(out.dlq) != 0 {
		t.Fatalf("%d dead letters", len(out.dlq))
	}
	for i := range n {
		h.checkCreatedOnce(out, fmt.Sprintf("b-%d", i), i)
	}
	if s := h.emu.Stats(); s.Creates != n || s.Duplicates != 0 || s.Batches == 0 || s.Batches >= s.Creates {
		t.Errorf("emulator %+v: want %d creates, no duplicate, fewer $batch requests than creates", s, n)
	}
}

// TestBatchWithMixedAnswers puts three events in one $batch whose sub-requests answer 201,
// 400 and 429: each reaches its own outcome, the throttled one after a retry of its own.
func TestBatchWithMixedAnswers(t *testing.T) {
	const configThrottled = "00000000-0000-4000-8000-000000000429"
	h := newHarness(t, emulator.Config{
		RejectIDs: []string{configReject}, ThrottleIDs: []string{configThrottled}, RetryAfter: 100 * time.Millisecond,
	})
	// A long linger, so the three events go in one batch on a busy machine too, however they
	// are pulled; the retry goes alone when it is over.
	h.batching(3, 2*time.Second)
	h.start()
	h.publish("mixed-created", event(configOK, 1))
	h.publish("mixed-rejected", event(configReject, 2))
	h.publish("mixed-throttled", event(configThrottled, 3))
	out := h.waitOutputs(3, 30*time.Second)

	if rs := out.results["mixed-created"]; len(rs) != 1 || rs[0].Attempts != 1 {
		t.Errorf("created: %+v", rs)
	}
	if dl := out.dlq["mixed-rejected"]; len(dl) != 1 || dl[0].Reason != worker.GraphRejected || dl[0].HTTPStatus != 400 || dl[0].Attempts != 1 {
		t.Errorf("rejected: %+v", dl)
	}
	if rs := out.results["mixed-throttled"]; len(rs) != 1 || rs[0].Attempts != 2 || rs[0].Status != 201 {
		t.Errorf("throttled: %+v", rs)
	}
	// The retry of the throttled event waited for the linger, alone, and went as a plain
	// create: one $batch, and 4 requests in all.
	if s := h.emu.Stats(); s.Batches != 1 || s.Requests != 4 || s.Throttled != 1 || s.Creates != 2 {
		t.Errorf("emulator %+v: want 1 batch and a plain create, 4 requests, 1 throttled, 2 created", s)
	}
}
