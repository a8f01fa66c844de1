// Package schema defines the event that hwstate consumes (CONTRACT section 1)
// and the Microsoft Graph request body that it makes from one.
//
// Decode is the worker's whole judgement of an event: what it rejects is
// dead-lettered as invalid_event and never reaches Graph, so it is strict
// where encoding/json is lenient (duplicate keys, case-insensitive names,
// 5.0 for an integer, invalid UTF-8). event.schema.json states the same rules
// for producers; Decode agrees with it wherever JSON Schema can express a rule.
// DecodeMultiTenant and event.multitenant.schema.json are the same pair for
// multi-tenant mode, whose events may also name their tenant.
//
// The package is a file per concept: this file is what callers use;
// decode.go walks an event and holds its rules, field by field; scan.go is
// the JSON lexer; datetime.go the date-time rule; body.go the Graph body;
// errors.go the one error type.
package schema

// MaxEventSize is the largest event body accepted, in bytes.
const MaxEventSize = 64 << 10

// ODataType is the only @odata.type a user state may carry, and the one
// AppendGraphBody sends.
const ODataType = "#microsoft.graph.hardwareConfigurationUserState"

// Event is a valid input event.
type Event struct {
	// HardwareConfigurationID is a GUID (see IsGUID), so it is safe to use
	// as a path segment of the Graph URL as it is.
	HardwareConfigurationID string
	UserState               UserState
	// TenantID is the body's tenantId, a GUID exactly as received (any case),
	// or "" when the body has none. Only DecodeMultiTenant sets it.
	TenantID string
}

// UserState is the Graph entity hardwareConfigurationUserState as an event
// carries it (no id).
type UserState struct {
	UPN, UserEmail, UserName string
	LastStateUpdateDateTime  string // exactly as received (the JSON string's value)

	SuccessfulDeviceCount, FailedDeviceCount, PendingDeviceCount,
	ErrorDeviceCount, NotApplicableDeviceCount, UnknownDeviceCount int32
}

// Decode validates an event body against every rule of CONTRACT section 1
// and returns the event it holds. Its error is always a *ValidationError,
// for the first rule found broken.
func Decode(data []byte) (Event, error) {
	var ev Event
	fields := ev.fields()
	return ev.decode(data, fields[:len(fields)-1]) // all but tenantId
}

// DecodeMultiTenant is Decode for multi-tenant mode (CONTRACT section 6):
// the same rules, and the envelope may also hold "tenantId", a GUID (any
// case, as hardwareConfigurationId), returned in Event.TenantID. Whether it
// names a listed tenant and agrees with the subject is the caller's to judge.
func DecodeMultiTenant(data []byte) (Event, error) {
	var ev Event
	fields := ev.fields()
	return ev.decode(data, fields[:])
}

// decode decodes data by fields, which point into ev.
func (ev *Event) decode(data []byte, fields []field) (Event, error) {
	if err := decodeBody(data, fields); err != nil {
		return Event{}, err
	}
	return *ev, nil
}

// DecodeUserState is Decode for a bare userState object, such as the body of
// a Graph create request: the same rules, with errors' Field relative to the
// object ("upn" rather than "userState.upn").
func DecodeUserState(data []byte) (UserState, error) {
	var u UserState
	fields := u.fields()
	if err := decodeBody(data, fields[:]); err != nil {
		return UserState{}, err
	}
	return u, nil
}

// IsGUID reports whether s is a GUID: 8-4-4-4-12 hex digits, any case,
// nothing before or after.
func IsGUID(s string) bool { return isGUID(s) }
