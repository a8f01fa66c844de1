package worker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	tenantA = "4f1c2d3e-0000-4000-8000-000000000001"
	tenantB = "9a8b7c6d-0000-4000-8000-000000000002"
	appID   = "11111111-2222-4333-8444-555555555555"
)

// deployment is the base of the tests: a deployment's own settings.
var deployment = Tenant{Cloud: "global", Rate: 5, Burst: 1, ClientID: appID}

func TestParseTenantsExample(t *testing.T) {
	// CONTRACT section 6's example, as it stands there.
	const file = `defaults: {cloud: global, rate: 5, burst: 1}      # optional
tenants:
  - id: 4f1c2d3e-0000-4000-8000-000000000001      # directory (tenant) id, a GUID
    name: contoso                                  # optional, for logs and metrics
  - id: 9a8b7c6d-0000-4000-8000-000000000002
    cloud: usgov                                   # optional overrides: cloud, rate, burst,
    rate: 10                                       #   graphBaseUrl, clientId, and one of
                                                   #   clientSecretFile, clientCertFile
`
	got, err := ParseTenants("tenants.yaml", []byte(file), Tenant{ClientID: appID})
	if err != nil {
		t.Fatal(err)
	}
	want := []Tenant{
		{ID: tenantA, Name: "contoso", Cloud: "global", Rate: 5, Burst: 1, ClientID: appID},
		{ID: tenantB, Cloud: "usgov", Rate: 10, Burst: 1, ClientID: appID},
	}
	if !slices.Equal(got, want) {
		t.Errorf("ParseTenants =\n%+v\nwant\n%+v", got, want)
	}
	if got[0].Label() != "contoso" || got[1].Label() != tenantB {
		t.Errorf("labels %q, %q", got[0].Label(), got[1].Label())
	}
}

// TestParseTenantsResolution: base < defaults < tenant, key by key.
func TestParseTenantsResolution(t *testing.T) {
	base := Tenant{Cloud: "global", Rate: 5, Burst: 1, GraphBaseURL: "http://127.0.0.1:9/beta", ClientID: appID, ClientSecretFile: "/run/secrets/deployment"}
	tests := []struct {
		name     string
		base     Tenant
		defaults string
		tenant   string
		want     Tenant
	}{
		{name: "base alone", base: base, want: base},
		{name: "zero base: the contract's defaults", want: Tenant{Cloud: "global", Rate: DefaultRate, Burst: DefaultBurst}},
		{name: "base cloud in other case", base: Tenant{Cloud: "USGov"}, want: Tenant{Cloud: "usgov", Rate: DefaultRate, Burst: DefaultBurst}},
		{name: "defaults over base", base: base, defaults: "{cloud: china, rate: 2.5, burst: 3}",
			want: Tenant{Cloud: "china", Rate: 2.5, Burst: 3, GraphBaseURL: base.GraphBaseURL, ClientID: appID, ClientSecretFile: base.ClientSecretFile}},
		{name: "tenant over defaults", base: base, defaults: "{cloud: china, rate: 2.5, burst: 3}", tenant: "cloud: usgovdod\n    rate: 7\n    graphBaseUrl: https://emulator.example/beta",
			want: Tenant{Cloud: "usgovdod", Rate: 7, Burst: 3, GraphBaseURL: "https://emulator.example/beta", ClientID: appID, ClientSecretFile: base.ClientSecretFile}},
		{name: "tenant's own app", base: base, tenant: "clientId: 99999999-2222-4333-8444-555555555555\n    clientCertFile: /run/secrets/a.pem",
			want: Tenant{Cloud: "global", Rate: 5, Burst: 1, GraphBaseURL: base.GraphBaseURL, ClientID: "99999999-2222-4333-8444-555555555555", ClientCertFile: "/run/secrets/a.pem"}},
		{name: "defaults' secret replaces base's", base: base, defaults: "{clientSecretFile: /run/secrets/d}",
			want: Tenant{Cloud: "global", Rate: 5, Burst: 1, GraphBaseURL: base.GraphBaseURL, ClientID: appID, ClientSecretFile: "/run/secrets/d"}},
		{name: "tenant's cert replaces defaults' secret", base: base, defaults: "{clientSecretFile: /run/secrets/d}", tenant: "clientCertFile: /run/secrets/t.pem",
			want: Tenant{Cloud: "global", Rate: 5, Burst: 1, GraphBaseURL: base.GraphBaseURL, ClientID: appID, ClientCertFile: "/run/secrets/t.pem"}},
		{name: "integer rate", tenant: "rate: 10", want: Tenant{Cloud: "global", Rate: 10, Burst: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := "tenants:\n  - id: " + strings.ToUpper(tenantA) + "\n"
			if tt.tenant != "" {
				file += "    " + tt.tenant + "\n"
			}
			if tt.defaults != "" {
				file = "defaults: " + tt.defaults + "\n" + file
			}
			got, err := ParseTenants("tenants.yaml", []byte(file), tt.base)
			if err != nil {
				t.Fatalf("%s\n%v", file, err)
			}
			want := tt.want
			want.ID, want.Name = tenantA, "" // lower case
			if len(got) != 1 || got[0] != want {
				t.Errorf("%s\nParseTenants =\n%+v\nwant\n%+v", file, got, want)
			}
		})
	}
}

