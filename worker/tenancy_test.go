package worker_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
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

// TestTenantsDoNotHoldEachOtherUp is issue 13's six tenants: A with 2,000 events at a 5/s
// limit (Intune's: 100 writes per sliding 20 s) published first, B to D and F normal, E answering 403 to everything (consent
// revoked), plus an unlisted tenant and a body naming another tenant. B to D and F get
// their outcomes within seconds of publishing; A uses its limit with few 429s; E's events
// are neither created nor dead-lettered while refused, and are created once consent returns.
func TestTenantsDoNotHoldEachOtherUp(t *testing.T) {
	h := newHarness(t, emulator.Config{})
	six := map[string]string{}
	var listed []worker.Tenant
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		id := "4f1c2d3e-0000-4000-8000-0000000000" + name + "0"
		six[name] = id
		tn := worker.Tenant{ID: id, Name: "tenant-" + name, GraphBaseURL: h.sb.TenantGraphURL(id)}
		if name == "a" {
			tn.Rate, tn.Burst = 5, 1 // the contract's default, Intune's published limit
		}
		listed = append(listed, tn)
	}
	tenantCfg := func(name string, change func(*emulator.Config)) {
		tn := h.emu.Tenant(six[name])
		cfg := tn.Config()
		change(&cfg)
		tn.SetConfig(cfg)
	}
	tenantCfg("a", func(c *emulator.Config) { c.Window = emulator.Window{Limit: 100, Per: 20 * time.Second} }) // Intune: 100 writes per 20 s
	tenantCfg("e", func(c *emulator.Config) { c.Forbidden = true })
	h.start(worker.WithTenants(listed, func(tn worker.Tenant) (worker.Creator, error) {
		return &graph.Client{BaseURL: tn.GraphBaseURL, Tokens: graph.StaticToken(testToken), Timeout: 5 * time.Second}, nil
	}))
	ctx := context.Background()
	if err := sandbox.PublishAllTo(ctx, h.js, worker.DefaultSubject+"."+six["a"], ids("a", 2000), func(i int) []byte { return event(configOK, i) }, 0); err != nil {
		t.Fatal(err)
	}

	const each = 50
	published := map[string]time.Time{}
	normal := []string{"b", "c", "d", "f"}
	for _, name := range append(normal, "e") {
		for i, id := range ids(name, each) {
			h.publishTo(six[name], id, event(configOK, i))
			published[id] = time.Now()
		}
	}
	h.publishTo(tenantC, "unlisted", event(configOK, 1))
	h.publishTo(six["b"], "b-says-c", withTenantID(event(configOK, 2), six["c"]))

	// B to D and F: created, each within seconds of its publish.
	var outcomes outputs
	proctest.WaitFor(t, time.Minute, "the normal tenants' events and the two invalid ones", func() bool {
		outcomes = h.readOutputs()
		n := len(outcomes.dlq["unlisted"]) + len(outcomes.dlq["b-says-c"])
		for _, name := range normal {
			for _, id := range ids(name, each) {
				n += len(outcomes.results[id])
			}
		}
		return n == len(normal)*each+2
	})
	var lags []time.Duration
	for _, name := range normal {
		for _, id := range ids(name, each) {
			r := outcomes.results[id][0]
			if r.TenantID != six[name] || h.emu.Tenant(six[name]).CreatesFor(r.ClientRequestID) != 1 {
				t.Errorf("%s: result %+v, %d creates in its tenant", id, r, h.emu.Tenant(six[name]).CreatesFor(r.ClientRequestID))
			}
			lags = append(lags, r.CompletedAt.Sub(published[id]))
		}
	}
	slices.Sort(lags)
	if p99 := lags[len(lags)*99/100]; p99 >= 10*time.Second {
		t.Errorf("p99 from publish to outcome for B to D and F: %s, want under 10 s behind A's backlog", p99)
	}
	for _, id := range []string{"unlisted", "b-says-c"} {
		if dls := outcomes.dlq[id]; len(dls) != 1 || dls[0].Reason != worker.InvalidEvent {
			t.Errorf("%s: dead letters %+v, want one invalid_event", id, dls)
		}
	}

	// E: refused, nothing created or dead-lettered; created once consent returns.
	for _, id := range ids("e", each) {
		if len(outcomes.results[id])+len(outcomes.dlq[id]) != 0 {
			t.Fatalf("%s has an outcome while its tenant refuses: %+v %+v", id, outcomes.results[id], outcomes.dlq[id])
		}
	}
	if s := h.emu.Tenant(six["e"]).Stats(); s.Creates != 0 || s.Requests == 0 {
		t.Fatalf("E while refused: %+v, want requests but no creates", s)
	}
	tenantCfg("e", func(c *emulator.Config) { c.Forbidden = false })
	proctest.WaitFor(t, time.Minute, "E's events created once its consent returns", func() bool {
		outcomes = h.readOutputs()
		n := 0
		for _, id := range ids("e", each) {
			n += len(outcomes.results[id]) + len(outcomes.dlq[id])
		}
		return n >= each
	})
	for _, id := range ids("e", each) {
		if len(outcomes.results[id]) != 1 || len(outcomes.dlq[id]) != 0 {
			t.Errorf("%s: %d results, %d dead letters; want one result", id, len(outcomes.results[id]), len(outcomes.dlq[id]))
		}
	}

	// A, all along: its limit used (over 100 creates, a window's worth, once the others are
	// done), few 429s.
	a0, from := h.emu.Tenant(six["a"]).Stats(), time.Now()
	proctest.WaitFor(t, time.Minute, "A's next 100 creates", func() bool { return h.emu.Tenant(six["a"]).Stats().Creates >= a0.Creates+100 })
	a := h.emu.Tenant(six["a"]).Stats()
	elapsed := time.Since(from).Seconds()
	if share := float64(a.Creates-a0.Creates) / (5*elapsed + 1); share < 0.9 {
		t.Errorf("A: %d creates in %.1f s, %.0f%% of its 5/s limit, want 90%% or more", a.Creates-a0.Creates, elapsed, 100*share)
	}
	if throttled := float64(a.Throttled) / float64(a.Creates+a.Throttled); throttled > 0.05 {
		t.Errorf("A: %d 429s to %d creates (%.1f%%), want 5%% at most", a.Throttled, a.Creates, 100*throttled)
	}
	t.Logf("A: %d creates, %d 429s in %.1f s; B-D, F: p50 %s, p99 %s", a.Creates, a.Throttled, elapsed, lags[len(lags)/2], lags[len(lags)*99/100])
}
