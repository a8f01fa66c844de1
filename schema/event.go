// Package schema defines the event that hwstate consumes (CONTRACT section 1)
// and the Microsoft Graph request body that it makes from one.
//
// Decode is the worker's whole judgement of an event: what it rejects is
// dead-lettered as invalid_event and never reaches Graph, so it is strict
// where encoding/json is lenient (duplicate keys, case-insensitive names,
// 5.0 for an integer, invalid UTF-8). event.schema.json states the same rules
// for producers; Decode agrees with it wherever JSON Schema can express a rule.
package schema

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

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
}

// UserState is the Graph entity hardwareConfigurationUserState as an event
// carries it (no id).
type UserState struct {
	UPN, UserEmail, UserName string
	LastStateUpdateDateTime  string // exactly as received (the JSON string's value)

	SuccessfulDeviceCount, FailedDeviceCount, PendingDeviceCount,
	ErrorDeviceCount, NotApplicableDeviceCount, UnknownDeviceCount int32
}

// Limits of the user's names (upn, userEmail, userName), in characters.
const (
	minTextLen = 1
	maxTextLen = 1024
)

// Decode validates an event body against every rule of CONTRACT section 1
// and returns the event it holds. Its error is always a *ValidationError,
// for the first rule found broken.
func Decode(data []byte) (Event, error) {
	var ev Event
	d := decoder{data: data, nested: true}
	err := d.open()
	if err == nil {
		err = d.event(&ev)
	}
	if err == nil {
		err = d.close()
	}
	if err != nil {
		return Event{}, err
	}
	return ev, nil
}

// DecodeUserState is Decode for a bare userState object, such as the body of
// a Graph create request: the same rules, with errors' Field relative to the
// object ("upn" rather than "userState.upn").
func DecodeUserState(data []byte) (UserState, error) {
	var u UserState
	d := decoder{data: data}
	err := d.open()
	if err == nil {
		err = d.userState(&u)
	}
	if err == nil {
		err = d.close()
	}
	if err != nil {
		return UserState{}, err
	}
	return u, nil
}

// IsGUID reports whether s is a GUID: 8-4-4-4-12 hex digits, any case,
// nothing before or after.
func IsGUID(s string) bool { return isGUID(s) }

func isGUID[T string | []byte](s T) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// A prop is a property a userState object may have.
type prop int

const (
	propUPN prop = iota
	propUserEmail
	propUserName
	propLastStateUpdateDateTime
	propSuccessfulDeviceCount
	propFailedDeviceCount
	propPendingDeviceCount
	propErrorDeviceCount
	propNotApplicableDeviceCount
	propUnknownDeviceCount
	propID
	propODataType
	numProps

	numRequired = propID // the props before propID are required
)

// props holds each prop's name, and its path from the event root, spelled out
// so that an error needs no concatenation.
var props = [numProps]struct{ name, path string }{
	propUPN:                      {"upn", "userState.upn"},
	propUserEmail:                {"userEmail", "userState.userEmail"},
	propUserName:                 {"userName", "userState.userName"},
	propLastStateUpdateDateTime:  {"lastStateUpdateDateTime", "userState.lastStateUpdateDateTime"},
	propSuccessfulDeviceCount:    {"successfulDeviceCount", "userState.successfulDeviceCount"},
	propFailedDeviceCount:        {"failedDeviceCount", "userState.failedDeviceCount"},
	propPendingDeviceCount:       {"pendingDeviceCount", "userState.pendingDeviceCount"},
	propErrorDeviceCount:         {"errorDeviceCount", "userState.errorDeviceCount"},
	propNotApplicableDeviceCount: {"notApplicableDeviceCount", "userState.notApplicableDeviceCount"},
	propUnknownDeviceCount:       {"unknownDeviceCount", "userState.unknownDeviceCount"},
	propID:                       {"id", "userState.id"},
	propODataType:                {"@odata.type", "userState.@odata.type"},
}

func lookupProp(key []byte) (prop, bool) {
	for p := range numProps {
		if string(key) == props[p].name {
			return p, true
		}
	}
	return 0, false
}

// Top-level property names.
const (
	keyHardwareConfigurationID = "hardwareConfigurationId"
	keyUserState               = "userState"
)

// A decoder walks a body once, validating as it goes. It is a scanner of its
// own rather than encoding/json because it must see what encoding/json hides
// (duplicate keys, how a number was written) and should not allocate per token.
type decoder struct {
	data   []byte
	pos    int
	nested bool   // the userState object is inside an event, so paths begin "userState."
	buf    []byte // unescaped text of the last string that had escapes
}