// TestParseTenantsErrors has a case per rule: the file, and each problem
// that must be reported (all of them), as its line and a part of its message.
func TestParseTenantsErrors(t *testing.T) {
	type problem struct {
		line int
		msg  string
	}
	one := func(line int, msg string) []problem { return []problem{{line, msg}} }
	// tenant is a file whose second tenant has the given extra lines, at line 5 on.
	tenant := func(lines ...string) string {
		return "tenants:\n  - id: " + tenantA + "\n    name: a\n  - id: " + tenantB + "\n    " + strings.Join(lines, "\n    ") + "\n"
	}
	tests := []struct {
		name string
		file string
		want []problem
	}{
		{"unknown key in a tenant", tenant("rat: 5"), one(5, `tenants[1].rat: unknown key: want id, name, cloud, rate`)},
		{"unknown key in defaults", "defaults: {rat: 5}\n" + tenant("name: b"), one(1, `defaults.rat: unknown key: want cloud, rate`)},
		{"unknown top-level key", "tenant:\n  - id: " + tenantA + "\n", []problem{{1, "tenant: unknown key"}, {1, "tenants: is required"}}},
		{"id in defaults", "defaults: {id: " + tenantA + "}\n" + tenant("name: b"), one(1, `defaults.id: unknown key: id is a tenant's`)},
		{"missing id", "tenants:\n  - name: a\n", one(2, "tenants[0].id: is required")},
		{"id not a GUID", tenant("name: b", "cloud: global") + "  - id: contoso.onmicrosoft.com\n", one(7, "tenants[2].id: must be a GUID")},
		{"id a number", "tenants:\n  - id: 42\n", one(2, "tenants[0].id: must be a GUID")},
		{"id null", "tenants:\n  - id:\n", one(2, "tenants[0].id: must be a non-empty string")},
		{"duplicate id", tenant("name: b") + "  - id: " + strings.ToUpper(tenantA) + "\n", one(6, "tenants[2].id: the same tenant as tenants[0]")},
		{"duplicate name", tenant("name: A"), one(4, "tenants[1].name: the same label as tenants[0]")},
		{"name that is another tenant's id", "tenants:\n  - id: " + tenantA + "\n  - id: " + tenantB + "\n    name: " + tenantA + "\n", one(3, "tenants[1].name: the same label as tenants[0]")},
		{"name not a safe label", tenant(`name: "a b"`), one(5, "tenants[1].name: must be 1 to 64 letters")},
		{"name with a quote", tenant(`name: 'a"b'`), one(5, "tenants[1].name: must be 1 to 64")},
		{"name too long", tenant("name: " + strings.Repeat("n", 65)), one(5, "tenants[1].name: must be 1 to 64")},
		{"unknown cloud", tenant("cloud: moon"), one(5, `tenants[1].cloud: unknown Graph cloud "moon"`)},
		{"rate 0", tenant("rate: 0"), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate negative", tenant("rate: -1"), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate a string", tenant(`rate: "5"`), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate a word", tenant("rate: fast"), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate infinite", tenant("rate: .inf"), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate not a number", tenant("rate: .nan"), one(5, "tenants[1].rate: must be a number above 0")},
		{"rate null", tenant("rate:"), one(5, "tenants[1].rate: must be a number above 0")},
		{"burst 0", tenant("burst: 0"), one(5, "tenants[1].burst: must be a whole number of at least 1")},
		{"burst a fraction", tenant("burst: 1.5"), one(5, "tenants[1].burst: must be a whole number")},
		{"burst in defaults", "defaults:\n  burst: -2\n" + tenant("name: b"), one(2, "defaults.burst: must be a whole number")},
		{"graphBaseUrl relative", tenant("graphBaseUrl: /beta"), one(5, "tenants[1].graphBaseUrl: must be an absolute http or https URL")},
		{"graphBaseUrl other scheme", tenant("graphBaseUrl: ftp://graph.example/beta"), one(5, "tenants[1].graphBaseUrl: must be an absolute http or https URL")},
		{"graphBaseUrl no host", tenant("graphBaseUrl: 'https:///beta'"), one(5, "tenants[1].graphBaseUrl: must be an absolute")},
		{"graphBaseUrl with a query", tenant("graphBaseUrl: https://graph.example/beta?x=1"), one(5, "tenants[1].graphBaseUrl: must not have a query")},
		{"graphBaseUrl with a password", tenant("graphBaseUrl: https://u:hunter2@graph.example/beta"), one(5, "tenants[1].graphBaseUrl: must not hold a user name or password")},
		{"clientId not a GUID", tenant("clientId: my-app"), one(5, "tenants[1].clientId: must be a GUID")},
		{"secret and cert", tenant("clientSecretFile: /run/s", "clientCertFile: /run/c.pem"), one(6, "tenants[1].clientCertFile: only one of clientSecretFile and clientCertFile")},
		{"secret and cert in defaults", "defaults: {clientCertFile: /c, clientSecretFile: /s}\n" + tenant("name: b"), one(1, "defaults.clientSecretFile: only one of")},
		{"key twice", tenant("rate: 1", "rate: 2"), one(6, "tenants[1].rate: set twice")},
		{"merge key", "base: &b {rate: 1}\n" + tenant("<<: *b"), []problem{{1, "base: unknown key"}, {6, "tenants[1]: merge keys"}}},
		{"no tenants key", "defaults: {rate: 1}\n", one(1, "tenants: is required")},
		{"no tenants", "tenants: []\n", one(1, "tenants: is empty")},
		{"tenants null", "tenants:\n", one(1, "tenants: must be a list of tenants")},
		{"tenants a mapping", "tenants: {id: " + tenantA + "}\n", one(1, "tenants: must be a list of tenants")},
		{"tenant not a mapping", "tenants:\n  - " + tenantA + "\n", one(2, "tenants[0]: must be a mapping")},
		{"defaults not a mapping", "defaults: 5\n" + tenant("name: b"), one(1, "defaults: must be a mapping")},
		{"empty file", "", one(0, "empty: want a list of tenants")},
		{"only a comment", "# tenants\n", one(0, "empty")},
		{"not a mapping", "- id: " + tenantA + "\n", one(1, ": must be a mapping")},
		{"not YAML", "tenants:\n  - id: " + tenantA + "\n    name: \"a\n", one(3, "not YAML: found unexpected end of stream")},
		// The parser names the line where the block holding the error begins.
		{"bad indentation", "tenants:\n  - id: " + tenantA + "\n  rate: 5\n", one(1, "not YAML: did not find expected '-' indicator")},
		{"tab indentation", "tenants:\n\t- id: x\n", one(0, "not YAML: ")},
		{"two documents", tenant("name: b") + "---\n" + tenant("name: c"), one(6, "a second YAML document")},
		{"every problem at once", "defaults: {rate: 0}\ntenants:\n  - id: x\n  - id: " + tenantA + "\n    burst: 0\n    rat: 1\n", []problem{
			{1, "defaults.rate"}, {3, "tenants[0].id: must be a GUID"}, {5, "tenants[1].burst"}, {6, "tenants[1].rat: unknown key"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseTenants("tenants.yaml", []byte(tt.file), deployment)
			if err == nil {
				t.Fatalf("accepted\n%s\nas %+v", tt.file, got)
			}
			if got != nil {
				t.Errorf("tenants %+v with the error", got)
			}
			var problems []*TenantsError
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var te *TenantsError
				if !errors.As(e, &te) {
					t.Fatalf("%T, not a *TenantsError: %v", e, e)
				}
				problems = append(problems, te)
			}
			if len(problems) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%v", len(problems), len(tt.want), err)
			}
			for i, w := range tt.want {
				prefix := "tenants.yaml:"
				if w.line > 0 {
					prefix = fmt.Sprintf("tenants.yaml:%d:", w.line)
				}
				if msg := problems[i].Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, w.msg) {
					t.Errorf("problem %d = %q, want %q... with %q", i, msg, prefix, w.msg)
				}
			}
		})
	}
}

