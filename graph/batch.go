package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

// MaxBatch is the most requests Graph takes in one $batch.
const MaxBatch = 20

const defaultLinger = 5 * time.Millisecond

// ErrBatch is wrapped by the errors a Batcher returns when its $batch as a whole had no
// usable answer for the create (an answer Graph should not give, or one without the
// create's sub-response). Like every error of Create, it is transient for the caller.
var ErrBatch = errors.New("graph: $batch failed")

// Batcher sends creates in JSON batches (POST {BaseURL}/$batch): it has Client's Create
// method, so callers that send one create per goroutine get batching for free. Concurrent
// calls are gathered until Size are waiting or Linger has passed since the first, then go
// in one $batch. Its fields must not change once it is in use; it is safe for concurrent
// use.
//
// Each create keeps its own answer, exactly as if sent alone: status, Class, Retry-After,
// Graph's error, the created entity. A $batch that fails as a whole is that failure for
// every create in it: a status that Classify calls Transient or Systemic (429 and 5xx,
// 401/403/405) comes back as the Response of each, with the batch's Retry-After; anything
// else (another 4xx, a 200 that is not a batch answer) and network errors come back as
// errors, transient for the caller. 401 and 403 are retried once with a fresh token, as
// by Create.
//
// Ambiguous says for each create whether Graph may have run it all the same: a
// sub-response 500, 502 or 504, or a $batch that failed ambiguously as a whole (timeout or
// lost connection once sent, a 500/502/504 to the $batch, a 200 that is not a batch
// answer or lacks the create's sub-response, a caller that stopped waiting), but not a
// 424.
//
// Batching saves round trips, not quota: Graph counts every sub-request against the
// tenant's limits. It fills only when Size creates are in flight at once, so the caller's
// concurrency must be at least Size.
type Batcher struct {
	// Client sends the $batch requests: its BaseURL, HTTPClient, Tokens and Timeout apply.
	Client *Client
	// Size is the most creates per $batch, from 1 to MaxBatch; 0 means MaxBatch.
	Size int
	// Linger is how long the first create of a batch waits for others; 0 means 5ms.
	Linger time.Duration
	// Auto gathers only creates that are due at the same moment, and makes none wait for
	// others to come (HWSTATE_GRAPH_BATCH=auto): a create goes at once, alone (a plain
	// create, no $batch), while fewer than Parallel requests are in flight; creates that
	// arrive while all of them are busy go together, up to Size, when one comes back.
	// Batches so form under load only, where they save the most. Linger does not apply.
	Auto bool
	// Parallel is the most requests in flight in Auto mode; 0 means 2.
	Parallel int

	mu       sync.Mutex
	pending  *batch       // the batch being gathered; nil when none
	inFlight int          // Auto: requests in flight
	queue    []*batchCall // Auto: creates waiting for one of them to come back
}

// batch is the creates gathered for one $batch.
type batch struct {
	calls []*batchCall
	timer *time.Timer
}

// batchCall is one caller's create and where its answer goes.
type batchCall struct {
	req  Request
	done chan batchResult // buffered: the sender never waits for a caller that left
}

type batchResult struct {
	resp Response
	err  error
}

// Create sends req in the next $batch and returns its own answer. ctx bounds the wait for
// the answer; the $batch itself runs within Client's Timeout, whatever happens to ctx,
// because other callers' creates travel with it.
func (b *Batcher) Create(ctx context.Context, req Request) (Response, error) {
	if !schema.IsGUID(req.ConfigurationID) {
		return Response{}, fmt.Errorf("%w: %q", ErrInvalidConfigurationID, req.ConfigurationID)
	}
	call := &batchCall{req: req, done: make(chan batchResult, 1)}
	switch {
	case b.Auto:
		b.enqueue(call)
	default:
		if full := b.add(call); full != nil {
			b.send(full.calls)
		}
	}
	select {
	case r := <-call.done:
		return r.resp, r.err
	case <-ctx.Done():
		// The create stays in its $batch, which may be on its way or not sent yet.
		return Response{}, fmt.Errorf("%w: graph: waiting for the $batch answer: %w", ErrAmbiguous, ctx.Err())
	}
}

// ListUserStates is the Client's: a listing is never batched, as its pages follow one
// another and the caller waits for it before its create.
func (b *Batcher) ListUserStates(ctx context.Context, req ListRequest) ([]UserState, Response, error) {
	return b.Client.ListUserStates(ctx, req)
}

// size is the most creates in one $batch.
func (b *Batcher) size() int {
	if b.Size <= 0 || b.Size > MaxBatch {
		return MaxBatch
	}
	return b.Size
}

