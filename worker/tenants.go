package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.yaml.in/yaml/v3"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/schema"
)

// This file is multi-tenant mode's tenants file (CONTRACT section 6): its
// parsing, each tenant's settings resolved, and a watcher that reloads it.

// Tenant is one tenant of multi-tenant mode, with every setting resolved.
type Tenant struct {
	ID           string // directory (tenant) id, a GUID, lower case
	Name         string // optional; Label returns Name or ID
	Cloud        string // a graph.Clouds name: global, usgov, usgovdod, china
	Rate         float64
	Burst        int
	GraphBaseURL string // "" = the cloud's
	ClientID     string
	// At most one of these is set; both "": the deployment's credential.
	ClientSecretFile, ClientCertFile string
}

// Label names the tenant in logs and in metrics' tenant label: its name, or
// its id when it has none. Labels are unique within a tenants file.
func (t Tenant) Label() string {
	if t.Name != "" {
		return t.Name
	}
	return t.ID
}

// A TenantsError is one problem of a tenants file. ParseTenants joins all it
// finds (errors.Join), each one of these.
type TenantsError struct {
	File string
	Line int    // 0 when the problem has no line, such as a file without tenants
	Key  string // the setting at fault, such as "tenants[1].rate"; "" for the file
	// Reason says what is wrong. It never holds a value of a file-name setting.
	Reason string
}