// open checks the body as a whole and leaves d at its opening '{'.
func (d *decoder) open() *ValidationError {
	if len(d.data) > MaxEventSize {
		return &ValidationError{Reason: fmt.Sprintf("must be at most %d bytes, not %d", MaxEventSize, len(d.data))}
	}
	if !utf8.Valid(d.data) {
		return &ValidationError{Reason: fmt.Sprintf("not valid UTF-8 at offset %d", invalidUTF8At(d.data))}
	}
	d.skipSpace()
	if d.pos == len(d.data) {
		return &ValidationError{Reason: "must be a JSON object, not empty"}
	}
	if d.data[d.pos] != '{' {
		return d.typeError("", "a JSON object")
	}
	return nil
}

// close checks that nothing but white space follows the object.
func (d *decoder) close() *ValidationError {
	d.skipSpace()
	if d.pos != len(d.data) {
		return &ValidationError{Reason: fmt.Sprintf("unexpected data after the JSON object at offset %d", d.pos)}
	}
	return nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

// event decodes the event object at d.pos.
func (d *decoder) event(ev *Event) *ValidationError {
	var haveID, haveState bool
	d.pos++ // '{'
	for first := true; ; first = false {
		key, more, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		switch string(key) {
		case keyHardwareConfigurationID:
			if haveID {
				return &ValidationError{Field: keyHardwareConfigurationID, Reason: "duplicate property"}
			}
			haveID = true
			if d.data[d.pos] != '"' {
				return d.typeError(keyHardwareConfigurationID, "a GUID string")
			}
			s, err := d.str()
			if err != nil {
				return err
			}
			if !isGUID(s) {
				return &ValidationError{Field: keyHardwareConfigurationID, Reason: "must be a GUID (8-4-4-4-12 hex digits)"}
			}
			ev.HardwareConfigurationID = string(s)
		case keyUserState:
			if haveState {
				return &ValidationError{Field: keyUserState, Reason: "duplicate property"}
			}
			haveState = true
			if d.data[d.pos] != '{' {
				return d.typeError(keyUserState, "an object")
			}
			if err := d.userState(&ev.UserState); err != nil {
				return err
			}
		default:
			return unknownProperty("", key)
		}
	}
	if !haveID {
		return &ValidationError{Field: keyHardwareConfigurationID, Reason: "is required"}
	}
	if !haveState {
		return &ValidationError{Field: keyUserState, Reason: "is required"}
	}
	return nil
}

// userState decodes the userState object at d.pos.
func (d *decoder) userState(u *UserState) *ValidationError {
	var seen [numProps]bool
	d.pos++ // '{'
	for first := true; ; first = false {
		key, more, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		p, ok := lookupProp(key)
		if !ok {
			if d.nested {
				return unknownProperty(keyUserState, key)
			}
			return unknownProperty("", key)
		}
		if seen[p] {
			return &ValidationError{Field: d.path(p), Reason: "duplicate property"}
		}
		seen[p] = true
		switch p {
		case propUPN:
			u.UPN, err = d.text(p)
		case propUserEmail:
			u.UserEmail, err = d.text(p)
		case propUserName:
			u.UserName, err = d.text(p)
		case propLastStateUpdateDateTime:
			u.LastStateUpdateDateTime, err = d.dateTime(p)
		case propSuccessfulDeviceCount:
			u.SuccessfulDeviceCount, err = d.count(p)
		case propFailedDeviceCount:
			u.FailedDeviceCount, err = d.count(p)
		case propPendingDeviceCount:
			u.PendingDeviceCount, err = d.count(p)
		case propErrorDeviceCount:
			u.ErrorDeviceCount, err = d.count(p)
		case propNotApplicableDeviceCount:
			u.NotApplicableDeviceCount, err = d.count(p)
		case propUnknownDeviceCount:
			u.UnknownDeviceCount, err = d.count(p)
		case propID:
			err = d.id()
		case propODataType:
			err = d.odataType()
		}
		if err != nil {
			return err
		}
	}
	for p := range numRequired {
		if !seen[p] {
			return &ValidationError{Field: d.path(p), Reason: "is required"}
		}
	}
	return nil
}

// path returns the Field that names p in errors.
func (d *decoder) path(p prop) string {
	if d.nested {
		return props[p].path
	}
	return props[p].name
}

func unknownProperty(field string, key []byte) *ValidationError {
	// The name is the producer's: keep it printable and short in logs and dead letters.
	const max = 64
	name := key
	if len(name) > max {
		name = name[:max]
		for len(name) > 0 && !utf8.Valid(name) {
			name = name[:len(name)-1]
		}
	}
	reason := "unknown property " + strconv.Quote(string(name))
	if len(name) < len(key) {
		reason += fmt.Sprintf(" (the first %d of %d bytes)", len(name), len(key))
	}
	return &ValidationError{Field: field, Reason: reason}
}

// text decodes one of the user's names.
func (d *decoder) text(p prop) (string, *ValidationError) {
	if d.data[d.pos] != '"' {
		return "", d.typeError(d.path(p), "a string")
	}
	s, err := d.str()
	if err != nil {
		return "", err
	}
	n := 0
	for _, r := range string(s) {
		if r < 0x20 || 0x7f <= r && r <= 0x9f {
			return "", &ValidationError{Field: d.path(p), Reason: "must not contain control characters"}
		}
		n++
	}
	if n < minTextLen || n > maxTextLen {
		return "", &ValidationError{Field: d.path(p), Reason: fmt.Sprintf("must be %d to %d characters", minTextLen, maxTextLen)}
	}
	return string(s), nil
}

func (d *decoder) dateTime(p prop) (string, *ValidationError) {
	if d.data[d.pos] != '"' {
		return "", d.typeError(d.path(p), "a date-time string")
	}
	s, err := d.str()
	if err != nil {
		return "", err
	}
	if reason := checkDateTime(s); reason != "" {
		return "", &ValidationError{Field: d.path(p), Reason: reason}
	}
	return string(s), nil
}

// checkDateTime returns why s is not an RFC 3339 date-time with a time zone
// and at most 7 fractional digits (what .NET's DateTimeOffset, behind Graph,
// keeps), or "" if it is one.
func checkDateTime(s []byte) string {
	const shape = "must be an RFC 3339 date-time with a time zone, like 2017-01-01T00:02:58.4418045-08:00"
	// 2006-01-02T15:04:05 then an optional fraction, then Z or ±hh:mm.
	if len(s) < len("2006-01-02T15:04:05Z") {
		return shape
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return shape
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		switch {
		case n == 1:
			return shape
		case n-1 > 7:
			return "must have at most 7 fractional digits"
		}
		rest = rest[n:]
	}
	var zoneHour, zoneMinute int
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		var okH, okM bool
		zoneHour, okH = atoi(rest[1:3])
		zoneMinute, okM = atoi(rest[4:6])
		if !okH || !okM {
			return shape
		}
	default:
		return shape
	}
	// The ranges are those of time.Parse, which rejects leap seconds too.
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 || zoneHour > 23 || zoneMinute > 59 {
		return "must be a real date and time of day"
	}
	return ""
}