// enqueue sends call at once when a request slot is free (Auto), and queues it otherwise.
func (b *Batcher) enqueue(call *batchCall) {
	parallel := b.Parallel
	if parallel <= 0 {
		parallel = 2
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.inFlight < parallel {
		b.inFlight++
		go b.drain([]*batchCall{call})
		return
	}
	b.queue = append(b.queue, call)
}

// drain sends calls, then whatever queued meanwhile (up to Size at a time), until the queue
// is empty: one request slot of Auto mode.
func (b *Batcher) drain(calls []*batchCall) {
	for {
		b.send(calls)
		b.mu.Lock()
		if len(b.queue) == 0 {
			b.inFlight--
			b.mu.Unlock()
			return
		}
		n := min(len(b.queue), b.size())
		calls = slices.Clone(b.queue[:n])
		b.queue = slices.Delete(b.queue, 0, n)
		b.mu.Unlock()
	}
}

// add puts call into the batch being gathered and returns that batch if call filled it.
func (b *Batcher) add(call *batchCall) *batch {
	size := b.size()
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending == nil {
		linger := b.Linger
		if linger <= 0 {
			linger = defaultLinger
		}
		p := &batch{}
		p.timer = time.AfterFunc(linger, func() { b.flush(p) })
		b.pending = p
	}
	p := b.pending
	p.calls = append(p.calls, call)
	if len(p.calls) < size {
		return nil
	}
	p.timer.Stop()
	b.pending = nil
	return p
}

// flush sends p when its linger is over, unless it filled up and went already.
func (b *Batcher) flush(p *batch) {
	b.mu.Lock()
	if b.pending != p {
		b.mu.Unlock()
		return
	}
	b.pending = nil
	b.mu.Unlock()
	b.send(p.calls)
}

// batchRequest and batchAnswer are the JSON of a $batch and of its answer.
type batchRequest struct {
	Requests []subRequestJSON `json:"requests"`
}

type subRequestJSON struct {
	ID      string            `json:"id"`
	Method  string            `json:"method"`
	URL     string            `json:"url"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

type batchAnswer struct {
	Responses []subResponseJSON `json:"responses"`
}

type subResponseJSON struct {
	ID      string            `json:"id"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body,omitempty"`
}

// send posts one $batch, or a lone create as itself, and hands every caller its answer.
func (b *Batcher) send(calls []*batchCall) {
	if len(calls) == 1 {
		// Alone: a plain create, within Client's Timeout like a $batch (the caller may have
		// stopped waiting).
		resp, err := b.Client.Create(context.Background(), calls[0].req)
		calls[0].done <- batchResult{resp, err}
		return
	}
	results := b.do(calls)
	for i, call := range calls {
		call.done <- results[i]
	}
}

// do posts the $batch of calls and returns their results, in the same order. The
// sub-request ids are the calls' positions, so they are unique and map answers back.
func (b *Batcher) do(calls []*batchCall) []batchResult {
	results := make([]batchResult, len(calls))
	all := func(r batchResult) []batchResult {
		for i := range results {
			results[i] = r
		}
		return results
	}
	br := batchRequest{Requests: make([]subRequestJSON, len(calls))}
	for i, call := range calls {
		h := map[string]string{"Content-Type": "application/json", "Accept": "application/json"}
		if call.req.ClientRequestID != "" {
			h["client-request-id"] = call.req.ClientRequestID
		}
		br.Requests[i] = subRequestJSON{
			ID: strconv.Itoa(i + 1), Method: http.MethodPost,
			URL: "/" + userRunStatesPath(call.req.ConfigurationID), Headers: h, Body: call.req.Body,
		}
	}
	body, err := json.Marshal(br)
	if err != nil {
		// Only a body that is not JSON can fail here: schema writes valid JSON, so a bug.
		return all(batchResult{err: fmt.Errorf("%w: encoding the batch: %w", ErrBatch, err)})
	}
	a, err := b.Client.do(context.Background(), call{
		what: "create", method: http.MethodPost, url: b.Client.url("/$batch"),
		body: body, clientRequestID: uuid.NewString(), limit: maxResponseBody,
	})
	if err != nil {
		return all(batchResult{err: err})
	}
	now := time.Now()
	if a.status != http.StatusOK {
		switch Classify(a.status) {
		case Transient, Systemic:
			return all(batchResult{resp: newResponse(a.status, a.header, a.body, now)})
		}
		err := fmt.Errorf("%w: Graph answered %d", ErrBatch, a.status)
		if mayHaveRun(a.status) {
			err = fmt.Errorf("%w: %w", ErrAmbiguous, err)
		}
		return all(batchResult{err: err})
	}
	var answers batchAnswer
	if err := json.Unmarshal(a.body, &answers); err != nil {
		// Something answered 200 to the $batch: it may have run the creates in it.
		return all(batchResult{err: fmt.Errorf("%w: %w: the answer is not a batch answer: %w", ErrAmbiguous, ErrBatch, err)})
	}
	found := make([]bool, len(calls))
	for _, sub := range answers.Responses {
		i, err := strconv.Atoi(sub.ID)
		if err != nil || i < 1 || i > len(calls) || found[i-1] {
			continue // not ours, or a second answer to one: the first stands
		}
		found[i-1] = true
		results[i-1] = batchResult{resp: newResponse(sub.Status, subHeader(sub.Headers, a.header), sub.Body, now)}
	}
	for i := range calls {
		if !found[i] {
			// Graph ran the $batch but did not say what became of this create.
			results[i] = batchResult{err: fmt.Errorf("%w: %w: no answer for sub-request %d", ErrAmbiguous, ErrBatch, i+1)}
		}
	}
	return results
}

// subHeader is a sub-response's headers as an http.Header, with the batch answer's
// request-id and Date where the sub-response has none: support asks for them.
func subHeader(sub map[string]string, outer http.Header) http.Header {
	h := make(http.Header, len(sub)+2)
	for k, v := range sub {
		h.Set(k, v)
	}
	for _, k := range []string{"request-id", "Date"} {
		if h.Get(k) == "" && outer.Get(k) != "" {
			h.Set(k, outer.Get(k))
		}
	}
	return h
}
