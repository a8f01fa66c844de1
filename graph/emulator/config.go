package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/hwstate/hwstate/schema"
)

// Config is what the Emulator does besides answering like Graph. Every field can change
// while it runs (SetConfig, or PUT/PATCH /_emulator/config).
//
// Its JSON form, used by the control endpoint, names the fields in lowerCamel case
// (token, latency, rate, burst, window, retryAfter, omitRetryAfter, throttleFirst,
// failFirst, failStatus, errorRate, throttleRate, ambiguousRate, ambiguousFaults, seed,
// outage, outageFor, forbidden, notFoundIds, rejectIds, failIds, throttleIds, refuseFilter,
// pageSize), writes durations as Go duration strings ("250ms", "2s"), and refuses unknown
// fields.
type Config struct {
	// Token, when set, is the only bearer token accepted; when empty, any is.
	Token string `json:"token"`
	// Latency is added to every answer, in real time whatever the Emulator's clock.
	Latency time.Duration `json:"latency"`
	// Rate is the creates per second the emulated tenant allows, in a token bucket of
	// Burst (at least 1); beyond it the answer is 429 with a Retry-After of the time
	// until the next token, rounded up to the millisecond. 0 means no limit. Unlike
	// Graph, a throttled request takes no token, so a client that waits as told gets
	// through.
	Rate  float64 `json:"rate"`
	Burst int     `json:"burst"`
	// Window is a second write limit, in the shape Intune publishes; with Rate as well, a
	// create must pass both.
	Window Window `json:"window"`
	// RetryAfter is the Retry-After of the injected 429s (ThrottleFirst, ThrottleRate).
	RetryAfter time.Duration `json:"retryAfter"`
	// OmitRetryAfter leaves Retry-After out of every 429, as Intune sometimes does.
	OmitRetryAfter bool `json:"omitRetryAfter"`
	// ThrottleFirst: the first ThrottleFirst requests of each client-request-id answer
	// 429. Then FailFirst: the next FailFirst requests answer FailStatus (a 5xx; 0
	// means 503). Requests without a client-request-id count together.
	ThrottleFirst int `json:"throttleFirst"`
	FailFirst     int `json:"failFirst"`
	FailStatus    int `json:"failStatus"`
	// ErrorRate and ThrottleRate are the probabilities (0 to 1) of a 503 and of a 429,
	// drawn from a generator seeded with Seed (0: a random seed). Reseeding happens
	// only when Seed changes.
	ErrorRate    float64 `json:"errorRate"`
	ThrottleRate float64 `json:"throttleRate"`
	// AmbiguousRate is the probability (0 to 1, from the same generator) that a create is
	// made and its answer then lost, the failures after which a client cannot know
	// whether Graph created the entity. The fault is drawn from AmbiguousFaults (empty:
	// all of them): "500" and "504" answer that status; "hang" holds the answer until the
	// client gives up (its request's context ends: a client without a timeout waits
	// forever); "drop" closes the connection without an answer. Inside a $batch, a
	// sub-request drawing 500 or 504 gets it as its sub-response, and one drawing hang or
	// drop does that to the whole $batch once every sub-request is done.
	AmbiguousRate   float64  `json:"ambiguousRate"`
	AmbiguousFaults []string `json:"ambiguousFaults"`
	Seed            int64    `json:"seed"`
	// Outage answers every request 503 without Retry-After, before anything else.
	Outage bool `json:"outage"`
	// OutageFor is an outage window: like Outage for this long from the moment a
	// configuration with a different OutageFor is put in force (so PATCHing other fields
	// does not restart it; set 0 first to start an equal window again).
	OutageFor time.Duration `json:"outageFor"`
	// Forbidden answers every create and list, sent alone or inside a $batch, 403 with
	// the error Intune gives an app without DeviceManagementConfiguration.ReadWrite.All:
	// a tenant whose admin revoked the app's consent (the token itself still passes).
	Forbidden bool `json:"forbidden"`
	// NotFoundIDs are configuration ids that answer 404 ResourceNotFound, RejectIDs ones
	// that answer 400 BadRequest to a valid create, and FailIDs ones that answer
	// FailStatus to every create, a failure that never clears; GUIDs, any case.
	NotFoundIDs []string `json:"notFoundIds"`
	RejectIDs   []string `json:"rejectIds"`
	FailIDs     []string `json:"failIds"`
	// ThrottleIDs are configuration ids whose first create of each client-request-id
	// answers 429 (with RetryAfter), the next one as usual: one event throttled among
	// others that are not, as inside a $batch.
	ThrottleIDs []string `json:"throttleIds"`
	// RefuseFilter, when 400 or 501, answers that status to every list request with a
	// $filter, as a tenant that does not support filtering this collection may; 0 serves
	// the filter.
	RefuseFilter int `json:"refuseFilter"`
	// PageSize, when positive, caps the user states in one page of a list below what
	// $top asks for (Graph may page below $top); without $top, a page holds 100.
	PageSize int `json:"pageSize"`
}

