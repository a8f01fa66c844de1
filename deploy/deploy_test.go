// Package deploy_test checks the packaging: the Dockerfile, docker-compose.yml, the
// Kubernetes manifests, the NATS chart values, the alert rules and the Grafana dashboard.
// Nothing here is built or applied (no Docker engine or cluster in CI); each file is parsed
// and held to what the code does, above all that the metric names the rules and dashboard
// query are the ones hwstate exports.
package deploy_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// root is the repository, from this package's directory.
const root = ".."

// readYAML decodes every document of a YAML file.
func readYAML(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s: no YAML document", path)
	}
	return docs
}

// dig follows keys (and list indexes as ints) into decoded YAML or JSON; nil when absent.
func dig(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func TestEveryYAMLAndJSONParses(t *testing.T) {
	var n int
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// Helm templates are not YAML until rendered (TestHelmChart renders them).
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "testdata" || d.Name() == "templates" && filepath.Base(filepath.Dir(filepath.Dir(path))) == "helm") {
			return filepath.SkipDir
		}
		switch filepath.Ext(path) {
		case ".yml", ".yaml":
			n++
			readYAML(t, path)
		case ".json":
			n++
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(data) {
				t.Errorf("%s: not valid JSON", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("only %d YAML and JSON files found: is the walk looking in the right place?", n)
	}
}

func TestDockerfile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Instructions, continuation lines joined.
	var instrs [][2]string
	sc := bufio.NewScanner(strings.NewReader(strings.ReplaceAll(string(data), "\\\n", " ")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		op, arg, _ := strings.Cut(line, " ")
		instrs = append(instrs, [2]string{strings.ToUpper(op), strings.TrimSpace(arg)})
	}
	var froms []string
	lastFrom, user := -1, ""
	for i, in := range instrs {
		switch in[0] {
		case "FROM":
			from := in[1]
			if strings.HasPrefix(from, "--platform=") { // cross-compiled for each target
				_, from, _ = strings.Cut(from, " ")
			}
			froms = append(froms, from)
			lastFrom, user = i, ""
		case "USER":
			user = in[1]
		}
	}
	if len(froms) < 2 {
		t.Fatalf("FROM %v: want a multi-stage build", froms)
	}
	if !strings.Contains(froms[0], " AS ") || !strings.HasPrefix(froms[0], "golang:1.26") {
		t.Errorf("first stage %q: want a named golang:1.26 build stage", froms[0])
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("final stage %q: want a static distroless or scratch image", final)
	}
	name, _, _ := strings.Cut(user, ":")
	if user == "" || name == "root" || name == "0" {
		t.Errorf("final stage runs as %q: want a non-root USER", user)
	}
	rest := instrs[lastFrom:]
	has := func(op, substr string, in [][2]string) bool {
		return slices.ContainsFunc(in, func(i [2]string) bool { return i[0] == op && strings.Contains(i[1], substr) })
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "-X main.commit=", "./cmd/hwstate"} {
		if !has("RUN", want, instrs[:lastFrom]) {
			t.Errorf("the build stage does not build with %s", want)
		}
	}
	if !has("EXPOSE", "8080", rest) {
		t.Error("no EXPOSE 8080 (the HTTP address of /healthz, /readyz, /metrics)")
	}
	if !has("COPY", "--from=", rest) {
		t.Error("the final stage does not copy the binary from the build stage")
	}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(ignore)), ".git") {
		t.Error(".dockerignore does not keep .git out of the build context")
	}
}

// TestCIRunsREADMECommand holds the README's test command and .ci/run's together: the
// README promises it is exactly what CI runs.
func TestCIRunsREADMECommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var cmd string
	for line := range strings.Lines(string(readme)) {
		if strings.HasPrefix(line, "go test ") {
			cmd = strings.TrimSpace(line)
			break
		}
	}
	if cmd == "" {
		t.Fatal("README.md: no line starting with go test")
	}
	if !strings.Contains(cmd, "cd deploy") {
		t.Errorf("README.md's test command %q does not run deploy/'s tests", cmd)
	}
	if !strings.Contains(string(ci), "\n"+cmd) {
		t.Errorf(".ci/run does not run README.md's test command %q", cmd)
	}
}

