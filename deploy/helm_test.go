package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	sigsyaml "sigs.k8s.io/yaml"
)

const chartDir = root + "/deploy/helm/hwstate"

// helmTemplate renders the chart as `helm template --namespace hwstate` would with the
// values given over the chart's own; values.schema.json is checked on the way.
func helmTemplate(t *testing.T, c *chart.Chart, values string) ([]object, error) {
	t.Helper()
	vals, err := chartutil.ReadValues([]byte(values))
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(c, vals, chartutil.ReleaseOptions{Name: "hwstate", Namespace: "hwstate", IsInstall: true}, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(c, rv)
	if err != nil {
		return nil, err
	}
	var objs []object
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if filepath.Ext(name) != ".yaml" {
			continue
		}
		dec := yaml.NewDecoder(strings.NewReader(files[name]))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, files[name])
			}
			if doc == nil {
				continue
			}
			y, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			data, err := sigsyaml.YAMLToJSON(y)
			if err != nil {
				t.Fatal(err)
			}
			o := object{JSON: data}
			o.Kind, _ = doc["kind"].(string)
			o.Name, _ = dig(doc, "metadata", "name").(string)
			o.Namespace = "hwstate" // helm install --namespace
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// loadChart loads the chart, and makes a NATS account's public key for the values that
// turn KEDA on, which must name one.
func loadChart(t *testing.T) (*chart.Chart, string) {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	account, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return c, account
}

