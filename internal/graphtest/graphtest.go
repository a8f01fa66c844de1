// Package graphtest is the sample that the tests of Graph's client and of its emulator
// send: one complete user state, for a hardware configuration the emulator knows.
package graphtest

import "github.com/hwstate/hwstate/schema"

// ConfigID is a hardware configuration id the emulator creates user states for.
const ConfigID = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"

// UserState is a user state with every field set, its date-time with seven fraction digits
// and a zone, as Intune writes them.
func UserState() schema.UserState {
	return schema.UserState{
		UPN: "ada@contoso.com", UserEmail: "ada@contoso.com", UserName: "Ada Lovelace",
		LastStateUpdateDateTime: "2017-01-01T00:02:58.4418045-08:00",
		SuccessfulDeviceCount:   5, FailedDeviceCount: 1, PendingDeviceCount: 2,
		NotApplicableDeviceCount: 8, UnknownDeviceCount: 2,
	}
}