// The faults AmbiguousFaults can name.
const (
	Fault500  = "500"
	Fault504  = "504"
	FaultHang = "hang"
	FaultDrop = "drop"
)

var ambiguousFaults = []string{Fault500, Fault504, FaultHang, FaultDrop}

// Window is a sliding-window write limit, the shape Intune publishes for a tenant: Limit
// creates in any span of Per (100 per 20 s per app per tenant). Beyond it the answer is
// 429 with a Retry-After of the time until the oldest create in the window leaves it. A
// sliding window lets a whole budget through at once and then nothing for the rest of the
// window, where a token bucket smooths: the harder shape for a client's pacing. A
// throttled request takes nothing from it. The zero Window is no limit.
//
// Its JSON form is {"limit":100,"per":"20s"}.
type Window struct {
	Limit int           `json:"limit"`
	Per   time.Duration `json:"per"`
}

// windowJSON is Window with Per as a Go duration string.
type windowJSON struct {
	Limit int    `json:"limit"`
	Per   string `json:"per"`
}

// MarshalJSON writes Per as a Go duration string.
func (w Window) MarshalJSON() ([]byte, error) {
	return json.Marshal(windowJSON{Limit: w.Limit, Per: w.Per.String()})
}

// UnmarshalJSON reads Per as a Go duration string and refuses unknown fields; fields
// absent from the JSON keep their value.
func (w *Window) UnmarshalJSON(data []byte) error {
	aux := windowJSON{Limit: w.Limit, Per: w.Per.String()}
	if err := decodeStrict(data, &aux); err != nil {
		return err
	}
	per, err := time.ParseDuration(aux.Per)
	if err != nil {
		return fmt.Errorf("per: %w", err)
	}
	w.Limit, w.Per = aux.Limit, per
	return nil
}

// configJSON is Config with its durations as strings; the outer fields hide the
// embedded ones of the same JSON name.
type configJSON struct {
	*plainConfig
	Latency    *string `json:"latency,omitempty"`
	RetryAfter *string `json:"retryAfter,omitempty"`
	OutageFor  *string `json:"outageFor,omitempty"`
}

// plainConfig has Config's fields without its JSON methods.
type plainConfig Config

// MarshalJSON writes durations as Go duration strings.
func (c Config) MarshalJSON() ([]byte, error) {
	latency, retryAfter, outageFor := c.Latency.String(), c.RetryAfter.String(), c.OutageFor.String()
	return json.Marshal(configJSON{
		plainConfig: (*plainConfig)(&c), Latency: &latency, RetryAfter: &retryAfter, OutageFor: &outageFor,
	})
}

