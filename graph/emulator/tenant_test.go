package emulator

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	tenantA = "4f1c2d3e-0000-4000-8000-000000000001"
	tenantB = "9a8b7c6d-0000-4000-8000-000000000002"
	tenantC = "1b2c3d4e-0000-4000-8000-000000000003"
)

// in sends r to tenant's paths instead of the root's.
func (r rawRequest) in(tenant string) rawRequest {
	r.path = tenantsPrefix + tenant + r.path
	return r
}

// TestTenantLimitsAreIndependent: each tenant has its own window, made from the root's
// configuration or set beforehand, and throttling one leaves the others alone.
func TestTenantLimitsAreIndependent(t *testing.T) {
	clock := newFakeClock()
	base := Config{Token: testToken, Window: Window{Limit: 2, Per: 20 * time.Second}}
	e, srv := newEmulatorServer(t, base, WithClock(clock.Now))
	e.Tenant(tenantC).SetConfig(Config{Token: testToken, Rate: 1, Burst: 1}) // before its first request
	steps := []struct {
		tenant  string // "": the root
		advance time.Duration
		want    int
	}{
		{tenantA, 0, 201}, {tenantA, 0, 201}, {tenantA, 0, 429}, {tenantA, 0, 429},
		{tenantB, 0, 201}, {tenantB, 0, 201}, {tenantB, 0, 429},
		{"", 0, 201}, {"", 0, 201}, {"", 0, 429},
		{tenantC, 0, 201}, {tenantC, 0, 429}, {tenantC, 0, 429},
		{tenantA, 20 * time.Second, 201}, {tenantC, 0, 201}, {tenantC, 0, 429},
	}
	for i, step := range steps {
		clock.Advance(step.advance)
		req := validRequest(uuid.NewString())
		if step.tenant != "" {
			req = req.in(step.tenant)
		}
		if resp, body := req.send(t, srv); resp.StatusCode != step.want {
			t.Fatalf("step %d (%q): %d, want %d: %s", i, step.tenant, resp.StatusCode, step.want, body)
		}
	}
	want := map[string]Stats{
		tenantA: {Requests: 5, Creates: 3, Throttled: 2},
		tenantB: {Requests: 3, Creates: 2, Throttled: 1},
		tenantC: {Requests: 5, Creates: 2, Throttled: 3},
	}
	if got := e.TenantStats(); !maps.Equal(got, want) {
		t.Errorf("TenantStats %+v\nwant %+v", got, want)
	}
	if got := (Stats{Requests: 3, Creates: 2, Throttled: 1}); e.Stats() != got {
		t.Errorf("root's Stats %+v, want %+v", e.Stats(), got)
	}
	if got := e.Tenant(strings.ToUpper(tenantC)).Config(); got.Rate != 1 || got.Window.Limit != 0 {
		t.Errorf("tenant C's configuration %+v, want its own", got)
	}
	if got := e.Tenant(tenantA).Config(); got.Window != base.Window {
		t.Errorf("tenant A's configuration %+v, want the root's", got)
	}
}

// TestTenantEntitiesAreSeparate: a tenant lists only what was created in it, under its own
// prefix, and a client-request-id used in two tenants is no duplicate.
func TestTenantEntitiesAreSeparate(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{Token: testToken, PageSize: 1})
	crid := uuid.NewString()
	for _, c := range []struct{ tenant, upn string }{
		{tenantA, "ada@a.example"}, {tenantA, "alan@a.example"}, {tenantB, "bob@b.example"},
	} {
		created(t, srv, validRequest(crid).withBody(string(stateBody(c.upn))).in(c.tenant))
	}
	tests := []struct {
		tenant   string // "": the root
		wantUPNs []string
	}{
		{tenantA, []string{"ada@a.example", "alan@a.example"}},
		{tenantB, []string{"bob@b.example"}},
		{"", nil},
		{tenantC, nil},
	}
	for _, tt := range tests {
		t.Run("tenant "+tt.tenant, func(t *testing.T) {
			prefix := ""
			if tt.tenant != "" {
				prefix = tenantsPrefix + tt.tenant
			}
			var upns []string
			for url := srv.URL + prefix + createPath(testConfigID); url != ""; {
				resp, body := listRequest(testConfigID, "").to(http.MethodGet, strings.TrimPrefix(url, srv.URL)).send(t, srv)
				if resp.StatusCode != 200 {
					t.Fatalf("list %s: %d %s", url, resp.StatusCode, body)
				}
				page := decodeList(t, body)
				if want := srv.URL + prefix + "/beta/$metadata#"; !strings.HasPrefix(page.Context, want) {
					t.Errorf("@odata.context %q, want it under %q", page.Context, want)
				}
				for _, v := range page.Value {
					upns = append(upns, v["upn"].(string))
				}
				url = page.NextLink
			}
			if strings.Join(upns, ",") != strings.Join(tt.wantUPNs, ",") {
				t.Errorf("listed %q, want %q", upns, tt.wantUPNs)
			}
		})
	}
	for tenant, want := range map[string]int{tenantA: 2, tenantB: 1, tenantC: 0} {
		if got := e.Tenant(tenant).CreatesFor(crid); got != want {
			t.Errorf("tenant %s: CreatesFor %d, want %d", tenant, got, want)
		}
	}
	if got := e.Tenant(tenantB).Stats().Duplicates; got != 0 {
		t.Errorf("tenant B counts %d duplicates of tenant A's client-request-id", got)
	}
	if e.CreatesFor(crid) != 0 || e.Stats().Creates != 0 {
		t.Errorf("the root has tenants' creates: %+v", e.Stats())
	}
}

