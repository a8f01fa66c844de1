package emulator

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"

	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// SetConfig replaces the configuration; requests already being answered finish with the
// old one. The rate limits keep their level unless Rate and Burst, or Window, change.
func (e *Emulator) SetConfig(cfg Config) {
	_ = e.update(func(c *Config) error { // cannot fail
		*c = cfg.clone()
		return nil
	})
}

// Config returns the configuration in force.
func (e *Emulator) Config() Config {
	return e.state.Load().cfg.clone()
}

// update applies change to a copy of the configuration in force and, unless it
// fails, puts the copy in force.
func (e *Emulator) update(change func(*Config) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	old := e.state.Load()
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
		st.outageUntil = e.now().Add(cfg.OutageFor)
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
		e.rng = rand.New(rand.NewPCG(seed, seed))
	}
	e.state.Store(st)
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

// controlMux serves the emulator's own endpoints under controlPrefix.
func (e *Emulator) controlMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+controlPrefix+"stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Stats())
	})
	mux.HandleFunc("GET "+controlPrefix+"config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, e.Config())
	})
	mux.HandleFunc("PUT "+controlPrefix+"config", e.changeConfig(true))
	mux.HandleFunc("PATCH "+controlPrefix+"config", e.changeConfig(false))
	return mux
}

// changeConfig serves PUT (replace) and PATCH (!replace) of the configuration.
func (e *Emulator) changeConfig(replace bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxControlBody))
		if err == nil {
			err = e.update(func(c *Config) error {
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
		writeJSON(w, http.StatusOK, e.Config())
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