// UnmarshalJSON reads durations as Go duration strings and refuses unknown fields.
// Fields absent from the JSON keep their value, which is what PATCH relies on.
func (c *Config) UnmarshalJSON(data []byte) error {
	aux := configJSON{plainConfig: (*plainConfig)(c)}
	if err := decodeStrict(data, &aux); err != nil {
		return err
	}
	for _, d := range []struct {
		name string
		text *string
		dst  *time.Duration
	}{{"latency", aux.Latency, &c.Latency}, {"retryAfter", aux.RetryAfter, &c.RetryAfter}, {"outageFor", aux.OutageFor, &c.OutageFor}} {
		if d.text == nil {
			continue
		}
		v, err := time.ParseDuration(*d.text)
		if err != nil {
			return fmt.Errorf("%s: %w", d.name, err)
		}
		*d.dst = v
	}
	return nil
}

// decodeStrict decodes one JSON value into v, refusing unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (c Config) clone() Config {
	c.NotFoundIDs = slices.Clone(c.NotFoundIDs)
	c.RejectIDs = slices.Clone(c.RejectIDs)
	c.FailIDs = slices.Clone(c.FailIDs)
	c.ThrottleIDs = slices.Clone(c.ThrottleIDs)
	c.AmbiguousFaults = slices.Clone(c.AmbiguousFaults)
	return c
}

// Validate is for configurations from outside (flags, the control endpoint). SetConfig
// takes anything, making the best of out-of-range values, as a library call should
// not fail over a test's odd setting.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, field, rule string) {
		if !ok {
			errs = append(errs, fmt.Errorf("%s: %s", field, rule))
		}
	}
	check(c.Latency >= 0, "latency", "must not be negative")
	check(c.RetryAfter >= 0, "retryAfter", "must not be negative")
	check(c.OutageFor >= 0, "outageFor", "must not be negative")
	check(c.Rate >= 0, "rate", "must not be negative")
	check(c.Burst >= 0, "burst", "must not be negative")
	check(c.Window.Limit >= 0, "window.limit", "must not be negative")
	check(c.Window.Limit == 0 || c.Window.Per > 0, "window.per", "must be positive with a limit")
	check(c.ThrottleFirst >= 0, "throttleFirst", "must not be negative")
	check(c.FailFirst >= 0, "failFirst", "must not be negative")
	check(c.FailStatus == 0 || c.FailStatus >= 500 && c.FailStatus <= 599, "failStatus", "must be 0 or a 5xx status")
	check(c.ErrorRate >= 0 && c.ErrorRate <= 1, "errorRate", "must be from 0 to 1")
	check(c.ThrottleRate >= 0 && c.ThrottleRate <= 1, "throttleRate", "must be from 0 to 1")
	check(c.AmbiguousRate >= 0 && c.AmbiguousRate <= 1, "ambiguousRate", "must be from 0 to 1")
	for _, f := range c.AmbiguousFaults {
		check(slices.Contains(ambiguousFaults, f), "ambiguousFaults", fmt.Sprintf("%q is not one of %q", f, ambiguousFaults))
	}
	check(c.RefuseFilter == 0 || c.RefuseFilter == http.StatusBadRequest || c.RefuseFilter == http.StatusNotImplemented,
		"refuseFilter", "must be 0, 400 or 501")
	check(c.PageSize >= 0, "pageSize", "must not be negative")
	for _, list := range []struct {
		field string
		ids   []string
	}{{"notFoundIds", c.NotFoundIDs}, {"rejectIds", c.RejectIDs}, {"failIds", c.FailIDs}, {"throttleIds", c.ThrottleIDs}} {
		for _, id := range list.ids {
			check(schema.IsGUID(id), list.field, fmt.Sprintf("%q is not a GUID", id))
		}
	}
	return errors.Join(errs...)
}

// failStatus is FailStatus if it is a 5xx, else 503.
func (c *Config) failStatus() int {
	if c.FailStatus < 500 || c.FailStatus > 599 {
		return http.StatusServiceUnavailable
	}
	return c.FailStatus
}