// TestForbidden: a tenant whose consent is revoked answers 403 to creates, lists and
// $batch sub-requests, the others carry on, and restoring consent restores the creates.
func TestForbidden(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{Token: testToken})
	batch := batchRequestOf(subReq("1", testConfigID), subReq("2", testConfigID))
	requests := []struct {
		name string
		req  rawRequest
		want int // with consent; 403 without
	}{
		{"create", validRequest(uuid.NewString()), 201},
		{"list", listRequest(testConfigID, ""), 200},
		{"no client-request-id", validRequest("").with("client-request-id", ""), 201},
	}
	send := func(t *testing.T, tenant string, wantSub, wantStatus func(int) int) {
		t.Helper()
		for _, r := range requests {
			resp, body := r.req.in(tenant).send(t, srv)
			if want := wantStatus(r.want); resp.StatusCode != want {
				t.Errorf("%s in %s: %d, want %d: %s", r.name, tenant, resp.StatusCode, want, body)
			} else if want == 403 && graphErrorCode(t, body) != "Forbidden" {
				t.Errorf("%s in %s: %s, want code Forbidden", r.name, tenant, body)
			}
		}
		for _, sub := range batch.in(tenant).sendBatch(t, srv).Responses {
			if want := wantSub(201); sub.Status != want {
				t.Errorf("$batch sub-request %s in %s: %d, want %d: %s", sub.ID, tenant, sub.Status, want, sub.Body)
			} else if want == 403 && !strings.Contains(string(sub.Body), "DeviceManagementConfiguration.ReadWrite.All") {
				t.Errorf("$batch sub-request %s in %s: %s, want the missing permission named", sub.ID, tenant, sub.Body)
			}
		}
	}
	allowed := func(status int) int { return status }
	refused := func(int) int { return http.StatusForbidden }

	if status, body := control(t, srv, "PATCH", tenantsPrefix+tenantA+"/_emulator/config", `{"forbidden":true}`); status != 200 {
		t.Fatalf("revoke: %d %s", status, body)
	}
	send(t, tenantA, refused, refused)
	send(t, tenantB, allowed, allowed)
	if s := e.Tenant(tenantA).Stats(); s.Forbidden != 5 || s.Creates != 0 || s.Batches != 1 || s.Requests != 5 {
		t.Errorf("tenant A's stats while refused %+v", s)
	}
	if e.Config().Forbidden || e.Tenant(tenantB).Config().Forbidden {
		t.Errorf("revoking tenant A's consent revoked another's")
	}

	e.Tenant(tenantA).SetConfig(Config{Token: testToken}) // consent restored
	send(t, tenantA, allowed, allowed)
	if s := e.Tenant(tenantA).Stats(); s.Forbidden != 5 || s.Creates != 4 {
		t.Errorf("tenant A's stats once restored %+v", s)
	}
}

// TestTenantPaths: a path naming a tenant must name it by a GUID, and clients can make
// only so many tenants; control endpoints take a tenant prefix like Graph's paths.
func TestTenantPaths(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{}, WithMaxTenants(2))
	e.Tenant(tenantA) // made in-process: takes room in the bound
	tests := []struct {
		name       string
		req        rawRequest
		wantStatus int
		wantCode   string
	}{
		{"tenant id not a GUID", validRequest(uuid.NewString()).in("contoso"), 400, "BadRequest"},
		{"empty tenant id", validRequest(uuid.NewString()).in(""), 400, "BadRequest"},
		{"encoded slash in tenant id", validRequest(uuid.NewString()).in(tenantA[:8] + "%2F" + tenantA[9:]), 400, "BadRequest"},
		{"tenant and nothing else", rawRequest{method: "GET", path: tenantsPrefix + tenantA}, 404, "ResourceNotFound"},
		{"tenant's unknown path", rawRequest{method: "POST", path: "/beta/users"}.in(tenantA), 404, "ResourceNotFound"},
		{"control with a bad tenant id", rawRequest{method: "GET", path: tenantsPrefix + "contoso/_emulator/stats"}, 400, "BadRequest"},
		{"upper-case id", validRequest(uuid.NewString()).in(strings.ToUpper(tenantA)), 201, ""},
		{"second tenant", validRequest(uuid.NewString()).in(tenantB), 201, ""},
		{"a tenant beyond the bound", validRequest(uuid.NewString()).in(tenantC), 404, "ResourceNotFound"},
		{"control beyond the bound", rawRequest{method: "GET", path: tenantsPrefix + tenantC + "/_emulator/config"}, 404, "ResourceNotFound"},
		{"a known tenant still", listRequest(testConfigID, "").in(tenantB), 200, ""},
		{"without the prefix", validRequest(uuid.NewString()), 201, ""},
		{"tenants as a root prefix", validRequest(uuid.NewString()).to("POST", "/x/tenants/"+tenantC+createPath(testConfigID)), 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := tt.req.send(t, srv)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantCode != "" && graphErrorCode(t, body) != tt.wantCode {
				t.Errorf("code %q, want %q", graphErrorCode(t, body), tt.wantCode)
			}
		})
	}
	if _, ok := e.TenantStats()[tenantC]; ok {
		t.Errorf("a tenant beyond the bound was made")
	}
	if !reflect.DeepEqual(e.Tenant(tenantC).Config(), Config{}) || len(e.TenantStats()) != 3 {
		t.Errorf("in-process, a tenant beyond the bound is made all the same: %v", e.TenantStats())
	}
	if s := e.Stats(); s.Creates != 2 || s.Requests != 2 {
		t.Errorf("root's stats %+v: want only its own requests", s)
	}
}

