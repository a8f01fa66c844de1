package emulator

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"

	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// SetConfig replaces the root's configuration (see Tenant.SetConfig).
func (e *Emulator) SetConfig(cfg Config) { e.root.SetConfig(cfg) }

// Config returns the root's configuration in force.
func (e *Emulator) Config() Config { return e.root.Config() }

// Stats returns the root's counters so far.
func (e *Emulator) Stats() Stats { return e.root.Stats() }

// CreatesFor returns how many creates (201s) a client-request-id has had at the root: 1
// for every event of a client that never duplicates.
func (e *Emulator) CreatesFor(clientRequestID string) int { return e.root.CreatesFor(clientRequestID) }

// SetConfig replaces the tenant's configuration; requests already being answered finish
// with the old one. The rate limits keep their level unless Rate and Burst, or Window,
// change.
func (tn *Tenant) SetConfig(cfg Config) {
	_ = tn.update(func(c *Config) error { // cannot fail
		*c = cfg.clone()
		return nil
	})
}

// Config returns the tenant's configuration in force.
func (tn *Tenant) Config() Config {
	return tn.state.Load().cfg.clone()
}

// update applies change to a copy of the configuration in force and, unless it
// fails, puts the copy in force.
func (tn *Tenant) update(change func(*Config) error) error {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	old := tn.state.Load()
	var cfg Config
	if old != nil {
		cfg = old.cfg.clone()
	}
	if err := change(&cfg); err != nil {
		return err
	}
	st := &state{
		cfg:      cfg,
		notFound: guidSet(cfg.NotFoundIDs),
		reject:   guidSet(cfg.RejectIDs),
		fail:     guidSet(cfg.FailIDs),
		throttle: guidSet(cfg.ThrottleIDs),
	}
	switch {
	case cfg.OutageFor <= 0:
	case old != nil && old.cfg.OutageFor == cfg.OutageFor:
		st.outageUntil = old.outageUntil
	default:
		st.outageUntil = tn.now().Add(cfg.OutageFor)
	}
	switch {
	case cfg.Rate <= 0: // no limit, no limiter
	case old != nil && old.bucket != nil && old.cfg.Rate == cfg.Rate && old.cfg.Burst == cfg.Burst:
		st.bucket = old.bucket
	default:
		st.bucket = rate.NewLimiter(rate.Limit(cfg.Rate), max(cfg.Burst, 1))
	}
	switch {
	case cfg.Window.Limit <= 0 || cfg.Window.Per <= 0: // no limit
	case old != nil && old.window != nil && old.cfg.Window == cfg.Window:
		st.window = old.window
	default:
		st.window = newWindow(cfg.Window)
	}
	if old == nil || old.cfg.Seed != cfg.Seed {
		seed := uint64(cfg.Seed)
		if seed == 0 {
			seed = rand.Uint64()
		}
		tn.rng = rand.New(rand.NewPCG(seed, seed))
	}
	tn.state.Store(st)
	return nil
}

func guidSet(ids []string) map[uuid.UUID]bool {
	set := make(map[uuid.UUID]bool, len(ids))
	for _, id := range ids {
		if u, err := uuid.Parse(id); err == nil {
			set[u] = true
		}
	}
	return set
}

// controlMux serves the emulator's own endpoints under controlPrefix, the root's and,
// under /tenants/{id}, each tenant's.
func (e *Emulator) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	for _, prefix := range []string{"", strings.TrimSuffix(tenantsPrefix, "/") + "/{tenant}"} {
		handle := func(method, name string, serve func(http.ResponseWriter, *http.Request, *Tenant)) {
			mux.HandleFunc(method+" "+prefix+controlPrefix+name, func(w http.ResponseWriter, r *http.Request) {
				tn := e.root
				if prefix != "" {
					var refused *subResponse
					if tn, refused = e.tenantAt(r.PathValue("tenant")); refused != nil {
						refused.write(w, r, e.now())
						return
					}
				}
				serve(w, r, tn)
			})
		}
		handle("GET", "stats", func(w http.ResponseWriter, _ *http.Request, tn *Tenant) {
			writeJSON(w, http.StatusOK, tn.Stats())
		})
		handle("GET", "config", func(w http.ResponseWriter, _ *http.Request, tn *Tenant) {
			writeJSON(w, http.StatusOK, tn.Config())
		})
		handle("PUT", "config", changeConfig(true))
		handle("PATCH", "config", changeConfig(false))
	}
	mux.HandleFunc("GET "+controlPrefix+"tenants", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.TenantStats())
	})
	return mux
}

// changeConfig serves PUT (replace) and PATCH (!replace) of a tenant's configuration.
func changeConfig(replace bool) func(http.ResponseWriter, *http.Request, *Tenant) {
	return func(w http.ResponseWriter, r *http.Request, tn *Tenant) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err == nil {
			err = tn.update(func(c *Config) error {
				if replace {
					*c = Config{}
				}
				if err := json.Unmarshal(body, c); err != nil {
					return err
				}
				return c.Validate()
			})
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{&graphError{Code: "BadRequest", Message: err.Error()}})
			return
		}
		writeJSON(w, http.StatusOK, tn.Config())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
