package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/internal/graphtest"
	"github.com/hwstate/hwstate/schema"
)

const (
	testConfigID = graphtest.ConfigID
	testToken    = "s3cr3t-t0ken"
	testPrefix   = "/beta/deviceManagement/hardwareConfigurations/"
)

var testState = graphtest.UserState()

func testBody() []byte { return testState.AppendGraphBody(nil) }

func createPath(configID string) string { return testPrefix + configID + "/userRunStates" }

func newEmulatorServer(t testing.TB, cfg Config, opts ...Option) (*Emulator, *httptest.Server) {
	t.Helper()
	e := New(cfg, opts...)
	return e, serve(t, e)
}

// fakeClock is a clock that moves only when a test moves it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// rawRequest is a request as a client of any quality might send it.
type rawRequest struct {
	method string
	path   string
	header map[string]string
	body   []byte
}

// validRequest is a correct create; tests change what they are about.
func validRequest(clientRequestID string) rawRequest {
	return rawRequest{
		method: http.MethodPost,
		path:   createPath(testConfigID),
		header: map[string]string{
			"Authorization":     "Bearer " + testToken,
			"Content-Type":      "application/json",
			"client-request-id": clientRequestID,
		},
		body: testBody(),
	}
}

func (r rawRequest) with(key, value string) rawRequest {
	h := make(map[string]string, len(r.header)+1)
	for k, v := range r.header {
		h[k] = v
	}
	if value == "" {
		delete(h, key)
	} else {
		h[key] = value
	}
	r.header = h
	return r
}

func (r rawRequest) to(method, path string) rawRequest {
	r.method, r.path = method, path
	return r
}

func (r rawRequest) withBody(body string) rawRequest {
	r.body = []byte(body)
	return r
}

func (r rawRequest) send(t testing.TB, srv *httptest.Server) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(r.method, srv.URL+r.path, bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// graphErrorCode returns the code of a Graph error body, failing the test if the
// body is not one with an innerError.
func graphErrorCode(t testing.TB, body []byte) string {
	t.Helper()
	var e errorBody
	if json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.Code == "" || len(e.Error.InnerError) == 0 {
		t.Fatalf("not a Graph error body with innerError: %s", body)
	}
	return e.Error.Code
}

func TestAnswers(t *testing.T) {
	otherID := "A1B2C3D4-0000-4000-8000-00000000000F"
	cfg := Config{Token: testToken, NotFoundIDs: []string{otherID}, RejectIDs: []string{strings.ToUpper(testConfigID)}}
	crid := uuid.NewString()
	ok := validRequest(crid)
	tests := []struct {
		name       string
		cfg        *Config // nil: cfg
		req        rawRequest
		wantStatus int
		wantCode   string
		wantInMsg  string
	}{
		{"unknown path", nil, rawRequest{method: "POST", path: "/beta/users"}, 404, "ResourceNotFound", ""},
		{"path beyond the collection", nil, ok.to("POST", ok.path+"/x"), 404, "ResourceNotFound", ""},
		{"PATCH", nil, ok.to("PATCH", ok.path), 405, "MethodNotAllowed", ""},
		{"no Authorization", nil, ok.with("Authorization", ""), 401, "InvalidAuthenticationToken", ""},
		{"wrong token", nil, ok.with("Authorization", "Bearer other"), 401, "InvalidAuthenticationToken", ""},
		{"not Bearer", nil, ok.with("Authorization", "Basic "+testToken), 401, "InvalidAuthenticationToken", ""},
		{"empty Bearer", &Config{}, ok.with("Authorization", "Bearer "), 401, "InvalidAuthenticationToken", ""},
		{"outage before authorization", &Config{Outage: true}, ok.with("Authorization", ""), 503, "ServiceUnavailable", ""},
		{"client-request-id not a GUID", nil, ok.with("client-request-id", "event-1"), 400, "BadRequest", "client-request-id"},
		{"no Content-Type", nil, ok.with("Content-Type", ""), 415, "UnsupportedMediaType", ""},
		{"text/plain", nil, ok.with("Content-Type", "text/plain"), 415, "UnsupportedMediaType", ""},
		{"configuration id not a GUID", nil, ok.to("POST", createPath("not-a-guid")), 400, "BadRequest", "hardwareConfigurationId"},
		{"encoded slash in id", nil, ok.to("POST", createPath("..%2Fx")), 400, "BadRequest", "hardwareConfigurationId"},
		{"unknown configuration", nil, ok.to("POST", createPath(strings.ToLower(otherID))), 404, "ResourceNotFound", ""},
		{"missing property", nil, ok.withBody(`{"upn":"a","userEmail":"a","userName":"a","lastStateUpdateDateTime":"2017-01-01T00:00:00Z"}`), 400, "BadRequest", "successfulDeviceCount"},
		{"not JSON", nil, ok.withBody("upn=ada"), 400, "BadRequest", ""},
		{"oversized body", nil, ok.withBody(strings.Repeat(" ", maxRequestBody+1)), 413, "RequestEntityTooLarge", ""},
		{"rejected configuration", nil, ok, 400, "BadRequest", testConfigID},
		{"failing configuration", &Config{FailIDs: []string{testConfigID}, FailStatus: 500}, ok, 500, "InternalServerError", ""},
		{"created", &Config{Token: testToken}, ok, 201, "", ""},
		{"any token", &Config{}, ok.with("Authorization", "bearer whatever"), 201, "", ""},
		{"charset parameter", &Config{}, ok.with("Content-Type", "application/json; charset=utf-8"), 201, "", ""},
		{"no client-request-id", &Config{}, ok.with("client-request-id", ""), 201, "", ""},
		{"no prefix", &Config{}, ok.to("POST", strings.TrimPrefix(ok.path, "/beta")), 201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			if tt.cfg != nil {
				c = *tt.cfg
			}
			_, srv := newEmulatorServer(t, c)
			resp, body := tt.req.send(t, srv)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if tt.wantStatus == 405 && resp.Header.Get("Allow") != "GET, POST" {
				t.Errorf("Allow %q, want GET, POST", resp.Header.Get("Allow"))
			}
			if tt.wantCode == "" {
				return
			}
			if code := graphErrorCode(t, body); code != tt.wantCode {
				t.Errorf("code %q, want %q", code, tt.wantCode)
			}
			if !strings.Contains(string(body), tt.wantInMsg) {
				t.Errorf("message does not say %q: %s", tt.wantInMsg, body)
			}
		})
	}
}