// Error reads "tenants.yaml:7: tenants[1].rate: must be a number above 0".
func (e *TenantsError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	if e.Key != "" {
		b.WriteString(": " + e.Key)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// ReadTenants reads and parses the tenants file at path (see ParseTenants).
func ReadTenants(path string, base Tenant) ([]Tenant, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	return ParseTenants(path, data, base)
}

// ParseTenants parses a tenants file, whose name is for errors. base holds the
// deployment's settings (HWSTATE_GRAPH_CLOUD, HWSTATE_RATE, HWSTATE_BURST,
// HWSTATE_GRAPH_BASE_URL, HWSTATE_CLIENT_ID; its zero Cloud, Rate and Burst
// are the contract's defaults); the file's defaults override base, and a
// tenant's own keys override defaults. A credential file set at one level
// replaces both of the level below: a tenant with its own clientCertFile does
// not inherit a clientSecretFile. The error joins every problem found, each a
// *TenantsError.
func ParseTenants(name string, data []byte, base Tenant) ([]Tenant, error) {
	p := tenantsParser{file: name}
	root := p.document(data)
	if root == nil {
		return nil, errors.Join(p.errs...)
	}
	base = baseTenant(base)
	var tenantsNode *yaml.Node
	p.mapping(root, "", func(key string, k, v *yaml.Node) {
		switch key {
		case "defaults":
			if p.isMapping(v, key) {
				base = p.settings(v, key, base, false)
			}
		case "tenants":
			tenantsNode = v
		default:
			p.fail(k, key, "unknown key: want defaults or tenants")
		}
	})
	if tenantsNode == nil {
		p.fail(root, "tenants", "is required: a list of at least one tenant")
		return nil, errors.Join(p.errs...)
	}
	tenants := p.tenants(tenantsNode, base)
	if len(p.errs) > 0 {
		return nil, errors.Join(p.errs...)
	}
	return tenants, nil
}

// baseTenant is base with the contract's defaults where it has none.
func baseTenant(base Tenant) Tenant {
	if base.Cloud == "" {
		base.Cloud = graph.Clouds()[0].Name
	} else if c, err := graph.CloudByName(base.Cloud); err == nil {
		base.Cloud = c.Name
	}
	positive(&base.Rate, DefaultRate)
	positive(&base.Burst, DefaultBurst)
	return base
}

// A tenantsParser walks a tenants file's YAML, collecting every problem.
type tenantsParser struct {
	file string
	errs []error
}

func (p *tenantsParser) fail(n *yaml.Node, key, reason string) {
	line := 0
	if n != nil {
		line = n.Line
	}
	p.errs = append(p.errs, &TenantsError{File: p.file, Line: line, Key: key, Reason: reason})
}

// yamlLine finds the line in a message of the YAML parser ("yaml: line 3: ...").
var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// document parses data as one YAML document and returns its root node, or
// nil after recording why it is none.
func (p *tenantsParser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := dec.Decode(&doc); {
	case err == io.EOF:
		p.fail(nil, "", "empty: want a list of tenants")
		return nil
	case err != nil:
		p.syntaxError(err)
		return nil
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		p.fail(&next, "", "a second YAML document: want one")
		return nil
	case err != io.EOF:
		p.syntaxError(err)
		return nil
	}
	if len(doc.Content) == 0 {
		p.fail(&doc, "", "empty: want a list of tenants")
		return nil
	}
	root := deref(doc.Content[0])
	if !p.isMapping(root, "") {
		return nil
	}
	return root
}

func (p *tenantsParser) syntaxError(err error) {
	// The parser's messages name the token expected, not the text found:
	// nothing of the file is echoed.
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	p.errs = append(p.errs, &TenantsError{File: p.file, Line: line, Reason: "not YAML: " + msg})
}

// deref is n, or what n refers to when it is an alias (*anchor).
func deref(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func (p *tenantsParser) isMapping(n *yaml.Node, key string) bool {
	if n.Kind != yaml.MappingNode {
		p.fail(n, key, "must be a mapping of keys to values")
		return false
	}
	return true
}

// mapping calls each for every key of the mapping n (at key, "" for the
// root) once, reporting keys that are not strings or come twice.
func (p *tenantsParser) mapping(n *yaml.Node, at string, each func(key string, k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		path := k.Value
		if at != "" {
			path = at + "." + k.Value
		}
		switch {
		case k.Tag == "!!merge":
			p.fail(k, at, "merge keys (<<) are not supported: use defaults")
		case k.Kind != yaml.ScalarNode || k.Tag != "!!str":
			p.fail(k, at, "keys must be strings")
		case seen[k.Value]:
			p.fail(k, path, "set twice")
		default:
			seen[k.Value] = true
			each(k.Value, k, v)
		}
	}
}

// tenants reads the list of tenants n, each from base.
func (p *tenantsParser) tenants(n *yaml.Node, base Tenant) []Tenant {
	if n.Kind != yaml.SequenceNode {
		p.fail(n, "tenants", "must be a list of tenants")
		return nil
	}
	if len(n.Content) == 0 {
		p.fail(n, "tenants", "is empty: want at least one tenant")
		return nil
	}
	tenants := make([]Tenant, 0, len(n.Content))
	ids := map[string]int{}    // lower-case id -> index
	labels := map[string]int{} // lower-case label -> index
	for i, item := range n.Content {
		item = deref(item)
		at := fmt.Sprintf("tenants[%d]", i)
		if !p.isMapping(item, at) {
			continue
		}
		t := p.settings(item, at, base, true)
		if t.ID == "" {
			continue // reported by settings
		}
		if j, dup := ids[t.ID]; dup {
			p.fail(item, at+".id", fmt.Sprintf("the same tenant as tenants[%d]", j))
			continue
		}
		ids[t.ID] = i
		if j, dup := labels[strings.ToLower(t.Label())]; dup {
			p.fail(item, at+".name", fmt.Sprintf("the same label as tenants[%d] (names are told apart without regard to case, and a tenant without a name is labelled by its id)", j))
		}
		labels[strings.ToLower(t.Label())] = i
		tenants = append(tenants, t)
	}
	return tenants
}

// labelPattern is what a tenant's name may be: a safe metric label value and log field.
var labelPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// settings reads the mapping n (at key at) over t: a tenant's when tenant,
// else the file's defaults.
func (p *tenantsParser) settings(n *yaml.Node, at string, t Tenant, tenant bool) Tenant {
	var secretNode *yaml.Node
	idSet := false
	p.mapping(n, at, func(key string, k, v *yaml.Node) {
		path := at + "." + key
		switch key {
		case "id", "name":
			if !tenant {
				p.fail(k, path, "unknown key: "+key+" is a tenant's, not of defaults")
				return
			}
			idSet = idSet || key == "id"
			s, ok := p.str(v, path)
			switch {
			case !ok:
			case key == "id" && !schema.IsGUID(s):
				p.fail(v, path, "must be a GUID (8-4-4-4-12 hex digits), the tenant's directory id")
			case key == "id":
				t.ID = strings.ToLower(s)
			case !labelPattern.MatchString(s):
				p.fail(v, path, "must be 1 to 64 letters, digits, '_', '.' or '-' (it becomes a metric label)")
			default:
				t.Name = s
			}
		case "cloud":
			if s, ok := p.str(v, path); ok {
				if c, err := graph.CloudByName(s); err != nil {
					p.fail(v, path, err.Error())
				} else {
					t.Cloud = c.Name
				}
			}
		case "rate":
			if r, ok := p.rate(v); ok {
				t.Rate = r
			} else {
				p.fail(v, path, "must be a number above 0 (Graph creates per second)")
			}
		case "burst":
			if b, err := strconv.Atoi(v.Value); v.Kind == yaml.ScalarNode && v.Tag == "!!int" && err == nil && b >= 1 {
				t.Burst = b
			} else {
				p.fail(v, path, "must be a whole number of at least 1")
			}
		case "graphBaseUrl":
			if s, ok := p.str(v, path); ok {
				if reason := checkBaseURL(s); reason != "" {
					p.fail(v, path, reason)
				} else {
					t.GraphBaseURL = s
				}
			}
		case "clientId":
			if s, ok := p.str(v, path); ok {
				if !schema.IsGUID(s) {
					p.fail(v, path, "must be a GUID (8-4-4-4-12 hex digits), the app registration's application (client) id")
				} else {
					t.ClientID = s
				}
			}
		case "clientSecretFile", "clientCertFile":
			if secretNode != nil {
				p.fail(k, path, "only one of clientSecretFile and clientCertFile may be set")
				return
			}
			secretNode = k
			if s, ok := p.str(v, path); ok {
				// A level's credential replaces both of the level below.
				t.ClientSecretFile, t.ClientCertFile = "", ""
				if key == "clientSecretFile" {
					t.ClientSecretFile = s
				} else {
					t.ClientCertFile = s
				}
			}
		default:
			p.fail(k, path, "unknown key: want "+settingKeys(tenant))
		}
	})
	if tenant && !idSet {
		p.fail(n, at+".id", "is required: the tenant's directory id, a GUID")
	}
	return t
}

// settingKeys lists the keys of a tenant, or of defaults, for errors.
func settingKeys(tenant bool) string {
	keys := "cloud, rate, burst, graphBaseUrl, clientId, clientSecretFile or clientCertFile"
	if tenant {
		keys = "id, name, " + keys
	}
	return keys
}

// str is v's value if it is a non-empty string; else it reports v at path.
func (p *tenantsParser) str(v *yaml.Node, path string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" || v.Value == "" {
		p.fail(v, path, "must be a non-empty string")
		return "", false
	}
	return v.Value, true
}

// rate is v's value if it is a finite number above 0.
func (p *tenantsParser) rate(v *yaml.Node) (float64, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" && v.Tag != "!!float" {
		return 0, false
	}
	r, err := strconv.ParseFloat(v.Value, 64)
	return r, err == nil && r > 0 && !math.IsInf(r, 0)
}

// checkBaseURL returns why s is not a Graph base URL, or "". The URL is not
// quoted back: it might hold a password.
func checkBaseURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		return "must be an absolute http or https URL, such as https://graph.microsoft.com/beta"
	case u.User != nil:
		return "must not hold a user name or password"
	case u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") || strings.HasSuffix(s, "#"):
		return "must not have a query or fragment: request paths are added to its end"
	}
	return ""
}

