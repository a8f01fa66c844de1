package deploy_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite the generated copies of the alert rules and the dashboard")

// generated are files made from others, for places that cannot read the source where it is
// (a kustomize component reads only its own directory, a Helm chart only its own files): the
// alert rules as a PrometheusRule and as a chart file, the dashboard beside each.
var generated = []struct {
	path, from string
	make       func(t *testing.T, src []byte) []byte
}{
	{"deploy/components/monitoring/prometheusrule.yaml", "deploy/prometheus/alerts.yml", prometheusRule},
	{"deploy/components/monitoring/hwstate.json", "deploy/grafana/hwstate.json", same},
	{"deploy/helm/hwstate/files/alerts.yml", "deploy/prometheus/alerts.yml", same},
	{"deploy/helm/hwstate/files/hwstate.json", "deploy/grafana/hwstate.json", same},
}

func same(_ *testing.T, src []byte) []byte { return src }

// prometheusRule wraps a Prometheus rule file's groups in a PrometheusRule.
func prometheusRule(t *testing.T, src []byte) []byte {
	var rules yaml.Node
	if err := yaml.Unmarshal(src, &rules); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.WriteString("# Made from deploy/prometheus/alerts.yml by `go test ./... -run TestGeneratedCopies -update`\n# in deploy/: edit that file, not this one.\n")
	b.WriteString("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata:\n  name: hwstate\nspec:\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	// The rule file's top level mapping (groups: ...) becomes spec's, indented under it.
	var body bytes.Buffer
	e := yaml.NewEncoder(&body)
	e.SetIndent(2)
	if err := e.Encode(rules.Content[0]); err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.SplitAfter(body.Bytes(), []byte("\n")) {
		if len(line) > 0 {
			b.WriteString("  ")
			b.Write(line)
		}
	}
	return b.Bytes()
}

// TestGeneratedCopies fails when a generated file differs from what its source makes now;
// -update rewrites them.
func TestGeneratedCopies(t *testing.T) {
	for _, g := range generated {
		src, err := os.ReadFile(filepath.Join(root, g.from))
		if err != nil {
			t.Fatal(err)
		}
		want := g.make(t, src)
		path := filepath.Join(root, g.path)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s is not what %s makes now (%v): run `go test ./... -run TestGeneratedCopies -update` in deploy/", g.path, g.from, err)
		}
	}
}
