// Package emulator is a stand-in for Microsoft Graph's Intune userRunStates API, served
// over real HTTP (with net/http/httptest or any http.Server) to the client under test. It
// answers as strictly as Graph, with wire types of its own so that a mistake in a client's
// encoding fails against it, and injects the faults a test or a load run asks for:
// throttling, outages, server errors, a tenant's write limits. Counters tell what a client
// did, duplicate creates above all.
package emulator

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

const (
	// controlPrefix is where the emulator's own endpoints live; Graph has no path
	// starting with an underscore, so they cannot hide a Graph route.
	controlPrefix = "/_emulator/"
	// tenantsPrefix is where the tenants' paths start: /tenants/{id}/ followed by any
	// path of the root, Graph's or the control endpoints'.
	tenantsPrefix = "/tenants/"
	// defaultMaxTenants bounds the tenants clients can make, a few KiB each at most.
	defaultMaxTenants = 10000
	// maxRequestBody bounds a create's body (Graph's own limit is a few MiB; an entity
	// is under 1 KiB) and maxControlBody a configuration.
	maxRequestBody = 1 << 20
	maxControlBody = 64 << 10
)

// Emulator is an http.Handler that answers the create like Graph
// (POST {any prefix}/deviceManagement/hardwareConfigurations/{id}/userRunStates), as
// strictly, with the faults its Config asks for, and lists what was created. Create one
// with New.
//
// A create is checked in this order: route (404; 405 for a method other than GET or POST),
// Outage and OutageFor (503), Authorization (401), Forbidden (403), client-request-id
// (400 unless absent or a GUID); then the injected faults: ThrottleFirst, ThrottleRate,
// Window and Rate (429), FailFirst and ErrorRate (5xx); then Content-Type (415 unless
// application/json), the configuration id (400 unless a GUID; 404 if in NotFoundIDs;
// 429 for the first request of a client-request-id if in ThrottleIDs), the body (400 when
// schema.DecodeUserState refuses it, naming the field), RejectIDs (400) and FailIDs
// (FailStatus); at last, the user state is created and kept, and, unless AmbiguousRate
// loses the answer, 201 with the entity as posted plus its new id and @odata.context.
//
// GET on the same path lists the user states created under that configuration, oldest
// first, each with every property it was sent, its id and @odata.type, as
// {"@odata.context","value":[...],"@odata.nextLink"}. A list passes what a create passes
// before its Content-Type (and takes from Rate and Window like one), then the
// configuration id (400, 404), then its query: $filter=upn eq 'value' only (a ' in the
// value doubled; the UPN compared regardless of case, so a client must still compare what
// it gets), or RefuseFilter's status; $top from 1 to 999 (100 without it; PageSize caps
// it); $skiptoken as found in @odata.nextLink, an absolute URL that keeps the filter and
// $top, on every page but the last; any other system query option is 400.
//
// POST {any prefix}/$batch is served too, as strictly as Graph: refused as a whole for an
// outage, Authorization, or a payload Graph would refuse (400), else 200 with one
// sub-response per sub-request in an order of its own. Each sub-request is a create
// checked from Forbidden on, like one sent alone (a list inside a $batch is 405).
//
// Latency is added after the answer is decided, as with a slow Graph: a client that
// gives up waiting has still created the entity, the ambiguous case that idempotency
// records exist for, and Duplicates shows what a retry then does.
//
// Control endpoints, without authentication: GET /_emulator/stats (Stats as JSON), GET
// /_emulator/config, PUT /_emulator/config (replaces the configuration) and PATCH
// /_emulator/config (changes only the fields given); the last two answer the
// configuration now in force, or 400 for an invalid one.
//
// Tenants: all of the above is the root's, one emulated tenant. A path under
// /tenants/{tenantId} (a GUID, any case) is served as the rest of the path would be at
// the root, by another tenant with a state of its own: configuration, rate limits, faults, counters, user states created. So a
// tenant's Graph base URL is {emulator}/tenants/{tenantId}/beta (or with no suffix, like
// the root's), and its control endpoints are /tenants/{tenantId}/_emulator/config and
// /tenants/{tenantId}/_emulator/stats; GET /_emulator/tenants has every tenant's Stats by
// id. A tenant is made on first use, by a path or by Tenant, with the root's
// configuration then in force. A path naming a tenant by anything but a GUID is answered
// 400, and one naming a new tenant once there are WithMaxTenants (10,000) is answered
// 404, neither counted in any Stats.
//
// The emulator remembers every client-request-id it has seen, a few dozen bytes each,
// and every user state created, for as long as it runs.
type Emulator struct {
	now        func() time.Time
	maxTenants int
	root       *Tenant
	control    *http.ServeMux

	mu      sync.RWMutex // guards tenants
	tenants map[uuid.UUID]*Tenant
}

// Option changes how an Emulator works, beyond its Config.
type Option func(*Emulator)

// WithClock makes the Emulator take the time from now instead of time.Now: for its rate
// limits, outage windows, Retry-After and Date. A test can then let time pass without
// waiting. Latency is still waited in real time.
func WithClock(now func() time.Time) Option {
	return func(e *Emulator) { e.now = now }
}

// WithMaxTenants bounds the tenants a client can make by naming them in a path (10,000
// without it); beyond it, a path naming a new tenant is answered 404.
func WithMaxTenants(n int) Option {
	return func(e *Emulator) { e.maxTenants = n }
}

// New returns an Emulator running with cfg.
func New(cfg Config, opts ...Option) *Emulator {
	e := &Emulator{now: time.Now, maxTenants: defaultMaxTenants, tenants: make(map[uuid.UUID]*Tenant)}
	for _, opt := range opts {
		opt(e)
	}
	e.root = newTenant(e.now, cfg)
	e.control = e.controlMux()
	return e
}

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, rest, scoped := "", r.URL.Path, false
	if after, ok := strings.CutPrefix(r.URL.Path, tenantsPrefix); ok {
		id, rest, _ = strings.Cut(after, "/")
		rest, scoped = "/"+rest, true
	}
	if strings.HasPrefix(rest, controlPrefix) {
		e.control.ServeHTTP(w, r)
		return
	}
	tn := e.root
	if scoped {
		var refused *subResponse
		if tn, refused = e.tenantAt(id); refused != nil {
			refused.write(w, r, e.now())
			return
		}
	}
	tn.serveHTTP(w, r)
}

// baseURL is scheme://host/prefix of a request, for @odata.context.
func baseURL(r *http.Request, prefix string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + prefix
}

// splitCreatePath splits an escaped path into the prefix before /deviceManagement and
// the configuration id; ok is false unless the path is the userRunStates collection.
// The id is taken escaped, so an encoded slash stays inside it and fails the GUID check.
func splitCreatePath(path string) (prefix, configID string, ok bool) {
	const parent = "/deviceManagement/hardwareConfigurations/"
	i := strings.Index(path, parent)
	if i < 0 {
		return "", "", false
	}
	configID, ok = strings.CutSuffix(path[i+len(parent):], "/userRunStates")
	if !ok || configID == "" || strings.Contains(configID, "/") {
		return "", "", false
	}
	return path[:i], configID, true
}

// checkAuthorization returns why an Authorization header is refused, or "".
func checkAuthorization(header, want string) string {
	scheme, token, _ := strings.Cut(header, " ")
	switch {
	case !strings.EqualFold(scheme, "Bearer") || token == "":
		return "Access token is empty."
	case want != "" && subtle.ConstantTimeCompare([]byte(token), []byte(want)) != 1:
		return "Access token validation failure. Invalid audience."
	}
	return ""
}

// sleep waits d in real time; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
