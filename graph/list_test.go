package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

// listGraph answers list requests as Graph documents them: the collection in pages
// ({"value":[...],"@odata.nextLink":...} with a $skiptoken), $top capping a page, and
// $filter=upn eq '...' honoured, refused or ignored.
type listGraph struct {
	states []UserState
	page   int // the page size without $top
	// filter is the status answered to a $filter; 0 honours it, 200 ignores it.
	filter int
	// answer, when set, answers request n (from 1) instead of the collection.
	answer func(w http.ResponseWriter, r *http.Request, n int) bool

	mu   sync.Mutex
	reqs []*http.Request
}

func (g *listGraph) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.reqs = append(g.reqs, r)
	n := len(g.reqs)
	g.mu.Unlock()
	if g.answer != nil && g.answer(w, r, n) {
		return
	}
	q := r.URL.Query()
	states := g.states
	if f, ok := q["$filter"]; ok {
		switch g.filter {
		case 0:
			upn, ok := parseUPNFilter(f[0])
			if !ok {
				writeGraphError(w, 400, "BadRequest")
				return
			}
			states = nil
			for _, s := range g.states {
				if strings.EqualFold(s.UPN, upn) {
					states = append(states, s)
				}
			}
		case 200:
		default:
			writeGraphError(w, g.filter, "NotSupported")
			return
		}
	}
	size := g.page
	if top := q.Get("$top"); top != "" {
		size, _ = strconv.Atoi(top)
	}
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	end := min(skip+size, len(states))
	body := map[string]any{"value": append([]UserState{}, states[skip:end]...)}
	if end < len(states) {
		q.Set("$skiptoken", strconv.Itoa(end))
		body["@odata.nextLink"] = "http://" + r.Host + r.URL.Path + "?" + q.Encode()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func (g *listGraph) requests() []*http.Request {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*http.Request(nil), g.reqs...)
}

// parseUPNFilter reads upn eq '...', the one filter Graph is asked for.
func parseUPNFilter(f string) (string, bool) {
	lit, ok := strings.CutPrefix(f, "upn eq '")
	if !ok || !strings.HasSuffix(lit, "'") {
		return "", false
	}
	return strings.ReplaceAll(strings.TrimSuffix(lit, "'"), "''", "'"), true
}

func writeGraphError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", uuid.NewString())
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":{"code":%q,"message":"m"}}`, code)
}

// listedState is testState as Graph lists it: with an id, its time in UTC.
func listedState(id, upn string) UserState {
	return UserState{
		ID: id, UPN: upn, UserEmail: testState.UserEmail, UserName: testState.UserName,
		LastStateUpdateDateTime: "2017-01-01T08:02:58.4418045Z",
		SuccessfulDeviceCount:   testState.SuccessfulDeviceCount, FailedDeviceCount: testState.FailedDeviceCount,
		PendingDeviceCount: testState.PendingDeviceCount, ErrorDeviceCount: testState.ErrorDeviceCount,
		NotApplicableDeviceCount: testState.NotApplicableDeviceCount, UnknownDeviceCount: testState.UnknownDeviceCount,
	}
}

// someStates is n states of other users around those of upn, which are at positions
// 1, n/2 and n-1 and differ in the case of their UPN.
func someStates(n int, upn string) []UserState {
	states := make([]UserState, n)
	for i := range states {
		states[i] = listedState(fmt.Sprint("id-", i), fmt.Sprintf("user%d@contoso.com", i))
	}
	states[1].UPN, states[n/2].UPN, states[n-1].UPN = upn, strings.ToUpper(upn), upn
	return states
}

func ids(states []UserState) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = st.ID
	}
	return strings.Join(s, ",")
}