func TestCreated(t *testing.T) {
	_, srv := newEmulatorServer(t, Config{})
	crid := uuid.NewString()
	resp, body := validRequest(crid).send(t, srv)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("client-request-id"); got != crid {
		t.Errorf("client-request-id %q, want %q", got, crid)
	}
	if got := resp.Header.Get("request-id"); !schema.IsGUID(got) {
		t.Errorf("request-id %q is not a GUID", got)
	}
	if _, err := http.ParseTime(resp.Header.Get("Date")); err != nil {
		t.Errorf("Date: %v", err)
	}

	var created map[string]any
	if err := json.Unmarshal(body, &created); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	if id, _ := created["id"].(string); !schema.IsGUID(id) {
		t.Errorf("id %q is not a GUID", id)
	}
	wantContext := srv.URL + "/beta/$metadata#deviceManagement/hardwareConfigurations('" + testConfigID + "')/userRunStates/$entity"
	if created["@odata.context"] != wantContext {
		t.Errorf("@odata.context %q, want %q", created["@odata.context"], wantContext)
	}
	// The rest is the entity as posted.
	delete(created, "@odata.context")
	checkPosted(t, created)
}

// checkPosted fails t unless entity, but for its id, is the test body as posted.
func checkPosted(t *testing.T, entity map[string]any) {
	t.Helper()
	var posted map[string]any
	if err := json.Unmarshal(testBody(), &posted); err != nil {
		t.Fatal(err)
	}
	got := maps.Clone(entity)
	delete(got, "id")
	if !reflect.DeepEqual(got, posted) {
		t.Errorf("entity %v, want %v as posted", got, posted)
	}
}

