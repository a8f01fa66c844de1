package schema

import (
	"encoding/json"
	"testing"
)

// FuzzDecode checks the decoders' invariants on any input: neither panics;
// what one rejects it rejects with a *ValidationError; what Decode accepts is
// JSON that encoding/json reads the same way, and makes a Graph body that
// DecodeUserState reads back unchanged; DecodeMultiTenant judges a body
// without a tenantId as Decode does, and accepts with one only a GUID that
// Decode refuses.
func FuzzDecode(f *testing.F) {
	for _, tc := range append(append([]eventCase(nil), eventCases...), tenantCases...) {
		// The fuzzer minimizes every new finding, which takes it minutes on
		// the 64 KiB bodies; TestDecode covers those.
		if len(tc.body) <= 4<<10 {
			f.Add([]byte(tc.body))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ev, err := Decode(data)
		checkError(t, err)
		mt, mtErr := DecodeMultiTenant(data)
		checkError(t, mtErr)
		switch {
		case mtErr != nil && err == nil:
			t.Fatalf("DecodeMultiTenant rejects what Decode accepts: %v", mtErr)
		case mtErr == nil && mt.TenantID == "" && (err != nil || ev != mt):
			t.Fatalf("without a tenantId: Decode = %+v, %v; DecodeMultiTenant = %+v", ev, err, mt)
		case mtErr == nil && mt.TenantID != "" && err == nil:
			t.Fatalf("Decode accepted a tenantId: %+v", ev)
		case mtErr == nil && mt.TenantID != "" && !IsGUID(mt.TenantID):
			t.Fatalf("accepted tenantId %q", mt.TenantID)
		}
		if mtErr != nil {
			return
		}
		if len(data) > MaxEventSize {
			t.Fatalf("accepted %d bytes", len(data))
		}
		// Neither decoder accepts JSON that encoding/json rejects, and both
		// unescape alike.
		ref, err := decodeReference(data)
		if err != nil {
			t.Fatalf("accepted what encoding/json rejects: %v", err)
		}
		if mt != ref {
			t.Fatalf("DecodeMultiTenant = %+v, encoding/json reads %+v", mt, ref)
		}
		if !IsGUID(mt.HardwareConfigurationID) {
			t.Fatalf("accepted hardwareConfigurationId %q", mt.HardwareConfigurationID)
		}
		body := mt.UserState.AppendGraphBody(nil)
		if !json.Valid(body) {
			t.Fatalf("AppendGraphBody made invalid JSON: %s", body)
		}
		u, err := DecodeUserState(body)
		if err != nil {
			t.Fatalf("DecodeUserState(%s): %v", body, err)
		}
		if u != mt.UserState {
			t.Fatalf("DecodeUserState(AppendGraphBody(u)) = %+v, want %+v", u, mt.UserState)
		}
	})
}

// checkError fails t unless err is nil or a *ValidationError.
func checkError(t *testing.T, err error) {
	t.Helper()
	if _, ok := err.(*ValidationError); err != nil && !ok {
		t.Fatalf("error is %T, not *ValidationError: %v", err, err)
	}
}