// The chart renders in each of its shapes into objects that decode strictly (or meet their
// CRD), pods that meet Pod Security "restricted", settings from files in mounted Secrets;
// values its schema refuses are refused.
func TestHelmChart(t *testing.T) {
	const wiTenant, wiClient = "72f988bf-86f1-41af-91ab-2d7cd011db47", "3f1e5c2a-8b7d-4e6f-9a0b-1c2d3e4f5a6b"
	c, testAccount := loadChart(t)
	if c.Metadata.AppVersion != imageTag(t) {
		t.Errorf("chart appVersion %s, the kustomization's image tag %s: want one released version", c.Metadata.AppVersion, imageTag(t))
	}
	for _, tc := range []struct {
		name   string
		values string
		kinds  []string
	}{
		{"defaults", "keda: {account: " + testAccount + "}",
			[]string{"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "ScaledObject", "Service"}},
		{"without KEDA or policy", "keda: {enabled: false}\nnetworkPolicy: {enabled: false}\nreplicaCount: 2",
			[]string{"ConfigMap", "Deployment", "PodDisruptionBudget", "Service"}},
		{"monitoring, certificate", "keda: {account: " + testAccount + "}\ngraph: {credential: certificate, secretKey: tls.pem}\n" +
			"monitoring: {podMonitor: {enabled: true}, serviceMonitor: {enabled: true}, prometheusRule: {enabled: true}, dashboard: {enabled: true}}",
			[]string{"ConfigMap", "ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "PodMonitor", "PrometheusRule", "ScaledObject", "Service", "ServiceMonitor"}},
		{"workload identity, traces", "keda: {account: " + testAccount + "}\ngraph: {credential: workloadIdentity, tenantId: " + wiTenant + ", clientId: " + wiClient + "}\n" +
			"extraEnv: [{name: OTEL_EXPORTER_OTLP_ENDPOINT, value: 'http://otel-collector.monitoring:4318'}]\n" +
			"networkPolicy: {extraEgress: [{to: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}], ports: [{port: 4318, protocol: TCP}]}]}",
			[]string{"ConfigMap", "Deployment", "NetworkPolicy", "PodDisruptionBudget", "ScaledObject", "Service", "ServiceAccount"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := helmTemplate(t, c, tc.values)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			var kinds []string
			for _, o := range objs {
				kinds = append(kinds, o.Kind)
				decodeStrict(t, o)
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Errorf("rendered %v, want %v", kinds, tc.kinds)
			}
			checkRestricted(t, objs)
			for _, o := range objs {
				var doc map[string]any
				if err := json.Unmarshal(o.JSON, &doc); err != nil {
					t.Fatal(err)
				}
				switch o.Kind {
				case "Deployment":
					keda := !strings.Contains(tc.values, "enabled: false}")
					if r := dig(doc, "spec", "replicas"); (r != nil) == keda {
						t.Errorf("Deployment replicas %v with KEDA %v", r, keda)
					}
					if img, _ := dig(doc, "spec", "template", "spec", "containers", 0, "image").(string); img != "ghcr.io/hwstate/hwstate:"+c.Metadata.AppVersion {
						t.Errorf("image %q, want the chart's appVersion", img)
					}
					if dig(doc, "spec", "template", "metadata", "annotations", "checksum/config") == nil {
						t.Error("no settings checksum on the pod template: a settings change would not roll the pods")
					}
					wi := strings.Contains(tc.values, "workloadIdentity")
					if use := dig(doc, "spec", "template", "metadata", "labels", "azure.workload.identity/use"); (use == "true") != wi {
						t.Errorf("pod label azure.workload.identity/use %v, want \"true\" only with workload identity", use)
					}
					if sa := dig(doc, "spec", "template", "spec", "serviceAccountName"); wi && sa != "hwstate" {
						t.Errorf("serviceAccountName %v, want the chart's ServiceAccount hwstate", sa)
					}
					env, _ := json.Marshal(dig(doc, "spec", "template", "spec", "containers", 0, "env"))
					secret := strings.Contains(string(env), "HWSTATE_CLIENT_SECRET")
					if want := !wi && !strings.Contains(tc.values, "certificate"); secret != want {
						t.Errorf("HWSTATE_CLIENT_SECRET in the environment: %v, want %v", secret, want)
					}
					if strings.Contains(tc.values, "extraEnv") != strings.Contains(string(env), "OTEL_EXPORTER_OTLP_ENDPOINT") {
						t.Errorf("environment %s: want extraEnv's variables in it, and only then", env)
					}
				case "NetworkPolicy":
					egress, _ := dig(doc, "spec", "egress").([]any)
					if want := 3 + strings.Count(tc.values, "extraEgress"); len(egress) != want {
						t.Errorf("%d egress rules, want %d (NATS, DNS, 443, and extraEgress's)", len(egress), want)
					}
				case "ServiceAccount":
					for k, want := range map[string]string{"azure.workload.identity/client-id": wiClient, "azure.workload.identity/tenant-id": wiTenant} {
						if got := dig(doc, "metadata", "annotations", k); got != want {
							t.Errorf("ServiceAccount annotation %s = %v, want %s", k, got, want)
						}
					}
				case "PrometheusRule":
					rules := readYAML(t, filepath.Join(root, "deploy/prometheus/alerts.yml"))[0]
					want, _ := json.Marshal(rules["groups"])
					got, _ := json.Marshal(dig(doc, "spec", "groups"))
					if !bytes.Equal(got, want) {
						t.Error("the PrometheusRule's groups are not alerts.yml's")
					}
				}
			}
		})
	}
	for _, bad := range []string{
		"image: {tag: latest}",
		"graph: {credential: workloadIdentity}",
		"extraEnv: [{name: HWSTATE_RATE, value: '9'}]",
		"keda: {account: not-a-key}",
		"settings: {NATS_URL: nats://elsewhere:4222}",
		"nats: {url: http://nats:4222}",
		"unknown: 1",
	} {
		if _, err := helmTemplate(t, c, bad); err == nil {
			t.Errorf("values %q rendered, want the schema to refuse them", bad)
		}
	}
	if _, err := helmTemplate(t, c, "{}"); err == nil || !strings.Contains(err.Error(), "keda.account") {
		t.Errorf("KEDA without its account: %v, want an error naming keda.account", err)
	}
}

// imageTag is the released version the kustomization deploys.
func imageTag(t *testing.T) string {
	t.Helper()
	k := readYAML(t, filepath.Join(root, "deploy/kustomization.yaml"))[0]
	tag, _ := dig(k, "images", 0, "newTag").(string)
	return tag
}