func TestDuplicates(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{})
	twice, once := uuid.NewString(), uuid.NewString()
	for _, crid := range []string{twice, once, strings.ToUpper(twice), "", ""} {
		if resp, body := validRequest(crid).with("client-request-id", crid).send(t, srv); resp.StatusCode != 201 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	if got := e.CreatesFor(twice); got != 2 {
		t.Errorf("CreatesFor(twice) = %d, want 2", got)
	}
	if got := e.CreatesFor(once); got != 1 {
		t.Errorf("CreatesFor(once) = %d, want 1", got)
	}
	if got := e.CreatesFor("not a GUID"); got != 0 {
		t.Errorf("CreatesFor(not a GUID) = %d, want 0", got)
	}
	want := Stats{Requests: 5, Creates: 5, Duplicates: 1}
	if got := e.Stats(); got != want {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

// statusSequence sends n creates with one client-request-id and lists the statuses.
func statusSequence(t *testing.T, srv *httptest.Server, crid string, n int) []int {
	t.Helper()
	var got []int
	for range n {
		resp, _ := validRequest(crid).send(t, srv)
		got = append(got, resp.StatusCode)
	}
	return got
}

func TestInjectedFaults(t *testing.T) {
	tests := []struct {
		name           string
		cfg            Config
		want           []int
		wantRetryAfter string // of the first answer
	}{
		{"throttle first", Config{ThrottleFirst: 2, RetryAfter: 1500 * time.Millisecond}, []int{429, 429, 201}, "1.500"},
		{"omit Retry-After", Config{ThrottleFirst: 1, RetryAfter: time.Second, OmitRetryAfter: true}, []int{429, 201}, ""},
		{"fail first", Config{FailFirst: 2}, []int{503, 503, 201}, ""},
		{"fail first 502", Config{FailFirst: 1, FailStatus: 502}, []int{502, 201}, ""},
		{"fail first 509", Config{FailFirst: 1, FailStatus: 509}, []int{509, 201}, ""},
		{"throttle then fail", Config{ThrottleFirst: 1, FailFirst: 1, FailStatus: 504, RetryAfter: 2 * time.Second}, []int{429, 504, 201}, "2"},
		{"throttle rate 1", Config{ThrottleRate: 1, RetryAfter: 250 * time.Millisecond}, []int{429, 429}, "0.250"},
		{"error rate 1", Config{ErrorRate: 1}, []int{503, 503}, ""},
		{"outage", Config{Outage: true, RetryAfter: time.Second}, []int{503, 503}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := newEmulatorServer(t, tt.cfg)
			// Every client-request-id gets the same sequence.
			for range 2 {
				crid := uuid.NewString()
				resp, body := validRequest(crid).send(t, srv)
				if got := resp.Header.Get("Retry-After"); got != tt.wantRetryAfter {
					t.Errorf("Retry-After %q, want %q", got, tt.wantRetryAfter)
				}
				if resp.StatusCode != 201 {
					graphErrorCode(t, body)
				}
				got := append([]int{resp.StatusCode}, statusSequence(t, srv, crid, len(tt.want)-1)...)
				if !reflect.DeepEqual(got, tt.want) {
					t.Errorf("statuses %v, want %v", got, tt.want)
				}
			}
		})
	}
}

// TestSeed: the rates are drawn from the seeded generator, so a seed gives the same
// answers, each of the statuses the rate can give.
func TestSeed(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		statuses []int
	}{
		{"error rate", Config{ErrorRate: 0.5, Seed: 7}, []int{201, 503}},
		{"ambiguous rate", Config{AmbiguousRate: 0.5, AmbiguousFaults: []string{Fault500, Fault504}, Seed: 3}, []int{201, 500, 504}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, a := newEmulatorServer(t, tt.cfg)
			_, b := newEmulatorServer(t, tt.cfg)
			seqA := statusSequence(t, a, uuid.NewString(), 32)
			seqB := statusSequence(t, b, uuid.NewString(), 32)
			if !reflect.DeepEqual(seqA, seqB) {
				t.Errorf("same seed, different answers:\n%v\n%v", seqA, seqB)
			}
			count := map[int]int{}
			for _, s := range seqA {
				count[s]++
			}
			total := 0
			for _, status := range tt.statuses {
				if count[status] == 0 {
					t.Errorf("no %d in %v", status, count)
				}
				total += count[status]
			}
			if total != len(seqA) {
				t.Errorf("answers %v, want only %v", count, tt.statuses)
			}
		})
	}
}

