package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
)

const (
	rejectID   = "00000000-0000-4000-8000-000000000400"
	notFoundID = "00000000-0000-4000-8000-000000000404"
	throttleID = "00000000-0000-4000-8000-000000000429"
)

// concurrently calls create n times at once and returns the answers in call order.
func concurrently(n int, create func(i int) (Response, error)) ([]Response, []error) {
	resps, errs := make([]Response, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { resps[i], errs[i] = create(i) })
	}
	wg.Wait()
	return resps, errs
}

func TestBatcherGathersConcurrentCreates(t *testing.T) {
	e, srv := newEmulatorServer(t, emulator.Config{Token: testToken, Latency: 20 * time.Millisecond})
	b := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}, Size: 20, Linger: 50 * time.Millisecond}
	const n = 100
	resps, errs := concurrently(n, func(i int) (Response, error) {
		return b.Create(context.Background(), testRequest(fmt.Sprint("ev-", i)))
	})
	for i := range n {
		r := resps[i]
		if errs[i] != nil || r.Status != 201 || r.Class != Created || r.GraphID == "" || r.RequestID == "" ||
			r.ClientRequestID != ClientRequestID(fmt.Sprint("ev-", i)) {
			t.Fatalf("create %d: %+v %v", i, r, errs[i])
		}
		var entity struct{ ID string }
		if json.Unmarshal(r.Body, &entity) != nil || entity.ID != r.GraphID {
			t.Errorf("create %d: body %s", i, r.Body)
		}
		if e.CreatesFor(r.ClientRequestID) != 1 {
			t.Errorf("create %d: created %d times", i, e.CreatesFor(r.ClientRequestID))
		}
	}
	// Callers at once share batches, never more than Size to one; how full the batches are
	// on a given machine is a figure of `hwstate bench --graph-batch 20`.
	if s := e.Stats(); s.Creates != n || s.Batches < n/20 || s.Batches >= n {
		t.Errorf("stats %+v: want %d creates in at least %d batches, fewer than %d", s, n, n/20, n)
	}
}

func TestBatcherSubResponsesKeepTheirOutcome(t *testing.T) {
	_, srv := newEmulatorServer(t, emulator.Config{
		Token: testToken, RejectIDs: []string{rejectID}, ThrottleIDs: []string{throttleID}, RetryAfter: 2 * time.Second,
	})
	b := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}, Size: 3, Linger: time.Minute}
	configs := []string{testConfigID, rejectID, throttleID}
	resps, errs := concurrently(3, func(i int) (Response, error) {
		req := testRequest(fmt.Sprint("mixed-", i))
		req.ConfigurationID = configs[i]
		return b.Create(context.Background(), req)
	})
	want := []struct {
		status int
		class  Class
		code   string
	}{{201, Created, ""}, {400, Rejected, "BadRequest"}, {429, Transient, "TooManyRequests"}}
	for i, w := range want {
		r := resps[i]
		if errs[i] != nil || r.Status != w.status || r.Class != w.class || (w.code != "") != (r.Error != nil) ||
			r.Error != nil && r.Error.Code != w.code || r.RequestID == "" {
			t.Errorf("%s: %+v %v; want %d %v %s", configs[i], r, errs[i], w.status, w.class, w.code)
		}
	}
	if r := resps[2]; !r.HasRetryAfter || r.RetryAfter != 2*time.Second {
		t.Errorf("429 Retry-After %v %v, want 2s", r.RetryAfter, r.HasRetryAfter)
	}
}

func TestBatcherFailedBatchFailsEveryCreate(t *testing.T) {
	cases := []struct {
		name   string
		status int
		class  Class
		cfg    emulator.Config
		tokens TokenSource
	}{
		{"outage is transient", 503, Transient, emulator.Config{Outage: true}, StaticToken(testToken)},
		{"401 is systemic", 401, Systemic, emulator.Config{}, StaticToken("wrong")},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Token = testToken
			e, srv := newEmulatorServer(t, tt.cfg)
			b := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: tt.tokens}, Size: 4, Linger: time.Minute}
			resps, errs := concurrently(4, func(i int) (Response, error) {
				return b.Create(context.Background(), testRequest(fmt.Sprint("fail-", tt.name, i)))
			})
			for i := range 4 {
				if errs[i] != nil || resps[i].Status != tt.status || resps[i].Class != tt.class {
					t.Errorf("create %d: %+v %v; want %d %v", i, resps[i], errs[i], tt.status, tt.class)
				}
			}
			if s := e.Stats(); s.Batches != 1 || s.Creates != 0 {
				t.Errorf("stats %+v: want one batch, no create", s)
			}
		})
	}
}

