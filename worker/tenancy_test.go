package worker_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// Tenants of the multi-tenant tests.
const (
	tenantA = "4f1c2d3e-0000-4000-8000-00000000000a"
	tenantB = "4f1c2d3e-0000-4000-8000-00000000000b"
	tenantC = "4f1c2d3e-0000-4000-8000-00000000000c"
)

// startTenants runs a multi-tenant worker for the tenants, every one sending through the
// harness's client (the emulator's root), and returns it.
func (h *harness) startTenants(tenants ...worker.Tenant) *running {
	h.t.Helper()
	return h.start(worker.WithTenants(tenants, func(worker.Tenant) (worker.Creator, error) { return h.client, nil }))
}

// publishTo publishes event(configOK, i) to a tenant's subject with the given id.
func (h *harness) publishTo(tenant, id string, body []byte) {
	h.t.Helper()
	h.publishSubject(worker.DefaultSubject+"."+tenant, id, body)
}

// withTenantID is an event body with "tenantId" added.
func withTenantID(body []byte, tenant string) []byte {
	return []byte(fmt.Sprintf(`{"tenantId":%q,%s`, tenant, body[1:]))
}

// TestTenantsEventsGoToTheirTenantOnly is CONTRACT.md section 6's rules on events: a listed
// tenant's events are created, with tenantId on the result and in the ledger key and
// client-request-id; an unlisted tenant's, a body whose tenantId disagrees with the subject,
// and a subject that is no tenant id are invalid_event, with the subject's tenantId on the
// dead letter, and nothing is sent to Graph for them.
func TestTenantsEventsGoToTheirTenantOnly(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	h.startTenants(worker.Tenant{ID: tenantA, Name: "contoso"}, worker.Tenant{ID: tenantB})

	type want struct {
		tenant  string // on the output
		created bool
		errHas  string // in the dead letter's error
	}
	cases := []struct {
		id, subject string
		body        []byte
		want        want
	}{
		{"a-plain", tenantA, event(configOK, 1), want{tenant: tenantA, created: true}},
		{"b-plain", tenantB, event(configOK, 2), want{tenant: tenantB, created: true}},
		{"a-agrees", tenantA, withTenantID(event(configOK, 3), tenantA), want{tenant: tenantA, created: true}},
		{"a-agrees-upper", tenantA, withTenantID(event(configOK, 4), strings.ToUpper(tenantA)), want{tenant: tenantA, created: true}},
		{"a-says-b", tenantA, withTenantID(event(configOK, 5), tenantB), want{tenant: tenantA, errHas: "disagrees"}},
		{"unlisted", tenantC, event(configOK, 6), want{tenant: tenantC, errHas: "not listed"}},
		{"unlisted-agrees", tenantC, withTenantID(event(configOK, 7), tenantC), want{tenant: tenantC, errHas: "not listed"}},
		{"not-a-guid", "contoso", event(configOK, 8), want{tenant: "contoso", errHas: "not listed"}},
		{"deeper", tenantA + ".x", event(configOK, 9), want{tenant: tenantA + ".x", errHas: "not listed"}},
		{"a-invalid", tenantA, []byte(`{"hardwareConfigurationId":"x"}`), want{tenant: tenantA, errHas: "hardwareConfigurationId"}},
	}
	for _, c := range cases {
		h.publishTo(c.subject, c.id, c.body)
	}
	out := h.waitOutputs(len(cases), time.Minute)
	created := 0
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			if c.want.created {
				created++
				rs := out.results[c.id]
				if len(rs) != 1 || len(out.dlq[c.id]) != 0 {
					t.Fatalf("%d results, %d dead letters; want one result", len(rs), len(out.dlq[c.id]))
				}
				r := rs[0]
				if r.TenantID != c.want.tenant || r.Status != 201 || r.ClientRequestID != graph.ClientRequestID(c.want.tenant+"/"+c.id) {
					t.Errorf("result %+v: want tenant %s and the client-request-id of tenant/id", r, c.want.tenant)
				}
				if h.emu.CreatesFor(r.ClientRequestID) != 1 {
					t.Errorf("%d creates at the emulator, want 1", h.emu.CreatesFor(r.ClientRequestID))
				}
				if keys := proctest.LedgerKeys(t, h.js); !keys[proctest.LedgerKey(c.want.tenant+"/"+c.id)] {
					t.Errorf("no ledger record under the tenant's key")
				}
				return
			}
			dls := out.dlq[c.id]
			if len(dls) != 1 || len(out.results[c.id]) != 0 {
				t.Fatalf("%d results, %d dead letters; want one dead letter", len(out.results[c.id]), len(dls))
			}
			dl := dls[0]
			if dl.Reason != worker.InvalidEvent || dl.TenantID != c.want.tenant || !strings.Contains(dl.Error, c.want.errHas) || dl.Attempts != 0 {
				t.Errorf("dead letter %+v: want invalid_event for tenant %s saying %q", dl, c.want.tenant, c.want.errHas)
			}
		})
	}
	if got := h.emu.Stats().Creates; got != uint64(created) {
		t.Errorf("%d creates reached Graph, want %d (only the listed tenants' valid events)", got, created)
	}
}

// TestTenantsFileChangesTakeEffectWhileRunning: a tenant added gets its events created without
// a restart, and events published for a tenant once removed are dead-lettered.
func TestTenantsFileChangesTakeEffectWhileRunning(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	r := h.startTenants(worker.Tenant{ID: tenantA})

	h.publishTo(tenantB, "b-before", event(configOK, 1))
	h.publishTo(tenantA, "a-before", event(configOK, 2))
	out := h.waitOutputs(2, time.Minute)
	if len(out.dlq["b-before"]) != 1 || len(out.results["a-before"]) != 1 {
		t.Fatalf("before: B's event %d dead letters (want 1), A's %d results (want 1)", len(out.dlq["b-before"]), len(out.results["a-before"]))
	}

	r.SetTenants([]worker.Tenant{{ID: tenantB}})
	h.publishTo(tenantB, "b-after", event(configOK, 3))
	h.publishTo(tenantA, "a-after", event(configOK, 4))
	out = h.waitOutputs(4, time.Minute)
	if rs := out.results["b-after"]; len(rs) != 1 || rs[0].TenantID != tenantB {
		t.Errorf("added tenant B: results %+v, dead letters %+v; want it created", rs, out.dlq["b-after"])
	}
	if dls := out.dlq["a-after"]; len(dls) != 1 || dls[0].Reason != worker.InvalidEvent || !strings.Contains(dls[0].Error, "not listed") {
		t.Errorf("removed tenant A: dead letters %+v, results %+v; want invalid_event", dls, out.results["a-after"])
	}
}