func TestListUserStates(t *testing.T) {
	const upn = "o'neil@contoso.com"
	retryLater := func(w http.ResponseWriter, _ *http.Request, n int) bool {
		if n != 2 {
			return false
		}
		w.Header().Set("Retry-After", "3")
		writeGraphError(w, 429, "TooManyRequests")
		return true
	}
	tests := []struct {
		name      string
		graph     *listGraph
		wantIDs   string
		wantReqs  int // requests that reached Graph
		wantQuery []string
		wantClass Class
		wantCode  int
		wantErr   error
	}{
		{name: "filtered, one page", graph: &listGraph{states: someStates(10, upn), page: 100},
			wantIDs: "id-1,id-5,id-9", wantReqs: 1, wantClass: Listed, wantCode: 200,
			wantQuery: []string{"$filter=upn%20eq%20%27o%27%27neil%40contoso.com%27"}},
		{name: "filtered, paged", graph: &listGraph{states: someStates(10, upn), page: 2},
			wantIDs: "id-1,id-5,id-9", wantReqs: 2, wantClass: Listed, wantCode: 200},
		{name: "filter refused with 400", graph: &listGraph{states: someStates(10, upn), page: 4, filter: 400},
			wantIDs: "id-1,id-5,id-9", wantReqs: 2, wantClass: Listed, wantCode: 200,
			wantQuery: []string{"$filter=upn%20eq%20%27o%27%27neil%40contoso.com%27", "$top=999"}},
		{name: "filter refused with 501, paged", graph: &listGraph{states: someStates(2500, upn), page: 4, filter: 501},
			wantIDs: "id-1,id-1250,id-2499", wantReqs: 4, wantClass: Listed, wantCode: 200,
			wantQuery: []string{"$filter=upn%20eq%20%27o%27%27neil%40contoso.com%27", "$top=999",
				"%24skiptoken=999&%24top=999", "%24skiptoken=1998&%24top=999"}},
		{name: "filter ignored", graph: &listGraph{states: someStates(10, upn), page: 100, filter: 200},
			wantIDs: "id-1,id-5,id-9", wantReqs: 1, wantClass: Listed, wantCode: 200},
		{name: "none", graph: &listGraph{states: someStates(10, "someone@contoso.com")[2:], page: 100},
			wantReqs: 1, wantClass: Listed, wantCode: 200},
		{name: "empty collection", graph: &listGraph{page: 100}, wantReqs: 1, wantClass: Listed, wantCode: 200},
		{name: "throttled on page 2", graph: &listGraph{states: someStates(10, upn), page: 2, answer: retryLater},
			wantReqs: 2, wantClass: Transient, wantCode: 429},
		{name: "503", graph: &listGraph{answer: answerStatus(503, "ServiceUnavailable")},
			wantReqs: 1, wantClass: Transient, wantCode: 503},
		{name: "500", graph: &listGraph{answer: answerStatus(500, "InternalServerError")},
			wantReqs: 1, wantClass: Transient, wantCode: 500},
		{name: "403 is unavailable", graph: &listGraph{answer: answerStatus(403, "Forbidden")},
			wantReqs: 1, wantClass: Systemic, wantCode: 403, wantErr: ErrListUnavailable},
		{name: "404 is unavailable", graph: &listGraph{answer: answerStatus(404, "ResourceNotFound")},
			wantReqs: 1, wantClass: Rejected, wantCode: 404, wantErr: ErrListUnavailable},
		{name: "405 is unavailable", graph: &listGraph{answer: answerStatus(405, "MethodNotAllowed")},
			wantReqs: 1, wantClass: Systemic, wantCode: 405, wantErr: ErrListUnavailable},
		{name: "unfiltered refused too", graph: &listGraph{answer: answerStatus(400, "BadRequest")},
			wantReqs: 2, wantClass: Rejected, wantCode: 400, wantErr: ErrListUnavailable},
		{name: "not a collection", graph: &listGraph{answer: answerBody(`{"id":"x"}`)},
			wantReqs: 1, wantClass: Listed, wantCode: 200, wantErr: ErrListUnavailable},
		{name: "not JSON", graph: &listGraph{answer: answerBody(`<html>`)},
			wantReqs: 1, wantClass: Listed, wantCode: 200, wantErr: ErrListUnavailable},
		{name: "page too large", graph: &listGraph{answer: answerBody(`{"value":[],"x":"` + strings.Repeat("a", maxListPage) + `"}`)},
			wantReqs: 1, wantErr: ErrListUnavailable},
		{name: "nextLink loops", graph: &listGraph{answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
			_, _ = fmt.Fprintf(w, `{"value":[],"@odata.nextLink":"http://%s%s?$skiptoken=x"}`, r.Host, r.URL.Path)
			return true
		}}, wantReqs: maxListPages, wantClass: Listed, wantCode: 200, wantErr: ErrListUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.graph)
			defer srv.Close()
			c := &Client{BaseURL: srv.URL + "/beta/", Tokens: StaticToken(testToken)}
			paced := 0
			req := ListRequest{ConfigurationID: testConfigID, UPN: upn, ClientRequestID: ClientRequestID("e"),
				Pace: func(context.Context) error { paced++; return nil }}
			states, resp, err := c.ListUserStates(context.Background(), req)
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if ids(states) != tt.wantIDs || resp.Status != tt.wantCode || resp.Class != tt.wantClass {
				t.Errorf("states %q, answer %d %v; want %q, %d %v", ids(states), resp.Status, resp.Class, tt.wantIDs, tt.wantCode, tt.wantClass)
			}
			reqs := tt.graph.requests()
			if len(reqs) != tt.wantReqs || paced != tt.wantReqs {
				t.Errorf("%d requests, paced %d; want %d", len(reqs), paced, tt.wantReqs)
			}
			for i, q := range tt.wantQuery {
				if i < len(reqs) && reqs[i].URL.RawQuery != q {
					t.Errorf("request %d: query %s, want %s", i+1, reqs[i].URL.RawQuery, q)
				}
			}
			for i, r := range reqs {
				if r.Method != http.MethodGet || r.URL.Path != createPath(testConfigID) ||
					r.Header.Get("Authorization") != "Bearer "+testToken || r.Header.Get("Accept") != "application/json" ||
					r.Header.Get("client-request-id") != req.ClientRequestID || r.ContentLength != 0 {
					t.Errorf("request %d: %s %s %v", i+1, r.Method, r.URL, r.Header)
				}
			}
			if err != nil && strings.Contains(err.Error(), "neil") {
				t.Errorf("error shows the UPN: %v", err)
			}
		})
	}
}

