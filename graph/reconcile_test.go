package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/schema"
)

// stateOf is testState for another user.
func stateOf(upn string) schema.UserState {
	u := testState
	u.UPN, u.UserEmail = upn, upn
	return u
}

func createState(t *testing.T, c creator, u schema.UserState, eventID string) Response {
	t.Helper()
	resp, err := c.Create(context.Background(), Request{
		ConfigurationID: testConfigID, ClientRequestID: ClientRequestID(eventID), Body: u.AppendGraphBody(nil),
	})
	if err != nil || resp.Class != Created {
		t.Fatalf("create %s: %+v %v", eventID, resp, err)
	}
	return resp
}

// creator is what the tests create through: a Client or a Batcher.
type creator interface {
	Create(ctx context.Context, req Request) (Response, error)
}

// TestListUserStatesAgainstEmulator lists back what was created, with and without $filter
// support, across pages.
func TestListUserStatesAgainstEmulator(t *testing.T) {
	tests := []struct {
		name      string
		cfg       emulator.Config
		wantPages int // list requests that reached the emulator
	}{
		{"filtered", emulator.Config{}, 1},
		{"filtered, a page per state", emulator.Config{PageSize: 1}, 3},
		{"filter refused with 400", emulator.Config{RefuseFilter: 400}, 2},
		{"filter refused with 501, paged", emulator.Config{RefuseFilter: 501, PageSize: 4}, 1 + 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, srv := newEmulatorServer(t, emulator.Config{Token: testToken})
			c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken)}
			const upn = "o'neil@contoso.com"
			var want []string // the ids of upn's states, in order
			for i := range 13 {
				u := stateOf(fmt.Sprintf("user%d@contoso.com", i))
				if i%5 == 1 {
					u = stateOf(upn)
					u.SuccessfulDeviceCount = int32(i)
				}
				resp := createState(t, c, u, fmt.Sprint("ev-", i))
				if i%5 == 1 {
					want = append(want, resp.GraphID)
				}
			}
			e.SetConfig(emulator.Config{Token: testToken, RefuseFilter: tt.cfg.RefuseFilter, PageSize: tt.cfg.PageSize})
			before := e.Stats().Requests
			pages := 0
			states, resp, err := c.ListUserStates(context.Background(), ListRequest{
				ConfigurationID: testConfigID, UPN: upn, Pace: func(context.Context) error { pages++; return nil },
			})
			if err != nil || resp.Class != Listed {
				t.Fatalf("%+v %v", resp, err)
			}
			if fmt.Sprint(idList(states)) != fmt.Sprint(want) {
				t.Errorf("ids %v, want %v", idList(states), want)
			}
			for i, s := range states {
				u := stateOf(upn)
				u.SuccessfulDeviceCount = int32(5*i + 1)
				if !s.Matches(&u) {
					t.Errorf("%+v does not match %+v", s, u)
				}
			}
			if got := e.Stats().Requests - before; pages != tt.wantPages || got != uint64(tt.wantPages) {
				t.Errorf("%d requests (%d paced), want %d", got, pages, tt.wantPages)
			}
		})
	}
}

func idList(states []UserState) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = s.ID
	}
	return out
}

// TestAmbiguousFaultsReconciled: each emulated create-then-fail fault is reported as
// ambiguous, by a Client and by a Batcher, and looking before creating again finds the
// entity, with and without $filter support: no duplicate.
func TestAmbiguousFaultsReconciled(t *testing.T) {
	for _, fault := range []string{emulator.Fault500, emulator.Fault504, emulator.FaultHang, emulator.FaultDrop} {
		for _, refuse := range []int{0, http.StatusBadRequest} {
			for _, batched := range []bool{false, true} {
				name := fmt.Sprintf("%s, refuse filter %d, batched %v", fault, refuse, batched)
				t.Run(name, func(t *testing.T) {
					e, srv := newEmulatorServer(t, emulator.Config{Token: testToken})
					c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(testToken), Timeout: 200 * time.Millisecond}
					var cr creator = c
					if batched {
						cr = &Batcher{Client: c, Size: 1}
					}
					other := createState(t, cr, stateOf("someone@contoso.com"), "other").GraphID
					e.SetConfig(emulator.Config{
						Token: testToken, AmbiguousRate: 1, AmbiguousFaults: []string{fault}, RefuseFilter: refuse,
					})
					req := Request{ConfigurationID: testConfigID, ClientRequestID: ClientRequestID("e"), Body: testBody()}
					resp, err := cr.Create(context.Background(), req)
					if !Ambiguous(resp, err) {
						t.Fatalf("%d %v: not ambiguous", resp.Status, err)
					}
					states, lresp, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: testState.UPN})
					if err != nil || lresp.Class != Listed {
						t.Fatalf("list: %+v %v", lresp, err)
					}
					found := 0
					for _, s := range states {
						if s.Matches(&testState) {
							found++
						}
						if s.ID == other {
							t.Errorf("another user's state %s listed", other)
						}
					}
					if st := e.Stats(); found != 1 || st.Creates != 2 || st.Duplicates != 0 || st.Ambiguous != 1 {
						t.Errorf("%d matches; stats %+v", found, st)
					}
				})
			}
		}
	}
}

// TestListUserStatesEmulatorRefusals: the emulator's refusals of a list are what the
// caller needs to tell apart: retry later, or create anyway.
func TestListUserStatesEmulatorRefusals(t *testing.T) {
	tests := []struct {
		name      string
		cfg       emulator.Config
		token     string
		wantCode  int
		wantClass Class
		wantErr   error
	}{
		{"unknown configuration", emulator.Config{NotFoundIDs: []string{testConfigID}}, testToken, 404, Rejected, ErrListUnavailable},
		{"outage", emulator.Config{Outage: true}, testToken, 503, Transient, nil},
		{"wrong token", emulator.Config{}, "wrong", 401, Systemic, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Token = testToken
			_, srv := newEmulatorServer(t, tt.cfg)
			c := &Client{BaseURL: srv.URL + "/beta", Tokens: StaticToken(tt.token)}
			states, resp, err := c.ListUserStates(context.Background(), ListRequest{ConfigurationID: testConfigID, UPN: testState.UPN})
			if !errors.Is(err, tt.wantErr) || tt.wantErr == nil && err != nil || states != nil ||
				resp.Status != tt.wantCode || resp.Class != tt.wantClass || resp.Error == nil {
				t.Errorf("%v %+v %v; want %d %v %v", states, resp, err, tt.wantCode, tt.wantClass, tt.wantErr)
			}
		})
	}
}
