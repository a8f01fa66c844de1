package emulator

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	rejectID   = "00000000-0000-4000-8000-000000000400"
	notFoundID = "00000000-0000-4000-8000-000000000404"
	throttleID = "00000000-0000-4000-8000-000000000429"
)

// subReq is one sub-request of a $batch as a test writes it.
func subReq(id, configID string) map[string]any {
	return map[string]any{
		"id": id, "method": "POST",
		"url":     "/deviceManagement/hardwareConfigurations/" + configID + "/userRunStates",
		"headers": map[string]string{"Content-Type": "application/json", "client-request-id": uuid.NewString()},
		"body":    json.RawMessage(testBody()),
	}
}

func batchOf(subs ...map[string]any) string {
	b, _ := json.Marshal(map[string]any{"requests": subs})
	return string(b)
}

func TestBatchStrictness(t *testing.T) {
	many := make([]map[string]any, maxBatch+1)
	for i := range many {
		many[i] = subReq(fmt.Sprint(i), testConfigID)
	}
	noType := subReq("1", testConfigID)
	noType["headers"] = map[string]string{"client-request-id": uuid.NewString()}
	noURL := subReq("1", testConfigID)
	delete(noURL, "url")
	ok := batchRequestOf(subReq("1", testConfigID))
	cases := []struct {
		name     string
		cfg      Config
		req      rawRequest
		status   int
		contains string
	}{
		{"one request", Config{}, ok, 200, `"status":201`},
		{"escaped dollar", Config{}, ok.to("POST", "/beta/%24batch"), 200, `"status":201`},
		{"more than 20", Config{}, ok.withBody(batchOf(many...)), 400, "exceeds"},
		{"no requests", Config{}, ok.withBody(`{"requests":[]}`), 400, "no requests"},
		{"duplicate ids", Config{}, ok.withBody(batchOf(subReq("1", testConfigID), subReq("1", testConfigID))), 400, "used twice"},
		{"body without Content-Type", Config{}, ok.withBody(batchOf(noType)), 400, "Content-Type"},
		{"no url", Config{}, ok.withBody(batchOf(noURL)), 400, "no method or no url"},
		{"bad JSON", Config{}, ok.withBody(`{"requests":[`), 400, "not a batch"},
		{"unknown field", Config{}, ok.withBody(`{"requests":[],"x":1}`), 400, "not a batch"},
		{"trailing data", Config{}, ok.withBody(batchOf(subReq("1", testConfigID)) + `{}`), 400, "after the batch"},
		{"GET", Config{}, ok.to("GET", "/beta/$batch"), 405, "MethodNotAllowed"},
		{"no token", Config{}, ok.with("Authorization", ""), 401, "InvalidAuthenticationToken"},
		{"outage", Config{Outage: true}, ok, 503, "ServiceUnavailable"},
		{"outage window", Config{OutageFor: time.Hour}, ok, 503, "ServiceUnavailable"},
		{"not JSON", Config{}, ok.with("Content-Type", "text/plain"), 415, "UnsupportedMediaType"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Token = testToken
			e, srv := newEmulatorServer(t, tt.cfg)
			resp, body := tt.req.send(t, srv)
			if resp.StatusCode != tt.status || !strings.Contains(string(body), tt.contains) {
				t.Fatalf("%d %s; want %d with %q", resp.StatusCode, body, tt.status, tt.contains)
			}
			if s := e.Stats(); s.Batches != 1 || s.Requests != 1 {
				t.Errorf("stats %+v: want 1 batch and 1 request", s)
			}
		})
	}
}

// TestEmulatorBatchSubResponses sends sub-requests of every fate in one $batch: each is
// answered as if alone, and counted.
func TestBatchSubResponses(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{
		Token: testToken, RejectIDs: []string{rejectID}, NotFoundIDs: []string{notFoundID},
		ThrottleIDs: []string{throttleID}, RetryAfter: 1500 * time.Millisecond,
	})
	get := subReq("get", testConfigID)
	get["method"] = "GET"
	delete(get, "body")
	get["headers"] = map[string]string{}
	absolute := subReq("abs", testConfigID)
	absolute["url"] = srv.URL + "/beta/deviceManagement/hardwareConfigurations/" + testConfigID + "/userRunStates"
	noSlash := subReq("noslash", testConfigID)
	noSlash["url"] = strings.TrimPrefix(noSlash["url"].(string), "/")
	req := batchRequestOf(subReq("ok", testConfigID), subReq("reject", rejectID), subReq("missing", notFoundID),
		subReq("throttle", throttleID), get, absolute, noSlash)
	answer := req.sendBatch(t, srv)
	want := map[string]int{"ok": 201, "reject": 400, "missing": 404, "throttle": 429, "get": 405, "abs": 400, "noslash": 201}
	got := map[string]batchSubResponse{}
	for _, r := range answer.Responses {
		got[r.ID] = r
	}
	for id, status := range want {
		r, ok := got[id]
		if !ok || r.Status != status {
			t.Errorf("%s: %+v, want status %d", id, r, status)
		}
	}
	if ra := got["throttle"].Headers["Retry-After"]; ra != "1.500" {
		t.Errorf("throttled sub-response Retry-After %q, want 1.500", ra)
	}
	if !strings.Contains(string(got["ok"].Body), `"@odata.context":"`+srv.URL+`/beta/$metadata#`) {
		t.Errorf("created body %s", got["ok"].Body)
	}
	if s := e.Stats(); s.Batches != 1 || s.Requests != 7 || s.Creates != 2 || s.Throttled != 1 || s.NotFound != 1 || s.BadRequests != 3 {
		t.Errorf("stats %+v", s)
	}
}
