package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

const (
	tenantA = "4f1c2d3e-0000-4000-8000-0000000000a1"
	tenantB = "4f1c2d3e-0000-4000-8000-0000000000b1"
)

// writeTenants writes a tenants file listing ids, atomically as a ConfigMap update would.
func writeTenants(t *testing.T, path string, ids ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("tenants:\n")
	for _, id := range ids {
		b.WriteString("  - id: " + id + "\n")
	}
	writeFile(t, path, b.String())
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// publishTo publishes event i to a tenant's subject.
func (r *rig) publishTo(tenant, id string, i int) {
	r.t.Helper()
	if err := sandbox.Publish(r.t.Context(), r.js, worker.DefaultSubject+"."+tenant, id, sandbox.Event(sandbox.ConfigOK, i)); err != nil {
		r.t.Fatal(err)
	}
}

// `hwstate run` in multi-tenant mode reads its tenants file again when it changes and on
// SIGHUP (which must not end it): a tenant added gets its events created without a restart,
// and an invalid file keeps the tenants in force, its error naming the line.
func TestProcessTenantsFileReload(t *testing.T) {
	proctest.SkipShort(t)
	r := newServerRig(t, emulator.Config{})
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	writeTenants(t, file, tenantA)
	p := r.start("HWSTATE_TENANTS=" + file)

	r.publishTo(tenantA, "a-1", 1)
	r.publishTo(tenantB, "b-1", 2)
	proctest.WaitCount(t, r.js, 2, time.Minute)
	out := proctest.ReadOutcomes(t, r.js)
	if len(out.Results["a-1"]) != 1 || len(out.DeadLetters["b-1"]) != 1 || out.DeadLetters["b-1"][0].Reason != worker.InvalidEvent {
		t.Fatalf("before B is listed: A's event %+v, B's %+v; want A created and B dead-lettered", out.Results["a-1"], out.DeadLetters["b-1"])
	}

	writeTenants(t, file, tenantA, tenantB)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitOutput(t, "tenant listed or changed in the tenants file", time.Minute)
	r.publishTo(tenantB, "b-2", 3)
	proctest.WaitCount(t, r.js, 3, time.Minute)
	out = proctest.ReadOutcomes(t, r.js)
	if rs := out.Results["b-2"]; len(rs) != 1 || rs[0].TenantID != tenantB {
		t.Fatalf("B added while running: results %+v, dead letters %+v; want it created", rs, out.DeadLetters["b-2"])
	}

	writeFile(t, file, "tenants:\n  - id: "+tenantA+"\n    rat: 5\n")
	p.WaitOutput(t, `tenants.yaml:3`, time.Minute)
	r.publishTo(tenantB, "b-3", 4)
	proctest.WaitCount(t, r.js, 4, time.Minute)
	if rs := proctest.ReadOutcomes(t, r.js).Results["b-3"]; len(rs) != 1 {
		t.Fatalf("after an invalid tenants file: B's event %+v, want it still created", rs)
	}
	if p.Exited() {
		t.Fatal("the worker ended")
	}
}

// A tenants file that does not hold is refused at start, with the line of each problem.
func TestRunRefusesAnInvalidTenantsFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	writeFile(t, file, "tenants:\n  - id: not-a-guid\n  - id: "+tenantA+"\n    rate: -1\n")
	p := proctest.Start(t, hwstate.Path(t), []string{"HWSTATE_TENANTS=" + file, "HWSTATE_GRAPH_TOKEN=x", "HWSTATE_HTTP_ADDR="}, "run")
	code, err := p.Wait(time.Minute)
	if out := p.Output(); err != nil || code == 0 || !strings.Contains(out, "tenants.yaml:2") || !strings.Contains(out, "tenants.yaml:4") {
		t.Errorf("exit %d (%v), output %q: want a refusal naming lines 2 and 4", code, err, out)
	}
}
