package deploy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/santhosh-tekuri/jsonschema/v6"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	psaapi "k8s.io/pod-security-admission/api"
	psapolicy "k8s.io/pod-security-admission/policy"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	sigsyaml "sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object: its JSON and the fields every check needs.
type object struct {
	Kind, Name, Namespace string
	JSON                  []byte
}

func (o object) String() string { return o.Kind + "/" + o.Name }

// kustomize renders a kustomization as `kubectl apply -k` would.
func kustomize(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []object
	for _, r := range m.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, object{Kind: r.GetKind(), Name: r.GetName(), Namespace: r.GetNamespace(), JSON: data})
	}
	return objs
}

// withComponents is an overlay of deploy/ with some of its components, as deploy/
// kustomization.yaml is with them uncommented (outside deploy/: an overlay may not sit
// inside its base).
func withComponents(t *testing.T, components ...string) string {
	t.Helper()
	deploy, err := filepath.Abs(filepath.Join(root, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, deploy) // kustomize takes no absolute path
	if err != nil {
		t.Fatal(err)
	}
	k := fmt.Sprintf("namespace: hwstate\nresources: [%q]\ncomponents:\n", rel)
	for _, c := range components {
		k += fmt.Sprintf("  - %q\n", filepath.Join(rel, "components", c))
	}
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// typed are the Go types of the kinds that ship, for strict decoding: an unknown or
// duplicate field, or a value of the wrong type, is an error.
var typed = map[string]func() any{
	"Namespace":           func() any { return &corev1.Namespace{} },
	"ConfigMap":           func() any { return &corev1.ConfigMap{} },
	"Secret":              func() any { return &corev1.Secret{} },
	"Service":             func() any { return &corev1.Service{} },
	"ServiceAccount":      func() any { return &corev1.ServiceAccount{} },
	"Deployment":          func() any { return &appsv1.Deployment{} },
	"PodDisruptionBudget": func() any { return &policyv1.PodDisruptionBudget{} },
	"NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
	"PodMonitor":          func() any { return &monitoringv1.PodMonitor{} },
	"ServiceMonitor":      func() any { return &monitoringv1.ServiceMonitor{} },
	"PrometheusRule":      func() any { return &monitoringv1.PrometheusRule{} },
}

// decodeStrict decodes o into its Go type; a kind without one is checked against its CRD
// schema (KEDA's ScaledObject).
func decodeStrict(t *testing.T, o object) any {
	t.Helper()
	newObj, ok := typed[o.Kind]
	if !ok {
		validateCRD(t, o)
		return nil
	}
	v := newObj()
	strict, err := sigsjson.UnmarshalStrict(o.JSON, v)
	if err != nil {
		t.Errorf("%s: %v", o, err)
	}
	for _, e := range strict {
		t.Errorf("%s: %v", o, e)
	}
	return v
}

// kedaVersion is the KEDA release whose ScaledObject schema the manifests are held to.
const kedaVersion = "v2.18.3"

var crdSchemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	// The CRD ships in KEDA's Go module; the module proxy has every release.
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/kedacore/keda/v2@"+kedaVersion).Output()
	if err != nil {
		return nil, fmt.Errorf("go mod download keda: %w", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return nil, err
	}
	schemas := map[string]*jsonschema.Schema{}
	for kind, file := range map[string]string{"ScaledObject": "keda.sh_scaledobjects.yaml"} {
		data, err := os.ReadFile(filepath.Join(mod.Dir, "config/crd/bases", file))
		if err != nil {
			return nil, err
		}
		var crd struct {
			Spec struct {
				Versions []struct {
					Schema struct {
						OpenAPIV3Schema any `json:"openAPIV3Schema"`
					}
				}
			}
		}
		if err := sigsyaml.Unmarshal(data, &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(file, closeObjects(crd.Spec.Versions[0].Schema.OpenAPIV3Schema)); err != nil {
			return nil, err
		}
		if schemas[kind], err = c.Compile(file); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	return schemas, nil
})

// closeObjects makes an OpenAPI schema strict as the API server is: an object schema with
// properties and no additionalProperties admits no other field (kubeconform's -strict).
func closeObjects(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if _, ok := x["properties"]; ok {
			if _, ok := x["additionalProperties"]; !ok && x["x-kubernetes-preserve-unknown-fields"] != true {
				x["additionalProperties"] = false
			}
		}
		for k, e := range x {
			x[k] = closeObjects(e)
		}
	case []any:
		for i, e := range x {
			x[i] = closeObjects(e)
		}
	}
	return v
}

func validateCRD(t *testing.T, o object) {
	t.Helper()
	schemas, err := crdSchemas()
	if err != nil {
		t.Fatalf("CRD schemas: %v", err)
	}
	s, ok := schemas[o.Kind]
	if !ok {
		t.Errorf("%s: no Go type or CRD schema to check it against", o)
		return
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(string(o.JSON)))
	if err != nil {
		t.Fatal(err)
	}
	// apiVersion, kind and metadata are the API server's, not in the CRD's schema.
	if m, ok := v.(map[string]any); ok {
		delete(m, "apiVersion")
		delete(m, "kind")
		delete(m, "metadata")
	}
	if err := s.Validate(v); err != nil {
		t.Errorf("%s against KEDA %s's CRD: %v", o, kedaVersion, err)
	}
}

// checkRestricted fails unless every pod template meets the Pod Security Standard
// "restricted" (latest), with the admission controller's own checks.
func checkRestricted(t *testing.T, objs []object) {
	t.Helper()
	eval, err := psapolicy.NewEvaluator(psapolicy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	level := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		var d appsv1.Deployment
		if err := json.Unmarshal(o.JSON, &d); err != nil {
			t.Fatal(err)
		}
		for _, r := range eval.EvaluatePod(level, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
			if !r.Allowed {
				t.Errorf("%s: Pod Security restricted: %s: %s", o, r.ForbiddenReason, r.ForbiddenDetail)
			}
		}
	}
}

// The local-secrets component makes both Secrets from files, with their content's hash in
// their names, and the Deployment mounts those names: a rotated credential rolls the pods.
func TestLocalSecretsComponent(t *testing.T) {
	dir := filepath.Join(root, "deploy/components/local-secrets")
	for _, f := range []string{"worker.creds", "ca.crt", "client-secret"} {
		path := filepath.Join(dir, f)
		if _, err := os.Stat(path); err == nil {
			t.Skipf("%s exists (someone's real credentials): not touching it", path)
		}
		if err := os.WriteFile(path, []byte("test "+f), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(path) })
	}
	objs := kustomize(t, withComponents(t, "local-secrets"))
	secrets := map[string]string{} // base name -> generated name
	var mounted []string           // Secrets the Deployment mounts or reads a key of
	for _, o := range objs {
		decodeStrict(t, o)
		switch o.Kind {
		case "Secret":
			base := o.Name[:strings.LastIndex(o.Name, "-")]
			secrets[base] = o.Name
			if o.Namespace != "hwstate" {
				t.Errorf("%s in namespace %q", o, o.Namespace)
			}
		case "Deployment":
			var d appsv1.Deployment
			if err := json.Unmarshal(o.JSON, &d); err != nil {
				t.Fatal(err)
			}
			for _, v := range d.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					mounted = append(mounted, v.Secret.SecretName)
				}
			}
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					mounted = append(mounted, e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
	for _, base := range []string{"hwstate-nats", "hwstate-credentials"} {
		if secrets[base] == "" || !slices.Contains(mounted, secrets[base]) {
			t.Errorf("Secret %s rendered as %q; the Deployment uses %v", base, secrets[base], mounted)
		}
	}
}
