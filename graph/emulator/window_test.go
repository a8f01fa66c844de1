package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestWindowAdmitsLimitPerWindow(t *testing.T) {
	w := newWindow(Window{Limit: 3, Per: 20 * time.Second})
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if wait := admitWrite(t0.Add(time.Duration(i)*time.Second), nil, w); wait != 0 {
			t.Fatalf("write %d refused, wait %v", i, wait)
		}
	}
	// The oldest of the last three went at t0: room again at t0+20s, not before.
	if wait := admitWrite(t0.Add(5*time.Second), nil, w); wait != 15*time.Second {
		t.Errorf("fourth write at 5s: wait %v, want 15s", wait)
	}
	if wait := admitWrite(t0.Add(20*time.Second), nil, w); wait != 0 {
		t.Errorf("write at 20s refused, wait %v", wait)
	}
	if wait := admitWrite(t0.Add(20*time.Second), nil, w); wait != time.Second {
		t.Errorf("next write at 20s: wait %v, want 1s (the write at 1s leaves the window at 21s)", wait)
	}
}

// TestWindowOverHTTP: creates alone and inside a $batch share the window, each
// sub-request counting; a 429 says when the oldest create leaves it, and takes nothing.
func TestWindowOverHTTP(t *testing.T) {
	clock := newFakeClock()
	e, srv := newEmulatorServer(t, Config{Token: testToken, Window: Window{Limit: 3, Per: 20 * time.Second}}, WithClock(clock.Now))
	if resp, body := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("first create: %d %s", resp.StatusCode, body)
	}
	clock.Advance(2 * time.Second)
	batch := batchRequestOf(subReq("a", testConfigID), subReq("b", testConfigID), subReq("c", testConfigID))
	answer := batch.sendBatch(t, srv)
	statuses := map[int]int{}
	for _, sub := range answer.Responses {
		statuses[sub.Status]++
		if sub.Status == 429 && sub.Headers["Retry-After"] != "18" {
			t.Errorf("sub-response Retry-After %q, want 18", sub.Headers["Retry-After"])
		}
	}
	if statuses[201] != 2 || statuses[429] != 1 {
		t.Fatalf("sub-responses %v: want two 201 and one 429", statuses)
	}
	// Refused creates took nothing: at 20s the first create leaves, and one more fits.
	for range 3 {
		if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "18" {
			t.Fatalf("in a full window: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	clock.Advance(18 * time.Second)
	if resp, body := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("after the oldest left: %d %s", resp.StatusCode, body)
	}
	if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("full again: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// A change of anything else keeps the window's history; a new Window starts afresh.
	e.SetConfig(Config{Token: testToken, Window: Window{Limit: 3, Per: 20 * time.Second}, Latency: time.Microsecond})
	if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 429 {
		t.Fatalf("after an unrelated change: %d, want 429", resp.StatusCode)
	}
	e.SetConfig(Config{Token: testToken, Window: Window{Limit: 1, Per: time.Minute}})
	if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("under a new window: %d, want 201", resp.StatusCode)
	}
	if s := e.Stats(); s.Throttled != 6 || s.Creates != 5 || s.Batches != 1 {
		t.Errorf("stats %+v: want 6 throttled, 5 creates, 1 batch", s)
	}
}

// TestWindowAndBucket: with both limits, a create refused by one takes from neither.
func TestWindowAndBucket(t *testing.T) {
	clock := newFakeClock()
	_, srv := newEmulatorServer(t, Config{Rate: 1, Burst: 1, Window: Window{Limit: 2, Per: 10 * time.Second}}, WithClock(clock.Now))
	steps := []struct {
		advance    time.Duration
		status     int
		retryAfter string
	}{
		{0, 201, ""},
		{0, 429, "1"}, // the bucket refuses
		{time.Second, 201, ""},
		{time.Second, 429, "8"}, // the window refuses, the bucket keeps its token
		{8 * time.Second, 201, ""},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		resp, body := validRequest(uuid.NewString()).send(t, srv)
		if resp.StatusCode != step.status || resp.Header.Get("Retry-After") != step.retryAfter {
			t.Fatalf("step %d: %d, Retry-After %q; want %d %q: %s", i, resp.StatusCode, resp.Header.Get("Retry-After"), step.status, step.retryAfter, body)
		}
	}
}

// sendBatch sends the $batch request and decodes its answer, failing t unless it is a 200.
func (r rawRequest) sendBatch(t testing.TB, srv *httptest.Server) batchAnswer {
	t.Helper()
	resp, body := r.send(t, srv)
	var answer batchAnswer
	if resp.StatusCode != 200 {
		t.Fatalf("$batch: %d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		t.Fatalf("$batch answer %s: %v", body, err)
	}
	return answer
}

func batchRequestOf(subs ...map[string]any) rawRequest {
	return rawRequest{
		method: http.MethodPost, path: "/beta/$batch",
		header: map[string]string{"Authorization": "Bearer " + testToken, "Content-Type": "application/json"},
		body:   []byte(batchOf(subs...)),
	}
}