func TestCompose(t *testing.T) {
	compose := readYAML(t, filepath.Join(root, "docker-compose.yml"))[0]
	services, _ := compose["services"].(map[string]any)
	for _, name := range []string{"nats", "emulator", "hwstate", "prometheus", "grafana"} {
		if services[name] == nil {
			t.Errorf("service %s missing", name)
		}
	}
	if conf, err := os.ReadFile(filepath.Join(root, "deploy/compose/nats.conf")); err != nil || !strings.Contains(string(conf), "jetstream") {
		t.Errorf("deploy/compose/nats.conf does not enable JetStream (%v)", err)
	}
	if img, _ := dig(services, "nats", "image").(string); !strings.HasPrefix(img, "nats:") {
		t.Errorf("nats image %q: want the official image", img)
	}
	env, _ := dig(services, "hwstate", "environment").(map[string]any)
	for key, want := range map[string]string{
		"HWSTATE_NATS_URL":  "tls://nats:4222",
		"HWSTATE_HTTP_ADDR": ":8080",
	} {
		if got, _ := env[key].(string); !strings.Contains(got, want) {
			t.Errorf("hwstate %s = %q, want it to contain %q", key, got, want)
		}
	}
	if cmd := flatten(dig(services, "emulator", "command")); !strings.Contains(cmd, "emulate-graph") || !strings.Contains(cmd, "0.0.0.0:8081") {
		t.Errorf("emulator command %q: want emulate-graph on 0.0.0.0:8081", cmd)
	}
	// Every file mounted from the repository exists.
	for name, svc := range services {
		vols, _ := dig(svc, "volumes").([]any)
		for _, v := range vols {
			src, _, _ := strings.Cut(v.(string), ":")
			if !strings.HasPrefix(src, "./") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, src)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, src, err)
			}
		}
	}
	prom := readYAML(t, filepath.Join(root, "deploy/prometheus/prometheus.yml"))[0]
	if got := flatten(dig(prom, "scrape_configs", 0, "static_configs", 0, "targets")); got != "hwstate:8080" {
		t.Errorf("Prometheus scrapes %q, want hwstate:8080", got)
	}
	if got := flatten(dig(prom, "rule_files")); !strings.HasSuffix(got, "alerts.yml") {
		t.Errorf("Prometheus rule files %q, want the alert rules", got)
	}
}

// flatten joins a YAML scalar or list of scalars with spaces.
func flatten(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, flatten(e))
		}
		return strings.Join(parts, " ")
	}
	return ""
}