func answerStatus(status int, code string) func(http.ResponseWriter, *http.Request, int) bool {
	return func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		writeGraphError(w, status, code)
		return true
	}
}

func answerBody(body string) func(http.ResponseWriter, *http.Request, int) bool {
	return func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		_, _ = w.Write([]byte(body))
		return true
	}
}

func TestListUserStatesRetryAfter(t *testing.T) {
	srv := httptest.NewServer(&listGraph{answer: func(w http.ResponseWriter, _ *http.Request, _ int) bool {
		w.Header().Set("Retry-After", "2.5")
		writeGraphError(w, 429, "TooManyRequests")
		return true
	}})
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
	_, resp, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"})
	if err != nil || resp.Class != Transient || !resp.HasRetryAfter || resp.RetryAfter != 2500*time.Millisecond ||
		resp.Error == nil || resp.Error.Code != "TooManyRequests" || resp.RequestID == "" {
		t.Errorf("%+v %v", resp, err)
	}
}

// The token goes to Graph's host only: a nextLink elsewhere ends the listing.
func TestListUserStatesStaysOnTheHost(t *testing.T) {
	elsewhere := &listGraph{page: 10}
	other := httptest.NewServer(elsewhere)
	defer other.Close()
	for _, link := range []string{other.URL + "/beta/x", "https://" + strings.TrimPrefix(other.URL, "http://"), "http://evil.example/x"} {
		g := &listGraph{answer: func(w http.ResponseWriter, _ *http.Request, _ int) bool {
			_, _ = fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, link)
			return true
		}}
		srv := httptest.NewServer(g)
		c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
		_, _, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"})
		srv.Close()
		if !errors.Is(err, ErrListUnavailable) || len(g.requests()) != 1 {
			t.Errorf("nextLink %s: %v after %d requests; want ErrListUnavailable after 1", link, err, len(g.requests()))
		}
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("%d requests went to another host", n)
	}
}