// atoi parses a field of fixed width that must be all digits.
func atoi(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	// Day 0 of the next month is the last day of this one.
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func (d *decoder) count(p prop) (int32, *ValidationError) {
	const want = "an integer from 0 to 2147483647"
	c := d.data[d.pos]
	if c != '-' && !isDigit(c) {
		return 0, d.typeError(d.path(p), want)
	}
	i := d.pos
	neg := c == '-'
	if neg {
		i++
	}
	if i == len(d.data) || !isDigit(d.data[i]) {
		d.pos = i
		return 0, d.syntaxError("invalid number")
	}
	var n int64
	if d.data[i] == '0' {
		i++ // JSON allows no leading zeros: a digit after this one is a syntax error, found by the caller
	} else {
		for ; i < len(d.data) && isDigit(d.data[i]); i++ {
			if n <= 1<<31-1 { // past that it is out of range anyway; stop before int64 overflows
				n = n*10 + int64(d.data[i]-'0')
			}
		}
	}
	integer := true
	if i < len(d.data) && d.data[i] == '.' {
		integer = false
		if i++; i == len(d.data) || !isDigit(d.data[i]) {
			d.pos = i
			return 0, d.syntaxError("invalid number")
		}
		for i < len(d.data) && isDigit(d.data[i]) {
			i++
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		integer = false
		if i++; i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if i == len(d.data) || !isDigit(d.data[i]) {
			d.pos = i
			return 0, d.syntaxError("invalid number")
		}
		for i < len(d.data) && isDigit(d.data[i]) {
			i++
		}
	}
	d.pos = i
	if !integer {
		// JSON Schema counts 5.0 as an integer, but Graph's Int32 does not.
		return 0, &ValidationError{Field: d.path(p), Reason: "must be " + want + ", written without a fraction or exponent"}
	}
	if (neg && n != 0) || n > 1<<31-1 {
		return 0, &ValidationError{Field: d.path(p), Reason: "must be " + want}
	}
	return int32(n), nil
}

// id checks the read-only id, which is then dropped.
func (d *decoder) id() *ValidationError {
	switch d.data[d.pos] {
	case '"':
		_, err := d.str()
		return err
	case 'n':
		return d.literal("null")
	}
	return d.typeError(d.path(propID), "a string or null")
}

func (d *decoder) odataType() *ValidationError {
	if d.data[d.pos] != '"' {
		return d.typeError(d.path(propODataType), "a string")
	}
	s, err := d.str()
	if err != nil {
		return err
	}
	if string(s) != ODataType {
		return &ValidationError{Field: d.path(propODataType), Reason: "must be " + strconv.Quote(ODataType)}
	}
	return nil
}