// TestParseTenantsKeepsSecrets: whatever a file holds, its errors never quote
// a credential file's name nor a URL (which might hold a password).
func TestParseTenantsKeepsSecrets(t *testing.T) {
	const secret = "s3cr3t-Value"
	for _, file := range []string{
		"tenants:\n  - id: " + tenantA + "\n    clientSecretFile: /" + secret + "\n    clientCertFile: /" + secret + "\n",
		"tenants:\n  - id: " + tenantA + "\n    clientSecretFile: [" + secret + "]\n",
		"tenants:\n  - id: " + tenantA + "\n    graphBaseUrl: https://u:" + secret + "@x/beta\n",
		"tenants:\n  - id: " + tenantA + "\n    graphBaseUrl: ftp://" + secret + "\n",
		"defaults: {clientCertFile: " + secret + ", clientSecretFile: " + secret + "}\ntenants: []\n",
	} {
		_, err := ParseTenants("tenants.yaml", []byte(file), deployment)
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %v", file, err)
		}
	}
}

// A watchHarness runs WatchTenants on a file in a temporary directory,
// driving its polls and reloads, and sees what it applies and logs.
type watchHarness struct {
	path    string
	ticks   chan time.Time
	reload  chan struct{}
	applied chan []Tenant
	errors  chan string // messages of error log entries
	metrics *Metrics
	reg     *prometheus.Registry
}