// A relative nextLink stays on the host and is followed.
func TestListUserStatesRelativeNextLink(t *testing.T) {
	g := &listGraph{answer: func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n == 1 {
			_, _ = fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, r.URL.Path+"?$skiptoken=1")
		} else {
			_, _ = fmt.Fprintf(w, `{"value":[{"id":"found","upn":"a@b"}]}`)
		}
		return true
	}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
	states, _, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"})
	if err != nil || ids(states) != "found" || g.requests()[1].URL.Query().Get("$skiptoken") != "1" {
		t.Errorf("%v %v", ids(states), err)
	}
}

func TestListUserStatesUnauthorized(t *testing.T) {
	g := &listGraph{page: 10, states: someStates(4, "a@b"), answer: func(w http.ResponseWriter, r *http.Request, _ int) bool {
		if r.Header.Get("Authorization") == "Bearer "+testToken {
			return false
		}
		writeGraphError(w, 401, "InvalidAuthenticationToken")
		return true
	}}
	srv := httptest.NewServer(g)
	defer srv.Close()
	for _, tt := range []struct {
		tokens    *tokens
		wantClass Class
	}{
		{&tokens{seq: []string{"expired", testToken}}, Listed},
		{&tokens{seq: []string{"wrong", "still wrong"}}, Systemic},
	} {
		c := &Client{BaseURL: srv.URL, Tokens: tt.tokens}
		_, resp, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"})
		if err != nil || resp.Class != tt.wantClass || tt.tokens.forced.Load() != 1 {
			t.Errorf("tokens %v: %d %v %v, %d forced", tt.tokens.seq, resp.Status, resp.Class, err, tt.tokens.forced.Load())
		}
	}
}

// TestListUserStatesErrors covers listings without an answer: errors as Create's, never
// ErrListUnavailable (the caller retries), never ErrAmbiguous, never the UPN.
func TestListUserStatesErrors(t *testing.T) {
	const upn = "secret.person@contoso.com"
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	slow := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer slow.Close()
	errPace := errors.New("stopping")
	tests := []struct {
		name   string
		base   string
		id     string
		tokens TokenSource
		pace   func(context.Context) error
		want   error
	}{
		{name: "timeout", base: slow.URL, want: context.DeadlineExceeded},
		{name: "connection refused", base: closed.URL},
		{name: "no token", base: closed.URL, tokens: failingTokens{errors.New("down")}, want: ErrNoToken},
		{name: "pace", base: closed.URL, pace: func(context.Context) error { return errPace }, want: errPace},
		{name: "bad configuration id", base: closed.URL, id: "../x", want: ErrInvalidConfigurationID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := tt.tokens
			if ts == nil {
				ts = StaticToken(testToken)
			}
			id := tt.id
			if id == "" {
				id = testConfigID
			}
			c := &Client{BaseURL: tt.base, Tokens: ts, Timeout: 50 * time.Millisecond}
			states, resp, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: id, UPN: upn, Pace: tt.pace})
			if err == nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrListUnavailable) || errors.Is(err, ErrAmbiguous) || states != nil || resp.Status != 0 {
				t.Errorf("%v, %v %+v", err, states, resp)
			}
			for _, secret := range []string{"secret.person", url.QueryEscape(upn), testToken} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows %q: %v", secret, err)
				}
			}
		})
	}
}