// TestTenantControl: each tenant's configuration and counters are served under its
// prefix; /_emulator/tenants has every tenant's counters.
func TestTenantControl(t *testing.T) {
	e, srv := newEmulatorServer(t, Config{Token: testToken, Rate: 3})
	if status, body := control(t, srv, "PATCH", tenantsPrefix+tenantA+"/_emulator/config", `{"rate":7,"burst":2}`); status != 200 {
		t.Fatalf("PATCH before first use: %d %s", status, body)
	}
	if got := e.Tenant(tenantA).Config(); got.Rate != 7 || got.Burst != 2 || got.Token != testToken {
		t.Errorf("after PATCH: %+v, want the root's configuration with rate 7, burst 2", got)
	}
	if status, body := control(t, srv, "PUT", tenantsPrefix+tenantB+"/_emulator/config", `{"outage":true}`); status != 200 {
		t.Fatalf("PUT: %d %s", status, body)
	}
	if got := e.Tenant(tenantB).Config(); !reflect.DeepEqual(got, Config{Outage: true}) {
		t.Errorf("after PUT: %+v", got)
	}
	if status, _ := control(t, srv, "PATCH", tenantsPrefix+tenantB+"/_emulator/config", `{"rate":-1}`); status != 400 {
		t.Errorf("PATCH of an invalid configuration: %d, want 400", status)
	}
	if got := e.Config(); got.Rate != 3 || got.Outage {
		t.Errorf("the root's configuration changed: %+v", got)
	}
	validRequest(uuid.NewString()).in(tenantA).send(t, srv)
	validRequest(uuid.NewString()).in(tenantB).send(t, srv)

	status, body := control(t, srv, "GET", tenantsPrefix+tenantA+"/_emulator/stats", "")
	var stats Stats
	if err := json.Unmarshal(body, &stats); status != 200 || err != nil || stats != (Stats{Requests: 1, Creates: 1}) {
		t.Errorf("tenant A's stats: %d %v %s", status, err, body)
	}
	status, body = control(t, srv, "GET", tenantsPrefix+tenantB+"/_emulator/config", "")
	if status != 200 || !strings.Contains(string(body), `"outage":true`) {
		t.Errorf("tenant B's configuration: %d %s", status, body)
	}
	status, body = control(t, srv, "GET", "/_emulator/tenants", "")
	var all map[string]Stats
	if err := json.Unmarshal(body, &all); status != 200 || err != nil || !maps.Equal(all, e.TenantStats()) {
		t.Errorf("every tenant's stats: %d %v %s", status, err, body)
	}
	if all[tenantB].ServerErrors != 1 || e.Stats().Requests != 0 {
		t.Errorf("tenants' stats %+v, root's %+v", all, e.Stats())
	}
}

// BenchmarkTenants is a create in one of 1,000 tenants, each limited like Intune, against
// one at the root: what serving many tenants costs a request.
func BenchmarkTenants(b *testing.B) {
	cfg := Config{Rate: 1e9, Burst: 1, Window: Window{Limit: 100, Per: 20 * time.Second}}
	tenants := make([]string, 1000)
	for i := range tenants {
		tenants[i] = uuid.NewString()
	}
	for _, bb := range []struct {
		name  string
		paths func(i int) string
	}{
		{"root", func(int) string { return createPath(testConfigID) }},
		{"1000 tenants", func(i int) string { return tenantsPrefix + tenants[i%len(tenants)] + createPath(testConfigID) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			clock := newFakeClock()
			e := New(cfg, WithClock(clock.Now))
			body := testBody()
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				clock.Advance(time.Second) // every window has room again
				req := httptest.NewRequest(http.MethodPost, bb.paths(i), bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer t")
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				e.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