// TestBatcherMalformedAnswers covers answers the emulator never gives: each create
// without a usable sub-response gets an ErrBatch, transient for the caller.
func TestBatcherMalformedAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		wantOK int // creates that get their answer (GraphID "a"); the others get ErrBatch
	}{
		{"not JSON", 200, `<html>`, 0},
		{"a 400 for the whole batch", 400, `{"error":{"code":"BadRequest","message":"?"}}`, 0},
		{"one answer missing, one foreign, one twice", 200,
			`{"responses":[{"id":"1","status":201,"body":{"id":"a"}},{"id":"9","status":201},{"id":"1","status":500}]}`, 1},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			b := &Batcher{Client: &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}, Size: 2, Linger: time.Minute}
			resps, errs := concurrently(2, func(i int) (Response, error) {
				return b.Create(context.Background(), testRequest(fmt.Sprint("m-", i)))
			})
			ok := 0
			for i := range 2 {
				switch {
				case errs[i] == nil && resps[i].Status == 201 && resps[i].GraphID == "a":
					ok++
				case !errors.Is(errs[i], ErrBatch):
					t.Errorf("create %d: %+v %v; want its answer or an ErrBatch", i, resps[i], errs[i])
				}
			}
			if ok != tt.wantOK {
				t.Errorf("%d creates got an answer, want %d", ok, tt.wantOK)
			}
		})
	}
}

func TestBatcherRefusesABadConfigurationID(t *testing.T) {
	b := &Batcher{Client: &Client{BaseURL: "http://127.0.0.1:1", Tokens: StaticToken(testToken)}}
	req := testRequest("x")
	req.ConfigurationID = "../users"
	if _, err := b.Create(context.Background(), req); !errors.Is(err, ErrInvalidConfigurationID) {
		t.Fatalf("err %v, want ErrInvalidConfigurationID", err)
	}
}

// Auto mode: a create alone goes at once as a plain create; creates that come while every
// request slot is busy go together in $batch requests, each answered as if sent alone.
func TestBatcherAutoBatchesOnlyCreatesDueTogether(t *testing.T) {
	t.Run("alone", func(t *testing.T) {
		e, srv := newEmulatorServer(t, emulator.Config{Token: testToken})
		b := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}, Auto: true}
		for i := range 3 {
			if r, err := b.Create(context.Background(), testRequest(fmt.Sprint("ev-", i))); err != nil || r.Status != 201 {
				t.Fatalf("create %d: %+v %v", i, r, err)
			}
		}
		if s := e.Stats(); s.Batches != 0 || s.Requests != 3 || s.Creates != 3 {
			t.Errorf("stats %+v: want 3 plain creates, no $batch", s)
		}
	})
	t.Run("due together", func(t *testing.T) {
		// The first create holds the one slot for a second: every other caller comes while
		// it is busy, and they go together, 20 at most in each $batch.
		e := emulator.New(emulator.Config{Token: testToken, Latency: time.Second})
		arrived := make(chan struct{}, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}: // the first request: it holds the slot
			default:
			}
			e.ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		b := &Batcher{Client: &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}, Auto: true, Parallel: 1}
		first := make(chan struct{})
		go func() {
			defer close(first)
			if _, err := b.Create(context.Background(), testRequest("first")); err != nil {
				t.Error(err)
			}
		}()
		<-arrived
		const n = 40
		resps, errs := concurrently(n, func(i int) (Response, error) {
			return b.Create(context.Background(), testRequest(fmt.Sprint("ev-", i)))
		})
		<-first
		for i := range n {
			if errs[i] != nil || resps[i].Status != 201 || e.CreatesFor(resps[i].ClientRequestID) != 1 {
				t.Fatalf("create %d: %+v %v", i, resps[i], errs[i])
			}
		}
		// The callers queue while the first is in flight; a slow machine may let the first
		// $batch leave before all of them have, never one request per create.
		if s := e.Stats(); s.Creates != n+1 || s.Batches < n/MaxBatch || s.Batches > n/2 {
			t.Errorf("stats %+v: want %d creates in few $batch requests", s, n+1)
		}
	})
}
