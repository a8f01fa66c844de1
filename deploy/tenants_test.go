package deploy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/tidwall/gjson"
	corev1 "k8s.io/api/core/v1"

	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// Multi-tenant mode with kustomize (components/multi-tenant) and with the chart (tenants:):
// see checkTenants.
func TestMultiTenant(t *testing.T) {
	c, account := loadChart(t)
	chart := func(values string) func(t *testing.T) []object {
		return func(t *testing.T) []object {
			objs, err := helmTemplate(t, c, values)
			if err != nil {
				t.Fatalf("helm template: %v", err)
			}
			return objs
		}
	}
	const tenants = "tenants:\n  defaults: {rate: 5}\n  tenants:\n    - {id: 4f1c2d3e-0000-4000-8000-000000000001, name: contoso}\n"
	for _, tc := range []struct {
		name   string
		render func(t *testing.T) []object
	}{
		{"kustomize", func(t *testing.T) []object { return kustomize(t, withComponents(t, "multi-tenant", "monitoring")) }},
		{"chart", chart("keda: {account: " + account + "}\n" + tenants)},
		{"chart without KEDA", chart("keda: {enabled: false}\n" + tenants)},
	} {
		t.Run(tc.name, func(t *testing.T) { checkTenants(t, tc.render(t)) })
	}
	for _, bad := range []string{
		"tenants: {tenants: [{id: contoso}]}",
		"tenants: {tenants: [{id: 4f1c2d3e-0000-4000-8000-000000000001, rat: 5}]}",
		"tenants: {tenants: []}",
		"tenants: {defaults: {id: 4f1c2d3e-0000-4000-8000-000000000001}, tenants: [{id: 4f1c2d3e-0000-4000-8000-000000000001}]}",
		"settings: {TENANTS: /elsewhere.yaml}",
	} {
		if _, err := helmTemplate(t, c, "keda: {account: "+account+"}\n"+bad); err == nil {
			t.Errorf("values %q rendered, want the schema to refuse them", bad)
		}
	}
}

// checkTenants holds a multi-tenant rendering to what the worker needs: every object
// decodes strictly, the tenants file is a ConfigMap the worker parses, mounted read-only
// where HWSTATE_TENANTS says, updated in place (no content hash in its name, no subPath: an edit reaches the
// running pods), no single tenant's id is set, and KEDA, when on, scales on the input
// stream's messages read from a real NATS server's monitoring endpoint.
func checkTenants(t *testing.T, objs []object) {
	t.Helper()
	var settings, tenants *corev1.ConfigMap
	var trigger map[string]any
	var pod corev1.PodSpec
	for _, o := range objs {
		v := decodeStrict(t, o)
		switch o.Kind {
		case "ConfigMap":
			cm := v.(*corev1.ConfigMap)
			switch {
			case cm.Data["HWSTATE_NATS_URL"] != "":
				settings = cm
			case cm.Data["tenants.yaml"] != "":
				tenants = cm
			}
		case "Deployment":
			var d struct {
				Spec struct{ Template struct{ Spec corev1.PodSpec } }
			}
			if err := json.Unmarshal(o.JSON, &d); err != nil {
				t.Fatal(err)
			}
			pod = d.Spec.Template.Spec
		case "ScaledObject":
			var doc map[string]any
			if err := json.Unmarshal(o.JSON, &doc); err != nil {
				t.Fatal(err)
			}
			triggers, _ := dig(doc, "spec", "triggers").([]any)
			if len(triggers) != 1 {
				t.Fatalf("ScaledObject triggers %v, want one", triggers)
			}
			trigger, _ = triggers[0].(map[string]any)
		}
	}
	checkRestricted(t, objs)
	if settings == nil || tenants == nil {
		t.Fatalf("settings %v, tenants file %v: want both ConfigMaps", settings != nil, tenants != nil)
	}
	if _, ok := settings.Data["HWSTATE_TENANT_ID"]; ok {
		t.Error("HWSTATE_TENANT_ID is set: in multi-tenant mode the tenants file names every tenant")
	}
	file := settings.Data["HWSTATE_TENANTS"]
	if file == "" {
		t.Fatal("HWSTATE_TENANTS is not set")
	}
	mounted := false
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != tenants.Name {
			continue
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			if m.Name != v.Name {
				continue
			}
			mounted = true
			if m.MountPath != path.Dir(file) || path.Base(file) != "tenants.yaml" || m.SubPath != "" || !m.ReadOnly {
				t.Errorf("%s mounted at %s (subPath %q, read-only %v); HWSTATE_TENANTS is %s: want it read-only in the mounted directory", tenants.Name, m.MountPath, m.SubPath, m.ReadOnly, file)
			}
		}
	}
	if !mounted {
		t.Errorf("the Deployment does not mount ConfigMap %s", tenants.Name)
	}
	if tenants.Name != "hwstate-tenants" {
		t.Errorf("tenants ConfigMap %s: want hwstate-tenants, no content hash, so an edit reaches the running pods", tenants.Name)
	}
	// The file the worker reads, as it reads it.
	if listed, err := worker.ParseTenants(file, []byte(tenants.Data["tenants.yaml"]), worker.Tenant{}); err != nil || len(listed) == 0 {
		t.Errorf("the worker refuses the tenants file (%d tenants): %v\n%s", len(listed), err, tenants.Data["tenants.yaml"])
	}
	if trigger != nil {
		checkBacklogTrigger(t, trigger, settingOr(settings, "HWSTATE_STREAM", worker.DefaultStream), settingOr(settings, "HWSTATE_SUBJECT", worker.DefaultSubject))
	}
}

