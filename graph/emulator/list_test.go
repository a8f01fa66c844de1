package emulator

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

const otherConfigID = "7a0c2f5e-1d3b-4e6a-8c9d-0b1a2c3d4e5f"

func stateBody(upn string) []byte {
	s := testState
	s.UPN = upn
	return s.AppendGraphBody(nil)
}

// listRequest is a list of configID's user states with query ("" or "?...").
func listRequest(configID, query string) rawRequest {
	return rawRequest{method: http.MethodGet, path: createPath(configID) + query,
		header: map[string]string{"Authorization": "Bearer " + testToken}}
}

func filterQuery(filter string) string { return "?$filter=" + url.QueryEscape(filter) }

type listAnswer struct {
	Context  string           `json:"@odata.context"`
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"@odata.nextLink"`
}

func decodeList(t *testing.T, body []byte) listAnswer {
	t.Helper()
	var a listAnswer
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil || a.Value == nil {
		t.Fatalf("not a list page: %v: %s", err, body)
	}
	return a
}

// created sends a create that must succeed and returns the created entity.
func created(t *testing.T, srv *httptest.Server, req rawRequest) map[string]any {
	t.Helper()
	resp, body := req.send(t, srv)
	var entity map[string]any
	if resp.StatusCode != 201 || json.Unmarshal(body, &entity) != nil {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	return entity
}

// seededEmulator serves an emulator holding five states for ada, one for o'brien and two
// for bob under testConfigID, none under otherConfigID, then running with cfg.
func seededEmulator(t *testing.T, cfg Config, opts ...Option) (*Emulator, *httptest.Server) {
	t.Helper()
	e, srv := newEmulatorServer(t, Config{Token: testToken}, opts...)
	for _, upn := range []string{"ada@contoso.com", "bob@contoso.com", "ada@contoso.com", "o'brien@contoso.com",
		"ada@contoso.com", "ada@contoso.com", "bob@contoso.com", "ada@contoso.com"} {
		created(t, srv, validRequest(uuid.NewString()).withBody(string(stateBody(upn))))
	}
	if cfg.Token == "" {
		cfg.Token = testToken
	}
	e.SetConfig(cfg)
	return e, srv
}

func TestList(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		req       rawRequest
		status    int
		code      string
		upns      []string // of the page, in order
		wantNext  bool
		retryWant string // Retry-After of a 429
	}{
		{name: "all", req: listRequest(testConfigID, ""), status: 200,
			upns: []string{"ada@contoso.com", "bob@contoso.com", "ada@contoso.com", "o'brien@contoso.com", "ada@contoso.com", "ada@contoso.com", "bob@contoso.com", "ada@contoso.com"}},
		{name: "filter", req: listRequest(testConfigID, filterQuery("upn eq 'bob@contoso.com'")), status: 200,
			upns: []string{"bob@contoso.com", "bob@contoso.com"}},
		{name: "filter with a doubled quote", req: listRequest(testConfigID, filterQuery("upn eq 'o''brien@contoso.com'")), status: 200,
			upns: []string{"o'brien@contoso.com"}},
		{name: "filter ignores case", req: listRequest(testConfigID, filterQuery("UPN Eq 'BOB@contoso.com'")), status: 200,
			upns: []string{"bob@contoso.com", "bob@contoso.com"}},
		{name: "filter with %20 and spaces", req: listRequest(testConfigID, "?$filter=upn%20eq%20%20'bob%40contoso.com'%20"), status: 200,
			upns: []string{"bob@contoso.com", "bob@contoso.com"}},
		{name: "filter matching nothing", req: listRequest(testConfigID, filterQuery("upn eq 'eve@contoso.com'")), status: 200, upns: []string{}},
		{name: "$top", req: listRequest(testConfigID, "?$top=3"), status: 200,
			upns: []string{"ada@contoso.com", "bob@contoso.com", "ada@contoso.com"}, wantNext: true},
		{name: "$top with filter", req: listRequest(testConfigID, filterQuery("upn eq 'ada@contoso.com'")+"&$top=5"), status: 200,
			upns: []string{"ada@contoso.com", "ada@contoso.com", "ada@contoso.com", "ada@contoso.com", "ada@contoso.com"}},
		{name: "page size below $top", cfg: Config{PageSize: 2}, req: listRequest(testConfigID, "?$top=999"), status: 200,
			upns: []string{"ada@contoso.com", "bob@contoso.com"}, wantNext: true},
		{name: "other configuration", req: listRequest(otherConfigID, ""), status: 200, upns: []string{}},
		{name: "unknown query parameter ignored", req: listRequest(testConfigID, filterQuery("upn eq 'bob@contoso.com'")+"&x=1"), status: 200,
			upns: []string{"bob@contoso.com", "bob@contoso.com"}},

		{name: "quote not doubled", req: listRequest(testConfigID, filterQuery("upn eq 'o'brien@contoso.com'")), status: 400, code: "BadRequest"},
		{name: "other property", req: listRequest(testConfigID, filterQuery("userName eq 'Ada'")), status: 400, code: "BadRequest"},
		{name: "or", req: listRequest(testConfigID, filterQuery("upn eq 'a' or upn eq 'b'")), status: 400, code: "BadRequest"},
		{name: "function", req: listRequest(testConfigID, filterQuery("startswith(upn,'ada')")), status: 400, code: "BadRequest"},
		{name: "unquoted", req: listRequest(testConfigID, filterQuery("upn eq ada@contoso.com")), status: 400, code: "BadRequest"},
		{name: "empty filter", req: listRequest(testConfigID, "?$filter="), status: 400, code: "BadRequest"},
		{name: "$top 0", req: listRequest(testConfigID, "?$top=0"), status: 400, code: "BadRequest"},
		{name: "$top 1000", req: listRequest(testConfigID, "?$top=1000"), status: 400, code: "BadRequest"},
		{name: "$top not a number", req: listRequest(testConfigID, "?$top=all"), status: 400, code: "BadRequest"},
		{name: "$top twice", req: listRequest(testConfigID, "?$top=1&$top=2"), status: 400, code: "BadRequest"},
		{name: "$select", req: listRequest(testConfigID, "?$select=id"), status: 400, code: "BadRequest"},
		{name: "made-up $skiptoken", req: listRequest(testConfigID, "?$skiptoken=10"), status: 400, code: "BadRequest"},
		{name: "configuration id not a GUID", req: listRequest("nope", ""), status: 400, code: "BadRequest"},
		{name: "client-request-id not a GUID", req: listRequest(testConfigID, "").with("client-request-id", "x"), status: 400, code: "BadRequest"},

		{name: "filter refused 400", cfg: Config{RefuseFilter: 400}, req: listRequest(testConfigID, filterQuery("upn eq 'bob@contoso.com'")), status: 400, code: "BadRequest"},
		{name: "filter refused 501", cfg: Config{RefuseFilter: 501}, req: listRequest(testConfigID, filterQuery("upn eq 'bob@contoso.com'")), status: 501, code: "NotImplemented"},
		{name: "no filter while filters are refused", cfg: Config{RefuseFilter: 501, PageSize: 1}, req: listRequest(testConfigID, "?$top=999"), status: 200,
			upns: []string{"ada@contoso.com"}, wantNext: true},

		{name: "unknown configuration", cfg: Config{NotFoundIDs: []string{testConfigID}}, req: listRequest(testConfigID, ""), status: 404, code: "ResourceNotFound"},
		{name: "no token", req: listRequest(testConfigID, "").with("Authorization", ""), status: 401, code: "InvalidAuthenticationToken"},
		{name: "wrong token", req: listRequest(testConfigID, "").with("Authorization", "Bearer other"), status: 401, code: "InvalidAuthenticationToken"},
		{name: "outage", cfg: Config{Outage: true}, req: listRequest(testConfigID, ""), status: 503, code: "ServiceUnavailable"},
		{name: "outage window", cfg: Config{OutageFor: time.Hour}, req: listRequest(testConfigID, ""), status: 503, code: "ServiceUnavailable"},
		{name: "throttled", cfg: Config{ThrottleFirst: 1, RetryAfter: 3 * time.Second}, req: listRequest(testConfigID, ""), status: 429, code: "TooManyRequests", retryWant: "3"},
		{name: "error rate", cfg: Config{ErrorRate: 1}, req: listRequest(testConfigID, ""), status: 503, code: "ServiceUnavailable"},
		{name: "window full", cfg: Config{Window: Window{Limit: 1, Per: time.Minute}}, req: listRequest(testConfigID, ""), status: 200,
			upns: []string{"ada@contoso.com", "bob@contoso.com", "ada@contoso.com", "o'brien@contoso.com", "ada@contoso.com", "ada@contoso.com", "bob@contoso.com", "ada@contoso.com"}},
		{name: "PATCH", req: listRequest(testConfigID, "").to("PATCH", createPath(testConfigID)), status: 405, code: "MethodNotAllowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := seededEmulator(t, tt.cfg)
			before := e.Stats()
			resp, body := tt.req.send(t, srv)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				if code := graphErrorCode(t, body); code != tt.code {
					t.Errorf("code %q, want %q", code, tt.code)
				}
				if got := resp.Header.Get("Retry-After"); got != tt.retryWant {
					t.Errorf("Retry-After %q, want %q", got, tt.retryWant)
				}
				return
			}
			page := decodeList(t, body)
			var upns []string
			for _, v := range page.Value {
				upns = append(upns, v["upn"].(string))
			}
			if len(upns) != len(tt.upns) || len(upns) > 0 && !reflect.DeepEqual(upns, tt.upns) {
				t.Errorf("upns %q, want %q", upns, tt.upns)
			}
			if (page.NextLink != "") != tt.wantNext {
				t.Errorf("@odata.nextLink %q, want one: %v", page.NextLink, tt.wantNext)
			}
			configID := strings.TrimPrefix(strings.TrimSuffix(tt.req.path[:strings.Index(tt.req.path+"?", "?")], "/userRunStates"), "/beta/deviceManagement/hardwareConfigurations/")
			if want := srv.URL + "/beta/$metadata#deviceManagement/hardwareConfigurations('" + configID + "')/userRunStates"; page.Context != want {
				t.Errorf("@odata.context %q, want %q", page.Context, want)
			}
			if s := e.Stats(); s.Lists != before.Lists+1 || s.Requests != before.Requests+1 || s.Creates != before.Creates {
				t.Errorf("stats %+v, before %+v: want one more list", s, before)
			}
		})
	}
}

// A listed user state is the entity as created: every property posted, its id and
// @odata.type.
func TestListedEntityIsTheCreatedOne(t *testing.T) {
	_, srv := newEmulatorServer(t, Config{Token: testToken})
	entity := created(t, srv, validRequest(uuid.NewString()))
	_, body := listRequest(testConfigID, "").send(t, srv)
	page := decodeList(t, body)
	if len(page.Value) != 1 {
		t.Fatalf("%d user states, want 1: %s", len(page.Value), body)
	}
	got := page.Value[0]
	if id, _ := got["id"].(string); !schema.IsGUID(id) || id != entity["id"] {
		t.Errorf("id %v, want the created one %v", got["id"], entity["id"])
	}
	checkPosted(t, got)
}

// TestListPaging follows @odata.nextLink to the last page: every user state once, in
// creation order, the filter and $top kept, and the links absolute.
func TestListPaging(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		query string
		pages []int // sizes
		upn   string
	}{
		{"$top 3", Config{}, "?$top=3", []int{3, 3, 2}, ""},
		{"$top 4 filtered", Config{}, filterQuery("upn eq 'ada@contoso.com'") + "&$top=4", []int{4, 1}, "ada@contoso.com"},
		{"page size 2, $top 999", Config{PageSize: 2}, "?$top=999", []int{2, 2, 2, 2}, ""},
		{"page size 1 filtered", Config{PageSize: 1}, filterQuery("upn eq 'o''brien@contoso.com'"), []int{1}, "o'brien@contoso.com"},
		{"exact pages", Config{}, "?$top=4", []int{4, 4}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := seededEmulator(t, Config{})
			_, body := listRequest(testConfigID, "").send(t, srv)
			tt.cfg.Token = testToken
			e.SetConfig(tt.cfg)
			var want []any
			for _, v := range decodeList(t, body).Value {
				if tt.upn == "" || v["upn"] == tt.upn {
					want = append(want, v["id"])
				}
			}
			var got []any
			var sizes []int
			req := listRequest(testConfigID, tt.query)
			for {
				resp, body := req.send(t, srv)
				if resp.StatusCode != 200 {
					t.Fatalf("page %d: %d %s", len(sizes)+1, resp.StatusCode, body)
				}
				page := decodeList(t, body)
				sizes = append(sizes, len(page.Value))
				for _, v := range page.Value {
					got = append(got, v["id"])
				}
				if page.NextLink == "" {
					break
				}
				next, err := url.Parse(page.NextLink)
				if err != nil || !strings.HasPrefix(page.NextLink, srv.URL+"/beta/deviceManagement/hardwareConfigurations/"+testConfigID+"/userRunStates?") {
					t.Fatalf("nextLink %q is not an absolute link to the collection", page.NextLink)
				}
				q := next.Query()
				if q.Get("$skiptoken") == "" || q.Get("$top") != url.Values(mustParseQuery(t, tt.query)).Get("$top") ||
					q.Get("$filter") != url.Values(mustParseQuery(t, tt.query)).Get("$filter") {
					t.Fatalf("nextLink %q does not keep the query %q and add a $skiptoken", page.NextLink, tt.query)
				}
				req.path = strings.TrimPrefix(page.NextLink, srv.URL)
				if len(sizes) > 10 {
					t.Fatal("more than ten pages")
				}
			}
			if !reflect.DeepEqual(sizes, tt.pages) || !reflect.DeepEqual(got, want) {
				t.Errorf("pages %v of %v, want %v of %v", sizes, got, tt.pages, want)
			}
		})
	}
}

func mustParseQuery(t *testing.T, query string) url.Values {
	t.Helper()
	v, err := url.ParseQuery(strings.TrimPrefix(query, "?"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A list takes from the tenant's limits like a create, and is refused with a Retry-After
// when they are spent.
func TestListTakesFromTheLimits(t *testing.T) {
	clock := newFakeClock()
	e, srv := newEmulatorServer(t, Config{Token: testToken, Window: Window{Limit: 1, Per: 20 * time.Second}}, WithClock(clock.Now))
	if resp, body := listRequest(testConfigID, "").send(t, srv); resp.StatusCode != 200 {
		t.Fatalf("first list: %d %s", resp.StatusCode, body)
	}
	clock.Advance(5 * time.Second)
	if resp, _ := validRequest(uuid.NewString()).send(t, srv); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "15" {
		t.Fatalf("create after a list: %d, Retry-After %q; want 429, 15", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := listRequest(testConfigID, "").send(t, srv); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "15" {
		t.Fatalf("second list: %d, Retry-After %q; want 429, 15", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if st := e.Stats(); st.Lists != 1 || st.Throttled != 2 {
		t.Errorf("stats %+v", st)
	}
}
