package emulator

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
)

// unanswered sends req, which the emulator will not answer (FaultHang or FaultDrop), and
// checks what the client sees: for a hang, nothing until it gives up once the emulator has
// made the creates; for a drop, the connection closed. Then it closes srv, which waits
// for every handler: none is left behind.
func unanswered(t *testing.T, e *Emulator, srv *httptest.Server, req rawRequest, fault string, creates uint64) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	httpReq, err := http.NewRequestWithContext(ctx, req.method, srv.URL+req.path, bytes.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range req.header {
		httpReq.Header.Set(k, v)
	}
	go func() {
		resp, err := srv.Client().Do(httpReq)
		if err == nil {
			resp.Body.Close()
			err = errors.New("answered " + resp.Status)
		}
		done <- err
	}()
	if fault == FaultHang {
		waitFor(t, "the creates", func() bool { return e.Stats().Ambiguous == creates })
		cancel() // the client gives up
	}
	err = <-done
	if fault == FaultHang && !errors.Is(err, context.Canceled) || fault == FaultDrop && !errors.Is(err, io.EOF) {
		t.Fatalf("client: %v", err)
	}
	srv.Close()
}

// waitFor polls cond until it holds; the emulator's counters move as requests reach it.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// TestAmbiguousFaults: each fault creates the user state, then the client never hears
// of it: a 500 or 504, an answer held until the client gives up, or a dropped
// connection. The entity is in the list and in Stats, and a retry makes a duplicate.
func TestAmbiguousFaults(t *testing.T) {
	tests := []struct {
		fault  string
		status int // 0: no answer at all
	}{
		{Fault500, 500},
		{Fault504, 504},
		{FaultHang, 0},
		{FaultDrop, 0},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			e, srv := newEmulatorServer(t, Config{Token: testToken, AmbiguousRate: 1, AmbiguousFaults: []string{tt.fault}})
			crid := uuid.NewString()
			req := validRequest(crid)
			if tt.status == 0 {
				unanswered(t, e, srv, req, tt.fault, 1)
			} else {
				resp, body := req.send(t, srv)
				if resp.StatusCode != tt.status {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
				}
				graphErrorCode(t, body)
			}
			srv = serve(t, e)

			if s := e.Stats(); s.Creates != 1 || s.Ambiguous != 1 || e.CreatesFor(crid) != 1 {
				t.Errorf("stats %+v, CreatesFor %d: want the create made and counted ambiguous", s, e.CreatesFor(crid))
			}
			_, body := listRequest(testConfigID, "").send(t, srv)
			if page := decodeList(t, body); len(page.Value) != 1 || page.Value[0]["upn"] != testState.UPN {
				t.Errorf("list after the fault: %s", body)
			}
			e.SetConfig(Config{Token: testToken})
			if resp, _ := req.send(t, srv); resp.StatusCode != 201 || e.Stats().Duplicates != 1 {
				t.Errorf("a blind retry: %d, stats %+v; want 201 and one duplicate", resp.StatusCode, e.Stats())
			}
		})
	}
}

// serve serves e on a new server until the test ends.
func serve(t testing.TB, e *Emulator) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

// TestAmbiguousFaultsInBatch: a sub-request drawing 500 or 504 gets it after its create;
// one drawing hang or drop takes the whole $batch answer with it, every create made.
func TestAmbiguousFaultsInBatch(t *testing.T) {
	tests := []struct {
		fault     string
		subStatus []int // nil: the $batch is not answered
	}{
		{Fault500, []int{500, 500, 500}},
		{Fault504, []int{504, 504, 504}},
		{FaultHang, nil},
		{FaultDrop, nil},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			e, srv := newEmulatorServer(t, Config{Token: testToken, AmbiguousRate: 1, AmbiguousFaults: []string{tt.fault}})
			req := batchRequestOf(subReq("a", testConfigID), subReq("b", testConfigID), subReq("c", testConfigID))
			if tt.subStatus != nil {
				answer := req.sendBatch(t, srv)
				if len(answer.Responses) != 3 {
					t.Fatalf("%d sub-responses, want 3: %+v", len(answer.Responses), answer)
				}
				for i, sub := range answer.Responses {
					if sub.Status != tt.subStatus[i] {
						t.Errorf("sub-response %s: %d, want %d", sub.ID, sub.Status, tt.subStatus[i])
					}
				}
			} else {
				unanswered(t, e, srv, req, tt.fault, 3)
			}
			srv = serve(t, e)
			if s := e.Stats(); s.Creates != 3 || s.Ambiguous != 3 || s.Batches != 1 {
				t.Errorf("stats %+v: want 3 creates, 3 ambiguous, 1 batch", s)
			}
			if _, body := listRequest(testConfigID, "").send(t, srv); len(decodeList(t, body).Value) != 3 {
				t.Errorf("list after the fault: %s", body)
			}
		})
	}
}
