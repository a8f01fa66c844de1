package deploy_test

import (
	"encoding/json"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hwstate/hwstate/internal/proctest"
)

// hwstate is the worker binary the tests run, built on first use.
var hwstate *proctest.Binary

func TestMain(m *testing.M) { proctest.Main(m, &hwstate) }

// known are the variables `hwstate run --help` lists: every setting it reads.
func known(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(hwstate.Path(t), "run", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("hwstate run --help: %v\n%s", err, out)
	}
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+--[a-z0-9-]+\s+\((HWSTATE_[A-Z0-9_]+),`).FindAllStringSubmatch(string(out), -1) {
		vars[m[1]] = true
	}
	if !vars["HWSTATE_NATS_URL"] || !vars["HWSTATE_CLIENT_SECRET"] {
		t.Fatalf("hwstate run --help lists %v: the pattern no longer reads it", vars)
	}
	return vars
}

// Every HWSTATE_ setting that compose, kustomize and the chart give the worker is one
// `hwstate run` reads: an unknown one is silently ignored, and the worker then runs without
// it (a credential, a NATS URL).
func TestSettingsAreKnown(t *testing.T) {
	vars := known(t)
	check := func(where string, names []string) {
		t.Helper()
		for _, n := range names {
			if strings.HasPrefix(n, "HWSTATE_") && !vars[n] {
				t.Errorf("%s sets %s, which hwstate run does not read", where, n)
			}
		}
	}
	for _, env := range []map[string]string{{}, {"HWSTATE_CLIENT_ID": "x"}} {
		w, err := loadCompose(t, env).GetService("hwstate")
		if err != nil {
			t.Fatal(err)
		}
		check("docker-compose.yml", slices.Collect(maps.Keys(w.Environment)))
	}
	check("kustomize", podSettings(t, kustomize(t, withComponents(t, "monitoring"))))
	check("kustomize multi-tenant", podSettings(t, kustomize(t, withComponents(t, "multi-tenant"))))
	c, account := loadChart(t)
	for _, values := range []string{"keda: {account: " + account + "}", "keda: {enabled: false}\ngraph: {credential: certificate}",
		"keda: {enabled: false}\ntenants: {tenants: [{id: 4f1c2d3e-0000-4000-8000-000000000001}]}"} {
		objs, err := helmTemplate(t, c, values)
		if err != nil {
			t.Fatal(err)
		}
		check("the chart with "+values, podSettings(t, objs))
	}
}

// podSettings are the variable names of the ConfigMaps and the Deployment's env.
func podSettings(t *testing.T, objs []object) []string {
	t.Helper()
	var names []string
	for _, o := range objs {
		var doc struct {
			Data map[string]string
			Spec struct {
				Template struct {
					Spec struct {
						Containers []struct{ Env []struct{ Name string } }
					}
				}
			}
		}
		if err := json.Unmarshal(o.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		switch o.Kind {
		case "ConfigMap":
			for k := range doc.Data {
				names = append(names, k)
			}
		case "Deployment":
			for _, c := range doc.Spec.Template.Spec.Containers {
				for _, e := range c.Env {
					names = append(names, e.Name)
				}
			}
		}
	}
	return names
}