func TestRateLimit(t *testing.T) {
	clock := newFakeClock()
	e, srv := newEmulatorServer(t, Config{Rate: 4, Burst: 1}, WithClock(clock.Now))
	crid := uuid.NewString()
	if resp, body := validRequest(crid).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	clock.Advance(100 * time.Millisecond)
	resp, body := validRequest(crid).send(t, srv)
	if resp.StatusCode != 429 || graphErrorCode(t, body) != "TooManyRequests" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != "0.150" {
		t.Fatalf("Retry-After %q, want 0.150 (a token every 250ms, 100ms gone)", got)
	}
	// An unrelated change keeps the bucket as it is.
	e.SetConfig(Config{Rate: 4, Burst: 1, Latency: time.Microsecond})
	if resp, _ := validRequest(crid).send(t, srv); resp.StatusCode != 429 {
		t.Fatalf("status %d after an unrelated change, want 429", resp.StatusCode)
	}
	clock.Advance(150 * time.Millisecond)
	if resp, body := validRequest(crid).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("status %d after waiting as told: %s", resp.StatusCode, body)
	}
	if got := e.Stats(); got.Throttled != 2 || got.Creates != 2 {
		t.Errorf("Stats() = %+v", got)
	}
}

// SetConfig while requests are in flight: run with -race.
func TestSetConfigWhileRunning(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 201 && resp.StatusCode != 503 {
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		})
	}
	for i := range 20 {
		e.SetConfig(Config{Outage: i%2 == 0, Rate: float64(i + 1000), Burst: 1000, NotFoundIDs: []string{uuid.NewString()}})
		_ = e.Config()
	}
	wg.Wait()
	st := e.Stats()
	if st.Requests != 80 || st.Creates+st.ServerErrors != 80 {
		t.Errorf("Stats() = %+v", st)
	}

	e.SetConfig(Config{Outage: true})
	if got := statusSequence(t, srv, uuid.NewString(), 1); got[0] != 503 {
		t.Errorf("outage on: %v", got)
	}
	e.SetConfig(Config{})
	if got := statusSequence(t, srv, uuid.NewString(), 1); got[0] != 201 {
		t.Errorf("outage off: %v", got)
	}
}

func TestConfigIsCopied(t *testing.T) {
	ids := []string{testConfigID}
	e := New(Config{NotFoundIDs: ids})
	ids[0] = "changed"
	got := e.Config()
	got.NotFoundIDs[0] = "changed too"
	if e.Config().NotFoundIDs[0] != testConfigID {
		t.Errorf("configuration shares memory with its callers")
	}
}

func control(t *testing.T, srv *httptest.Server, method, path, body string) (int, []byte) {
	t.Helper()
	resp, answer := rawRequest{}.to(method, path).withBody(body).send(t, srv)
	return resp.StatusCode, answer
}