func startWatch(t *testing.T, content string, opts ...WatchOption) *watchHarness {
	t.Helper()
	h := &watchHarness{
		path:    filepath.Join(t.TempDir(), "tenants.yaml"),
		ticks:   make(chan time.Time),
		reload:  make(chan struct{}),
		applied: make(chan []Tenant, 10),
		errors:  make(chan string, 10),
		reg:     prometheus.NewRegistry(),
	}
	h.metrics = NewMetrics(h.reg)
	h.write(t, content)
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zap.DebugLevel)
	logger := zap.New(core, zap.Hooks(func(e zapcore.Entry) error {
		if e.Level == zap.ErrorLevel {
			h.errors <- e.Message
		}
		return nil
	}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		WatchTenants(ctx, h.path, deployment, h.reload, func(ts []Tenant) { h.applied <- ts },
			append([]WatchOption{WatchTicks(h.ticks), WatchLogger(logger), WatchMetrics(h.metrics)}, opts...)...)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// write replaces the file as Kubernetes does a ConfigMap's: a new file
// renamed over the old one.
func (h *watchHarness) write(t *testing.T, content string) {
	t.Helper()
	tmp := h.path + ".new"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		t.Fatal(err)
	}
}

// poll makes the watcher read the file once more; it returns once the
// watcher has taken the tick (the read may still be under way).
func (h *watchHarness) poll() { h.ticks <- time.Now() }

func (h *watchHarness) wantApplied(t *testing.T, ids ...string) {
	t.Helper()
	select {
	case ts := <-h.applied:
		var got []string
		for _, tn := range ts {
			got = append(got, tn.ID)
		}
		if !slices.Equal(got, ids) {
			t.Fatalf("applied %v, want %v", got, ids)
		}
	case msg := <-h.errors:
		t.Fatalf("logged %q, want %v applied", msg, ids)
	case <-time.After(time.Minute):
		t.Fatalf("nothing applied, want %v", ids)
	}
}

func (h *watchHarness) wantError(t *testing.T) {
	t.Helper()
	select {
	case ts := <-h.applied:
		t.Fatalf("applied %+v, want an error logged", ts)
	case <-h.errors:
	case <-time.After(time.Minute):
		t.Fatal("no error logged")
	}
}

// quiet checks that the watcher has applied and logged nothing since: a
// poll's effects are all done once the next tick is taken.
func (h *watchHarness) quiet(t *testing.T) {
	t.Helper()
	h.poll()
	select {
	case ts := <-h.applied:
		t.Fatalf("applied %+v", ts)
	case msg := <-h.errors:
		t.Fatalf("logged %q", msg)
	default:
	}
}

func tenantsFile(ids ...string) string {
	s := "tenants:\n"
	for _, id := range ids {
		s += "  - id: " + id + "\n"
	}
	return s
}

func TestWatchTenants(t *testing.T) {
	h := startWatch(t, tenantsFile(tenantA))
	h.wantApplied(t, tenantA) // no WatchFrom: the first read applies
	h.quiet(t)                // unchanged

	// A tenant added is applied at the next poll, once.
	h.write(t, tenantsFile(tenantA, tenantB))
	h.poll()
	h.wantApplied(t, tenantA, tenantB)
	h.quiet(t)
	h.quiet(t)

	// An invalid file keeps the tenants in force.
	h.write(t, tenantsFile(tenantA)+"    rat: 5\n")
	h.poll()
	h.wantError(t)
	// Logged once, counted at every read: the two polls before the last
	// tick taken are done, that one may be.
	h.quiet(t)
	h.quiet(t)
	if n := testutil.ToFloat64(h.metrics.tenantsReloadErrors); n < 2 {
		t.Errorf("reload errors = %v, want 2 or more", n)
	}
	if n := testutil.ToFloat64(h.metrics.tenants); n != 2 {
		t.Errorf("tenants = %v, want 2, those in force", n)
	}
	// A reload judges it again.
	h.reload <- struct{}{}
	h.wantError(t)

	// Content that changes only in form applies nothing.
	h.write(t, "# the same tenants\n"+tenantsFile(tenantA, strings.ToUpper(tenantB)))
	h.poll()
	h.quiet(t)

	// A tenant removed, seen on a reload (SIGHUP).
	h.write(t, tenantsFile(tenantB))
	h.reload <- struct{}{}
	h.wantApplied(t, tenantB)
	if n := testutil.ToFloat64(h.metrics.tenants); n != 1 {
		t.Errorf("tenants = %v, want 1", n)
	}

	// A file gone keeps the tenants in force, and its return applies nothing new.
	if err := os.Remove(h.path); err != nil {
		t.Fatal(err)
	}
	h.poll()
	h.wantError(t)
	h.quiet(t)
	h.write(t, tenantsFile(tenantB))
	h.quiet(t)
	h.quiet(t)
}

func TestWatchTenantsFrom(t *testing.T) {
	current, err := ParseTenants("tenants.yaml", []byte(tenantsFile(tenantA)), deployment)
	if err != nil {
		t.Fatal(err)
	}
	// What start-up read is in force: the same file applies nothing.
	h := startWatch(t, tenantsFile(tenantA), WatchFrom(current))
	h.quiet(t)
	if n := testutil.ToFloat64(h.metrics.tenants); n != 1 {
		t.Errorf("tenants = %v, want 1", n)
	}
	// A change made between start-up's read and the watcher's first is applied.
	h2 := startWatch(t, tenantsFile(tenantA, tenantB), WatchFrom(current))
	h2.wantApplied(t, tenantA, tenantB)
}

func TestDiffTenants(t *testing.T) {
	a, b, c := Tenant{ID: tenantA, Name: "a"}, Tenant{ID: tenantB}, Tenant{ID: "c"}
	a2 := a
	a2.Rate = 9
	added, removed, changed := diffTenants([]Tenant{a, b}, []Tenant{a2, c})
	if !slices.Equal(added, []string{"c"}) || !slices.Equal(removed, []string{tenantB}) || !slices.Equal(changed, []string{"a"}) {
		t.Errorf("added %v, removed %v, changed %v", added, removed, changed)
	}
}

// TestTenantsDocs checks docs/configuration.md's tenants file section: its
// first example parses, and its second is refused with the errors shown.
func TestTenantsDocs(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(doc), "\n## The tenants file\n")
	if !ok {
		t.Fatal("no tenants file section")
	}
	var blocks []string
	for rest := section; ; {
		_, after, found := strings.Cut(rest, "```")
		if !found {
			break
		}
		_, after, _ = strings.Cut(after, "\n") // the info string
		block, next, _ := strings.Cut(after, "```")
		blocks, rest = append(blocks, block), next
	}
	if len(blocks) != 3 {
		t.Fatalf("%d code blocks, want the example, the invalid file and its errors", len(blocks))
	}
	if _, err := ParseTenants("tenants.yaml", []byte(blocks[0]), deployment); err != nil {
		t.Errorf("the example: %v", err)
	}
	_, err = ParseTenants("tenants.yaml", []byte(blocks[1]), deployment)
	if err == nil || err.Error()+"\n" != blocks[2] {
		t.Errorf("the invalid file's errors:\n%v\nthe docs show:\n%s", err, blocks[2])
	}
}
