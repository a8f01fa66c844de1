package schema

import (
	"encoding/json"
	"testing"
)

// FuzzDecode checks Decode's invariants on any input: it never panics; what
// it rejects it rejects with a *ValidationError; what it accepts is JSON that
// encoding/json reads the same way, and makes a Graph body that
// DecodeUserState reads back unchanged.
func FuzzDecode(f *testing.F) {
	for _, tc := range eventCases {
		// The fuzzer minimizes every new finding, which takes it minutes on
		// the 64 KiB bodies; TestDecode covers those.
		if len(tc.body) <= 4<<10 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		if err != nil {
			if _, ok := err.(*ValidationError); !ok {
				t.Fatalf("error is %T, not *ValidationError: %v", err, err)
			}
			return
		}
		if len(data) > MaxEventSize {
			t.Fatalf("accepted %d bytes", len(data))
		}
		// Decode accepts no JSON that encoding/json rejects, and unescapes alike.
		ref, err := decodeReference(data)
		if err != nil {
			t.Fatalf("Decode accepted what encoding/json rejects: %v", err)
		}
		if ev != ref {
			t.Fatalf("Decode = %+v, encoding/json reads %+v", ev, ref)
		}
		if !IsGUID(ev.HardwareConfigurationID) {
			t.Fatalf("accepted hardwareConfigurationId %q", ev.HardwareConfigurationID)
		}
		body := ev.UserState.AppendGraphBody(nil)
		if !json.Valid(body) {
			t.Fatalf("AppendGraphBody made invalid JSON: %s", body)
		}
		u, err := DecodeUserState(body)
		if err != nil {
			t.Fatalf("DecodeUserState(%s): %v", body, err)
		}
		if u != ev.UserState {
			t.Fatalf("DecodeUserState(AppendGraphBody(u)) = %+v, want %+v", u, ev.UserState)
		}
	})
}