// manifests renders the kustomization with the monitoring component and returns its objects decoded, by kind; every object is
// strictly decoded into its Go type or checked against its CRD on the way.
func manifests(t *testing.T) map[string]map[string]any {
	t.Helper()
	objs := map[string]map[string]any{}
	rendered := kustomize(t, withComponents(t, "monitoring"))
	checkRestricted(t, rendered)
	for _, o := range rendered {
		decodeStrict(t, o)
		if o.Kind != "Namespace" && o.Namespace != "hwstate" {
			t.Errorf("%s in namespace %q, want hwstate", o, o.Namespace)
		}
		var doc map[string]any
		if err := json.Unmarshal(o.JSON, &doc); err != nil {
			t.Fatal(err)
		}
		kind := o.Kind
		if dig(doc, "metadata", "labels", "grafana_dashboard") != nil {
			kind = "dashboard"
		}
		if objs[kind] != nil {
			t.Errorf("two %s objects rendered", kind)
		}
		objs[kind] = doc
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	objs := manifests(t)
	for _, kind := range []string{"Namespace", "Deployment", "ConfigMap", "PodDisruptionBudget", "ScaledObject", "Service", "NetworkPolicy", "PodMonitor", "PrometheusRule", "dashboard"} {
		if objs[kind] == nil {
			t.Fatalf("no %s in the kustomization", kind)
		}
	}
	// Secrets come from the operator's secret store: one in the kustomization would
	// overwrite the real one on every apply.
	if objs["Secret"] != nil {
		t.Error("the kustomization renders a Secret")
	}
	if got := dig(objs["Namespace"], "metadata", "labels", "pod-security.kubernetes.io/enforce"); got != "restricted" {
		t.Errorf("namespace enforces Pod Security %v, want restricted", got)
	}
	config := objs["ConfigMap"]
	// Generated: the name carries a hash of the data, so an edit rolls the pods.
	if name, _ := dig(config, "metadata", "name").(string); !regexp.MustCompile(`^hwstate-config-[a-z0-9]{10}$`).MatchString(name) {
		t.Errorf("ConfigMap %s: want hwstate-config with a content hash", name)
	}
	if objs["dashboard"] == nil {
		t.Error("no Grafana dashboard ConfigMap")
	}
	cm, _ := dig(config, "data").(map[string]any)
	for key := range cm {
		if !strings.HasPrefix(key, "HWSTATE_") {
			t.Errorf("ConfigMap key %s is not an HWSTATE_ setting", key)
		}
	}

	dep := objs["Deployment"]
	if r := dig(dep, "spec", "replicas"); r != nil {
		t.Errorf("Deployment sets replicas: %v; KEDA owns the count", r)
	}
	pod := dig(dep, "spec", "template", "spec")
	c := dig(pod, "containers", 0)
	if img, _ := dig(c, "image").(string); !regexp.MustCompile(`^ghcr\.io/hwstate/hwstate:\d+\.\d+\.\d+$`).MatchString(img) {
		t.Errorf("Deployment image %q: want ghcr.io/hwstate/hwstate at a released version", img)
	}
	for _, check := range []struct {
		what string
		got  any
		want any
	}{
		{"runAsNonRoot", dig(pod, "securityContext", "runAsNonRoot"), true},
		{"readOnlyRootFilesystem", dig(c, "securityContext", "readOnlyRootFilesystem"), true},
		{"allowPrivilegeEscalation", dig(c, "securityContext", "allowPrivilegeEscalation"), false},
		{"liveness probe path", dig(c, "livenessProbe", "httpGet", "path"), "/healthz"},
		{"readiness probe path", dig(c, "readinessProbe", "httpGet", "path"), "/readyz"},
		{"container port", dig(c, "ports", 0, "containerPort"), float64(8080)},
		{"config from", dig(c, "envFrom", 0, "configMapRef", "name"), dig(config, "metadata", "name")},
	} {
		if check.got != check.want {
			t.Errorf("Deployment %s = %v, want %v", check.what, check.got, check.want)
		}
	}
	for _, r := range []string{"requests", "limits"} {
		if dig(c, "resources", r, "memory") == nil {
			t.Errorf("Deployment has no memory %s", r)
		}
	}
	// The client secret comes from the Secret; every file setting points into a mounted one.
	if ref := dig(c, "env", 0, "valueFrom", "secretKeyRef", "name"); dig(c, "env", 0, "name") != "HWSTATE_CLIENT_SECRET" || ref != "hwstate-credentials" {
		t.Errorf("HWSTATE_CLIENT_SECRET from %v, want the Secret hwstate-credentials", ref)
	}
	mounts := map[string]bool{}
	for _, m := range dig(c, "volumeMounts").([]any) {
		mounts[dig(m, "mountPath").(string)] = true
	}
	for _, key := range []string{"HWSTATE_NATS_CREDS", "HWSTATE_NATS_CA"} {
		path, _ := cm[key].(string)
		if !mounts[filepath.Dir(path)] {
			t.Errorf("%s = %q is not in a mounted volume (%v)", key, path, mounts)
		}
	}
	// The grace period outlasts the drain: a create in flight (Graph timeout) and, beyond it,
	// the consumer's ack wait.
	ackWait := worker.DefaultAckWait
	if s, ok := cm["HWSTATE_ACK_WAIT"].(string); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("HWSTATE_ACK_WAIT: %v", err)
		}
		ackWait = d
	}
	grace, _ := dig(pod, "terminationGracePeriodSeconds").(float64)
	if time.Duration(grace)*time.Second <= ackWait {
		t.Errorf("terminationGracePeriodSeconds %v is not longer than the ack wait %s", grace, ackWait)
	}

	so := objs["ScaledObject"]
	if got := dig(so, "spec", "scaleTargetRef", "name"); got != dig(dep, "metadata", "name") {
		t.Errorf("ScaledObject scales %v, not the Deployment", got)
	}
	// cooldownPeriod only governs scaling to zero; above it the HPA's behaviour does.
	if min, _ := dig(so, "spec", "minReplicaCount").(float64); min > 0 && dig(so, "spec", "cooldownPeriod") != nil {
		t.Error("ScaledObject sets cooldownPeriod, which does nothing at minReplicaCount > 0")
	}
	if dig(so, "spec", "advanced", "horizontalPodAutoscalerConfig", "behavior", "scaleDown", "stabilizationWindowSeconds") == nil {
		t.Error("ScaledObject has no scale-down stabilization")
	}
	trig := dig(so, "spec", "triggers", 0)
	if dig(trig, "type") != "nats-jetstream" {
		t.Errorf("trigger type %v, want nats-jetstream", dig(trig, "type"))
	}
	setting := func(key, def string) string {
		if v, ok := cm[key].(string); ok {
			return v
		}
		return def
	}
	for key, want := range map[string]string{
		"stream":   setting("HWSTATE_STREAM", worker.DefaultStream),
		"consumer": setting("HWSTATE_CONSUMER", worker.DefaultConsumer),
	} {
		if got := dig(trig, "metadata", key); got != want {
			t.Errorf("trigger %s = %v, want %q (what the worker uses)", key, got, want)
		}
	}
	for _, key := range []string{"natsServerMonitoringEndpoint", "account", "lagThreshold", "activationLagThreshold"} {
		if dig(trig, "metadata", key) == nil {
			t.Errorf("trigger metadata %s missing", key)
		}
	}
	if sel, want := dig(objs["PodDisruptionBudget"], "spec", "selector", "matchLabels"), dig(dep, "spec", "selector", "matchLabels"); flattenMap(sel) != flattenMap(want) {
		t.Errorf("PodDisruptionBudget selects %v, the Deployment's pods are %v", sel, want)
	}
	if sel, want := dig(objs["NetworkPolicy"], "spec", "podSelector", "matchLabels"), dig(dep, "spec", "selector", "matchLabels"); flattenMap(sel) != flattenMap(want) {
		t.Errorf("NetworkPolicy selects %v, the Deployment's pods are %v", sel, want)
	}

	nats := readYAML(t, filepath.Join(root, "deploy/nats-values.yaml"))[0]
	if dig(nats, "config", "cluster", "enabled") != true || dig(nats, "config", "cluster", "replicas") != 3 || dig(nats, "config", "jetstream", "enabled") != true {
		t.Error("nats-values.yaml: want config.cluster enabled with 3 replicas and JetStream enabled")
	}
	if dig(nats, "config", "nats", "tls", "enabled") != true {
		t.Error("nats-values.yaml: clients do not connect over TLS")
	}
	if setting("HWSTATE_REPLICAS", "1") != "3" {
		t.Error("HWSTATE_REPLICAS is not 3 on the three-node cluster")
	}
	if url := setting("HWSTATE_NATS_URL", ""); !strings.HasPrefix(url, "tls://") {
		t.Errorf("HWSTATE_NATS_URL %q is not TLS", url)
	}
}