// DefaultTenantsPoll is how often WatchTenants reads the tenants file.
const DefaultTenantsPoll = 2 * time.Second

// A WatchOption changes how WatchTenants behaves.
type WatchOption func(*watchOptions)

type watchOptions struct {
	logger  *zap.Logger
	metrics *Metrics
	every   time.Duration
	ticks   <-chan time.Time
	current []Tenant
}

// WatchLogger sets the logger; the default logs nothing.
func WatchLogger(l *zap.Logger) WatchOption { return func(o *watchOptions) { o.logger = l } }

// WatchMetrics records the tenants listed and the failed reloads into m.
func WatchMetrics(m *Metrics) WatchOption { return func(o *watchOptions) { o.metrics = m } }

// WatchEvery sets how often the file is read (DefaultTenantsPoll).
func WatchEvery(d time.Duration) WatchOption { return func(o *watchOptions) { o.every = d } }

// WatchTicks reads the file at each tick of c instead of every WatchEvery:
// tests drive the polls.
func WatchTicks(c <-chan time.Time) WatchOption { return func(o *watchOptions) { o.ticks = c } }

// WatchFrom says which tenants are in force, as read at start-up by
// ReadTenants: the watcher applies only a list that differs. Without it, the
// first valid read is applied.
func WatchFrom(current []Tenant) WatchOption {
	return func(o *watchOptions) { o.current = current }
}