func TestControl(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{})
	put := `{"token":"t","latency":"1.5ms","rate":5,"burst":2,"window":{"limit":100,"per":"20s"},"retryAfter":"2.128s","omitRetryAfter":true,` +
		`"throttleFirst":1,"failFirst":2,"failStatus":502,"errorRate":0.25,"throttleRate":0.5,"ambiguousRate":0.125,"ambiguousFaults":["hang","500"],"seed":42,` +
		`"outage":true,"outageFor":"1m0s","forbidden":true,"notFoundIds":["` + testConfigID + `"],"rejectIds":[],"failIds":null,` +
		`"throttleIds":["` + testConfigID + `"],"refuseFilter":501,"pageSize":7}`
	want := Config{
		Token: "t", Latency: 1500 * time.Microsecond, Rate: 5, Burst: 2, Window: Window{Limit: 100, Per: 20 * time.Second}, RetryAfter: 2128 * time.Millisecond,
		OmitRetryAfter: true, ThrottleFirst: 1, FailFirst: 2, FailStatus: 502, ErrorRate: 0.25,
		ThrottleRate: 0.5, AmbiguousRate: 0.125, AmbiguousFaults: []string{FaultHang, Fault500}, Seed: 42, Outage: true, OutageFor: time.Minute, Forbidden: true, NotFoundIDs: []string{testConfigID}, RejectIDs: []string{},
		ThrottleIDs: []string{testConfigID}, RefuseFilter: 501, PageSize: 7,
	}
	if status, body := control(t, srv, "PUT", "/_emulator/config", put); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	if got := e.Config(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after PUT: %+v\nwant %+v", got, want)
	}
	status, body := control(t, srv, "GET", "/_emulator/config", "")
	if status != 200 {
		t.Fatalf("GET: %d %s", status, body)
	}
	var back map[string]any
	if err := json.Unmarshal(body, &back); err != nil {
		t.Fatal(err)
	}
	var sent map[string]any
	if err := json.Unmarshal([]byte(put), &sent); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, sent) {
		t.Errorf("GET answered %s\nwant %s", body, put)
	}

	// PATCH changes what it names; PUT replaces all.
	if status, body := control(t, srv, "PATCH", "/_emulator/config", `{"outage":false,"latency":"0s","window":{"limit":50}}`); status != 200 {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	want.Outage, want.Latency, want.Window.Limit = false, 0, 50
	if got := e.Config(); !reflect.DeepEqual(got, want) {
		t.Errorf("after PATCH: %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{
		`{"outage":true,"latencyMs":5}`,
		`{"latency":"5 parsecs"}`,
		`{"latency":5}`,
		`{"errorRate":1.5}`,
		`{"failStatus":404}`,
		`{"rate":-1}`,
		`{"notFoundIds":["x"]}`,
		`{"window":{"limit":5,"per":"0s"}}`,
		`{"ambiguousRate":2}`,
		`{"ambiguousFaults":["500","crash"]}`,
		`{"refuseFilter":404}`,
		`{"pageSize":-1}`,
		`{"window":{"limit":5,"per":"soon"}}`,
		`{"window":{"limit":-1,"per":"1s"}}`,
		`{"window":{"limit":5,"per":"1s","burst":1}}`,
		`{"failIds":["` + testConfigID + `","y"]}`,
		`{"outage":true} {}`,
		`[]`,
	} {
		if status, body := control(t, srv, "PUT", "/_emulator/config", bad); status != 400 || !strings.Contains(string(body), `"code":"BadRequest"`) {
			t.Errorf("PUT %s: %d %s", bad, status, body)
		}
		if status, _ := control(t, srv, "PATCH", "/_emulator/config", bad); status != 400 {
			t.Errorf("PATCH %s: %d", bad, status)
		}
	}
	if got := e.Config(); !reflect.DeepEqual(got, want) {
		t.Errorf("refused changes changed the configuration: %+v", got)
	}
	if status, body := control(t, srv, "PUT", "/_emulator/config", `{}`); status != 200 || !reflect.DeepEqual(e.Config(), Config{}) {
		t.Errorf("PUT {}: %d %s, config %+v", status, body, e.Config())
	}

	validRequest(uuid.NewString()).send(t, srv)
	status, body = control(t, srv, "GET", "/_emulator/stats", "")
	var stats Stats
	if err := json.Unmarshal(body, &stats); status != 200 || err != nil {
		t.Fatalf("GET stats: %d %v %s", status, err, body)
	}
	if stats != e.Stats() || stats.Creates != 1 || !strings.Contains(string(body), `"serverErrors":0`) {
		t.Errorf("stats %s, Stats() %+v", body, e.Stats())
	}
	if status, _ := control(t, srv, "POST", "/_emulator/stats", ""); status != 405 {
		t.Errorf("POST stats: %d, want 405", status)
	}
	if status, _ := control(t, srv, "GET", "/_emulator/nothing", ""); status != 404 {
		t.Errorf("GET nothing: %d, want 404", status)
	}
	if e.Stats().Requests != 1 {
		t.Errorf("control requests counted as Graph requests: %+v", e.Stats())
	}
}

func TestOutageWindow(t *testing.T) {
	const window = time.Second
	clock := newFakeClock()
	e, srv := newEmulatorServer(t, Config{Token: testToken, OutageFor: window}, WithClock(clock.Now))
	if resp, body := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 503 {
		t.Fatalf("in the window: %d %s", resp.StatusCode, body)
	}
	// Changing another field keeps the window where it was.
	if status, body := control(t, srv, "PATCH", "/_emulator/config", `{"latency":"1ms"}`); status != 200 {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	clock.Advance(window - time.Nanosecond)
	if resp, body := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 503 {
		t.Fatalf("at the window's last instant: %d %s", resp.StatusCode, body)
	}
	clock.Advance(time.Nanosecond)
	if resp, body := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 201 {
		t.Fatalf("after the window: %d %s", resp.StatusCode, body)
	}
	// A new OutageFor starts a new window.
	if status, body := control(t, srv, "PATCH", "/_emulator/config", `{"outageFor":"1h"}`); status != 200 {
		t.Fatalf("PATCH: %d %s", status, body)
	}
	if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 503 {
		t.Fatalf("in the new window: %d", resp.StatusCode)
	}
	if s := e.Stats(); s.ServerErrors != 3 || s.Creates != 1 {
		t.Errorf("stats %+v", s)
	}
}