func flattenMap(v any) string {
	m, _ := v.(map[string]any)
	var parts []string
	for k, x := range m {
		parts = append(parts, k+"="+flatten(x))
	}
	slices.Sort(parts)
	return strings.Join(parts, ",")
}

// exported is every metric name a running `hwstate run` serves on /metrics (against the
// sandbox's JetStream server and Graph emulator), with the series names a histogram adds,
// and the label values of each label.
func exported(t *testing.T) (names map[string]bool, labels map[string]map[string][]string) {
	t.Helper()
	bin := hwstate.Path(t)
	sb := proctest.NewSandbox(t, emulator.Config{})
	p := proctest.Start(t, bin, []string{
		"HWSTATE_NATS_URL=" + sb.NATSURL,
		"HWSTATE_GRAPH_BASE_URL=" + sb.GraphURL,
		"HWSTATE_GRAPH_TOKEN=" + sb.Token,
		"HWSTATE_HTTP_ADDR=127.0.0.1:0",
	}, "run")
	p.WaitOutput(t, `"msg":"worker started"`, time.Minute)
	addr := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`).FindStringSubmatch(p.Output())
	if addr == nil {
		t.Fatalf("no listen address in the log:\n%s", p.Output())
	}
	resp, err := http.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	names = map[string]bool{"up": true} // Prometheus's own, per scrape target
	labels = map[string]map[string][]string{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[f.GetName()] == nil {
					labels[f.GetName()] = map[string][]string{}
				}
				labels[f.GetName()][l.GetName()] = append(labels[f.GetName()][l.GetName()], l.GetValue())
			}
		}
	}
	if !names["hwstate_events_total"] || !names["process_cpu_seconds_total"] {
		t.Fatalf("/metrics lacks hwstate's or the process's metrics: %v", names)
	}
	return names, labels
}

var (
	metricName = regexp.MustCompile(`\b(?:hwstate|go|process)_[a-z0-9_]+\b`)
	// A selector with label matchers: name{label="value", label=~"a|b"}.
	selector = regexp.MustCompile(`\b(hwstate_[a-z0-9_]+)\{([^}]*)\}`)
	matcher  = regexp.MustCompile(`([a-z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
)

// queries are the PromQL expressions of the alert rules and the dashboard.
func queries(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	rules := readYAML(t, filepath.Join(root, "deploy/prometheus/alerts.yml"))[0]
	groups, _ := rules["groups"].([]any)
	for _, g := range groups {
		rs, _ := dig(g, "rules").([]any)
		for _, r := range rs {
			out["alerts.yml"] = append(out["alerts.yml"], dig(r, "expr").(string))
		}
	}
	data, err := os.ReadFile(filepath.Join(root, "deploy/grafana/hwstate.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				out["hwstate.json"] = append(out["hwstate.json"], e)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(dash)
	return out
}

func TestRulesAndDashboardUseExportedMetrics(t *testing.T) {
	names, labels := exported(t)
	used := map[string]bool{}
	for file, exprs := range queries(t) {
		if len(exprs) < 5 {
			t.Errorf("%s: only %d expressions found", file, len(exprs))
		}
		for _, e := range exprs {
			for _, name := range metricName.FindAllString(e, -1) {
				used[name] = true
				if !names[name] {
					t.Errorf("%s: %q uses %s, which hwstate does not export", file, e, name)
				}
			}
			for _, sel := range selector.FindAllStringSubmatch(e, -1) {
				for _, m := range matcher.FindAllStringSubmatch(sel[2], -1) {
					values, ok := labels[sel[1]][m[1]]
					if !ok {
						t.Errorf("%s: %q selects label %s, which %s does not have", file, e, m[1], sel[1])
						continue
					}
					if m[2] == "=" || m[2] == "!=" {
						if !slices.Contains(values, m[3]) {
							t.Errorf("%s: %q: %s{%s} is never %q (it is one of %v)", file, e, sel[1], m[1], m[3], values)
						}
						continue
					}
					for _, alt := range strings.Split(m[3], "|") {
						if !slices.Contains(values, alt) {
							t.Errorf("%s: %q: %s{%s} is never %q (it is one of %v)", file, e, sel[1], m[1], alt, values)
						}
					}
				}
			}
		}
	}
	// The alerts the issue asks for watch these.
	for _, name := range []string{"hwstate_breaker_state", "hwstate_events_total", "hwstate_consumer_pending", "hwstate_throttle_pause_seconds_total"} {
		if !used[name] {
			t.Errorf("no rule or panel uses %s", name)
		}
	}
	// And the dashboard shows every hwstate figure.
	for name := range names {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if strings.HasPrefix(name, "hwstate_") && base == name && !used[name] && !used[name+"_bucket"] {
			t.Errorf("%s is exported but neither a rule nor the dashboard uses it", name)
		}
	}
}