// WatchTenants keeps the tenants in force in step with the tenants file at
// path (parsed with base, as ReadTenants) until ctx is done. It reads the file
// at once, at every poll and whenever reload fires (cmd forwards SIGHUP). It
// polls the content rather than watching the file system because Kubernetes
// updates a mounted ConfigMap by swapping a symlink.
//
// A valid list that differs from the one in force is passed to apply, once
// per change, from WatchTenants' goroutine. An invalid file (or one that
// cannot be read) keeps the list in force: the error, naming the lines, is
// logged once per content seen and again on each reload, and every read of
// it is counted (hwstate_tenants_reload_errors_total).
func WatchTenants(ctx context.Context, path string, base Tenant, reload <-chan struct{}, apply func([]Tenant), opts ...WatchOption) {
	o := watchOptions{logger: zap.NewNop(), every: DefaultTenantsPoll}
	for _, opt := range opts {
		opt(&o)
	}
	if o.ticks == nil {
		ticker := time.NewTicker(o.every)
		defer ticker.Stop()
		o.ticks = ticker.C
	}
	w := tenantsWatch{path: path, base: base, apply: apply, watchOptions: o}
	if o.current != nil {
		o.metrics.tenantsListed(len(o.current))
	}
	w.read(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-o.ticks:
			w.read(false)
		case <-reload:
			w.read(true)
		}
	}
}

// A tenantsWatch is WatchTenants' state: the list in force and the last
// content read.
type tenantsWatch struct {
	path  string
	base  Tenant
	apply func([]Tenant)
	watchOptions
	last    []byte // the content last read; nil until a read succeeds
	lastErr string // the last read's error, "" if it could be read
	invalid bool   // last is not a valid tenants file
}

// read reads the file and applies it if it changed; forced (a reload) also
// judges unchanged content again. Every read that finds no valid file is
// counted, so that an alert sees the fault for as long as it lasts; only the
// first of each kind is logged, unless forced.
func (w *tenantsWatch) read(forced bool) {
	data, err := os.ReadFile(w.path)
	if err != nil {
		msg := err.Error()
		w.failed(fmt.Errorf("tenants file: %w", err), forced || msg != w.lastErr)
		w.lastErr, w.last = msg, nil
		return
	}
	if !forced && w.lastErr == "" && w.last != nil && bytes.Equal(data, w.last) {
		if w.invalid {
			w.failed(nil, false)
		}
		return
	}
	w.last, w.lastErr = data, ""
	tenants, err := ParseTenants(w.path, data, w.base)
	if w.invalid = err != nil; w.invalid {
		w.failed(err, true)
		return
	}
	if w.current != nil && slices.Equal(tenants, w.current) {
		if forced {
			w.logger.Info("tenants file unchanged", zap.Int("tenants", len(tenants)))
		}
		return
	}
	added, removed, changed := diffTenants(w.current, tenants)
	w.logger.Info("tenants file applied", zap.Int("tenants", len(tenants)),
		zap.Strings("added", added), zap.Strings("removed", removed), zap.Strings("changed", changed))
	w.current = tenants
	w.metrics.tenantsListed(len(tenants))
	w.apply(slices.Clone(tenants)) // a copy: apply may keep or change it
}

// failed counts a read that found no valid file, and logs why if log.
func (w *tenantsWatch) failed(err error, log bool) {
	w.metrics.tenantsReloadFailed()
	if log {
		w.logger.Error("tenants file not applied: the tenants in force stay", zap.Int("tenants", len(w.current)), zap.Error(err))
	}
}

// diffTenants names, by label, the tenants that next adds to, removes from
// and changes in prev.
func diffTenants(prev, next []Tenant) (added, removed, changed []string) {
	before := make(map[string]Tenant, len(prev))
	for _, t := range prev {
		before[t.ID] = t
	}
	for _, t := range next {
		old, ok := before[t.ID]
		switch {
		case !ok:
			added = append(added, t.Label())
		case old != t:
			changed = append(changed, t.Label())
		}
		delete(before, t.ID)
	}
	for _, t := range prev {
		if _, gone := before[t.ID]; gone {
			removed = append(removed, t.Label())
		}
	}
	return added, removed, changed
}