func settingOr(cm *corev1.ConfigMap, key, def string) string {
	if v, ok := cm.Data[key]; ok {
		return v
	}
	return def
}

// checkBacklogTrigger reads the trigger's value as KEDA's metrics-api scaler does (GJSON on
// the body of its URL) from a JetStream server holding the input stream of multi-tenant
// mode, a work queue with events of two tenants, beside another stream of the account with
// more messages: the value is the input stream's backlog.
func checkBacklogTrigger(t *testing.T, trigger map[string]any, stream, subject string) {
	t.Helper()
	if trigger["type"] != "metrics-api" {
		t.Fatalf("trigger type %v, want metrics-api", trigger["type"])
	}
	meta, _ := trigger["metadata"].(map[string]any)
	for _, key := range []string{"url", "valueLocation", "targetValue", "activationTargetValue"} {
		if _, ok := meta[key].(string); !ok {
			t.Fatalf("trigger metadata %s missing", key)
		}
	}
	u, err := url.Parse(meta["url"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/jsz" || u.Query().Get("acc") == "" || u.Query().Get("streams") != "true" {
		t.Errorf("trigger URL %s: want /jsz of one account, with its streams", u)
	}

	opts := sandbox.JetStreamOptions("keda-jsz", t.TempDir(), "127.0.0.1", 0)
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT
	ns, err := sandbox.StartServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, cfg := range []jetstream.StreamConfig{
		{Name: stream, Subjects: []string{subject + ".>"}, Retention: jetstream.WorkQueuePolicy},
		{Name: "OTHER", Subjects: []string{"other"}},
	} {
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		to := "other"
		if i < 7 {
			to = fmt.Sprintf("%s.%08x-0000-4000-8000-000000000000", subject, i%2)
		}
		if _, err := js.Publish(ctx, to, []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}

	// The test server's own account is $G (no operator mode).
	q := u.Query()
	q.Set("acc", server.DEFAULT_GLOBAL_ACCOUNT)
	u.Host, u.RawQuery = ns.MonitorAddr().String(), q.Encode()
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v\n%s", u, resp.Status, err, body)
	}
	if v := gjson.GetBytes(body, meta["valueLocation"].(string)); v.Type != gjson.Number || v.Num != 7 {
		t.Errorf("valueLocation %s reads %v (%s), want the input stream's 7 messages", meta["valueLocation"], v, v.Type)
	}
}