func TestListUserStatesFreshClientRequestID(t *testing.T) {
	g := &listGraph{page: 1, states: someStates(3, "a@b")}
	srv := httptest.NewServer(g)
	defer srv.Close()
	c := &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}
	for range 2 {
		if _, _, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"}); err != nil {
			t.Fatal(err)
		}
	}
	reqs := g.requests() // 3 pages per listing
	first, second := reqs[0].Header.Get("client-request-id"), reqs[3].Header.Get("client-request-id")
	if !schema.IsGUID(first) || first == second || reqs[1].Header.Get("client-request-id") != first {
		t.Errorf("client-request-ids %q, %q, %q", first, reqs[1].Header.Get("client-request-id"), second)
	}
}

func TestBatcherListsWithoutBatching(t *testing.T) {
	g := &listGraph{page: 10, states: someStates(4, "a@b")}
	srv := httptest.NewServer(g)
	defer srv.Close()
	b := &Batcher{Client: &Client{BaseURL: srv.URL, Tokens: StaticToken(testToken)}, Linger: time.Minute}
	states, resp, err := b.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: "a@b"})
	if err != nil || resp.Class != Listed || ids(states) != "id-1,id-2,id-3" || g.requests()[0].URL.Path != "/"+userRunStatesPath(testConfigID) {
		t.Errorf("%q %+v %v", ids(states), resp, err)
	}
}

func TestUserStateMatches(t *testing.T) {
	tests := []struct {
		name   string
		change func(*UserState)
		want   bool
	}{
		{"as listed, in UTC", func(*UserState) {}, true},
		{"as sent", func(s *UserState) { s.LastStateUpdateDateTime = testState.LastStateUpdateDateTime }, true},
		{"lower-case t and z", func(s *UserState) { s.LastStateUpdateDateTime = "2017-01-01t08:02:58.4418045z" }, true},
		{"another zone", func(s *UserState) { s.LastStateUpdateDateTime = "2017-01-01T09:32:58.4418045+01:30" }, true},
		{"100 ns later", func(s *UserState) { s.LastStateUpdateDateTime = "2017-01-01T08:02:58.4418046Z" }, false},
		{"not a time", func(s *UserState) { s.LastStateUpdateDateTime = "yesterday" }, false},
		{"no time", func(s *UserState) { s.LastStateUpdateDateTime = "" }, false},
		{"upn in another case", func(s *UserState) { s.UPN = strings.ToUpper(s.UPN) }, false},
		{"userEmail", func(s *UserState) { s.UserEmail = "x" + s.UserEmail }, false},
		{"userName", func(s *UserState) { s.UserName += " " }, false},
		{"successfulDeviceCount", func(s *UserState) { s.SuccessfulDeviceCount++ }, false},
		{"failedDeviceCount", func(s *UserState) { s.FailedDeviceCount++ }, false},
		{"pendingDeviceCount", func(s *UserState) { s.PendingDeviceCount++ }, false},
		{"errorDeviceCount", func(s *UserState) { s.ErrorDeviceCount++ }, false},
		{"notApplicableDeviceCount", func(s *UserState) { s.NotApplicableDeviceCount++ }, false},
		{"unknownDeviceCount", func(s *UserState) { s.UnknownDeviceCount-- }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := listedState("id", testState.UPN)
			tt.change(&s)
			if got := s.Matches(&testState); got != tt.want {
				t.Errorf("Matches = %v, want %v (%+v)", got, tt.want, s)
			}
		})
	}
	// Fewer fractional digits, the same instant.
	want := testState
	want.LastStateUpdateDateTime = "2017-01-01T00:02:58.44-08:00"
	s := listedState("id", testState.UPN)
	s.LastStateUpdateDateTime = "2017-01-01T08:02:58.4400000Z"
	if !s.Matches(&want) {
		t.Errorf("%s does not match %s", s.LastStateUpdateDateTime, want.LastStateUpdateDateTime)
	}
}

// A created entity, read back from the body Graph answered to the create, matches.
func TestUserStateFromCreateBodyMatches(t *testing.T) {
	var s UserState
	if err := json.Unmarshal(testBody(), &s); err != nil || !s.Matches(&testState) {
		t.Errorf("%+v %v", s, err)
	}
}
