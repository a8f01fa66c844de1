package emulator

import (
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"golang.org/x/time/rate"

	"github.com/hwstate/hwstate/schema"
)

// Tenant is one emulated tenant: its configuration, rate limits, faults, counters and
// the user states created in it.
type Tenant struct {
	now   func() time.Time
	state atomic.Pointer[state]
	stats counters

	mu       sync.Mutex // serialises configuration changes; guards rng, ids and entities
	rng      *rand.Rand
	ids      map[uuid.UUID]idCounts
	entities map[uuid.UUID][]storedState // per configuration, in creation order
}

// state is one configuration in force, swapped whole, so a request sees one
// configuration from start to end without locking.
type state struct {
	cfg                              Config
	bucket                           *rate.Limiter // nil: no Rate
	window                           *window       // nil: no Window
	outageUntil                      time.Time     // the end of the OutageFor window
	notFound, reject, fail, throttle map[uuid.UUID]bool
}

type idCounts struct{ seen, created int }

// storedState is a created user state as a list answers it.
type storedState struct {
	upn    string
	entity []byte // {"id":...,"@odata.type":...,...}
}

func newTenant(now func() time.Time, cfg Config) *Tenant {
	tn := &Tenant{now: now, ids: make(map[uuid.UUID]idCounts), entities: make(map[uuid.UUID][]storedState)}
	tn.SetConfig(cfg)
	return tn
}

// serveHTTP answers a Graph request (create, list or $batch) to this tenant.
func (tn *Tenant) serveHTTP(w http.ResponseWriter, r *http.Request) {
	st := tn.state.Load()
	var resp subResponse
	if isBatchPath(r.URL.EscapedPath()) {
		tn.stats.batches.Add(1)
		if resp = tn.serveBatch(st, r); resp.status != http.StatusOK { // one answered 200 has counted its creates
			tn.stats.count(resp.status)
		}
	} else {
		resp = tn.serve(st, r)
		tn.stats.count(resp.status)
	}
	if resp.lost != answered {
		withhold(w, r, resp.lost)
		return
	}
	if !sleep(r.Context(), st.cfg.Latency) {
		return // the client is gone
	}
	resp.write(w, r, tn.now())
}

// serve answers what belongs to the HTTP request as a whole, then hands a create to
// create, which a $batch would call once per sub-request, or a list to list.
func (tn *Tenant) serve(st *state, r *http.Request) subResponse {
	prefix, configID, ok := splitCreatePath(r.URL.EscapedPath())
	switch {
	case !ok:
		return failure(http.StatusNotFound, "ResourceNotFound", "No resource at "+r.URL.EscapedPath()+".")
	case r.Method != http.MethodPost && r.Method != http.MethodGet:
		return methodNotAllowed(r.Method, "userRunStates", "GET, POST")
	}
	body, refused := tn.admit(st, r)
	switch {
	case refused != nil:
		return *refused
	case r.Method == http.MethodGet:
		return tn.list(st, r, baseURL(r, prefix), configID)
	}
	return tn.create(st, subRequest{
		base:     baseURL(r, prefix),
		configID: configID,
		header:   r.Header,
		body:     body,
	})
}

// admit checks what comes before any create, alone or in a $batch: outage,
// Authorization, and the body's size; it returns the body, or the answer refusing it.
func (tn *Tenant) admit(st *state, r *http.Request) ([]byte, *subResponse) {
	refuse := func(resp subResponse) ([]byte, *subResponse) { return nil, &resp }
	if st.cfg.Outage || tn.now().Before(st.outageUntil) {
		return refuse(failure(http.StatusServiceUnavailable, "ServiceUnavailable", "The service is unavailable (emulated outage)."))
	}
	if msg := checkAuthorization(r.Header.Get("Authorization"), st.cfg.Token); msg != "" {
		return refuse(failure(http.StatusUnauthorized, "InvalidAuthenticationToken", msg))
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody+1))
	switch {
	case err != nil:
		return refuse(failure(http.StatusBadRequest, "BadRequest", "The request body could not be read."))
	case len(body) > maxRequestBody:
		return refuse(failure(http.StatusRequestEntityTooLarge, "RequestEntityTooLarge", "The request body is too large."))
	}
	return body, nil
}

// Tenant returns the tenant whose directory id is id (a GUID, any case), made on first
// use with the root's configuration then in force; SetConfig it before its first request
// to start it otherwise. WithMaxTenants' bound refuses clients' paths, never Tenant,
// though the tenants made here count toward it. It panics if id is not a GUID, as no path
// could ever name that tenant.
func (e *Emulator) Tenant(id string) *Tenant {
	if !schema.IsGUID(id) {
		panic("emulator: tenant id " + strconv.Quote(id) + " is not a GUID")
	}
	return e.tenant(uuid.MustParse(id), false)
}

// TenantStats returns the counters of every tenant made so far, by lower-case id; the
// root's are Stats.
func (e *Emulator) TenantStats() map[string]Stats {
	e.mu.RLock()
	defer e.mu.RUnlock()
	all := make(map[string]Stats, len(e.tenants))
	for id, tn := range e.tenants {
		all[id.String()] = tn.Stats()
	}
	return all
}

// tenantAt returns the tenant a path names, or the answer Graph would give a malformed
// id: 400, or 404 for a new tenant beyond the bound.
func (e *Emulator) tenantAt(id string) (*Tenant, *subResponse) {
	if !schema.IsGUID(id) {
		resp := failure(http.StatusBadRequest, "BadRequest", "The tenant id "+strconv.Quote(id)+" is not a GUID.")
		return nil, &resp
	}
	tn := e.tenant(uuid.MustParse(id), true)
	if tn == nil {
		resp := failure(http.StatusNotFound, "ResourceNotFound",
			"No tenant "+id+": the emulator serves at most "+strconv.Itoa(e.maxTenants)+" tenants.")
		return nil, &resp
	}
	return tn, nil
}

// tenant returns the tenant id, made if new; nil if new and bounded with no room left.
func (e *Emulator) tenant(id uuid.UUID, bounded bool) *Tenant {
	e.mu.RLock()
	tn := e.tenants[id]
	e.mu.RUnlock()
	if tn != nil {
		return tn
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	switch tn = e.tenants[id]; {
	case tn != nil:
		return tn
	case bounded && len(e.tenants) >= e.maxTenants:
		return nil
	}
	tn = newTenant(e.now, e.root.Config())
	e.tenants[id] = tn
	return tn
}
