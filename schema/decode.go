package schema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file walks an event and holds its rules: a table per object of the
// properties it may have, each with its rule and where its value goes.
// A table is built on the stack for each object decoded, so that its
// pointers lead into the caller's Event without making it escape.

// A field is a property that an object may have: its name, the rule its
// value must meet, and where the value goes (str, num or obj, as the rule
// needs; nothing for a value that is checked and dropped).
type field struct {
	name     string
	required bool
	rule     rule
	str      *string
	num      *int32
	obj      *UserState
}

// A rule is what a property's value must be.
type rule uint8

const (
	ruleGUID      rule = iota // a GUID string (IsGUID), stored in str
	ruleUserState             // a userState object, stored in obj
	ruleText                  // one of the user's names, stored in str
	ruleDateTime              // an RFC 3339 date-time with a zone, stored in str as received
	ruleCount                 // a device count, Graph's Int32, stored in num
	ruleID                    // Graph's read-only id, a string or null: dropped
	ruleODataType             // ODataType exactly: dropped
)

// fields is the table of the envelope's properties, decoded into ev; the
// last, tenantId, only in multi-tenant mode.
func (ev *Event) fields() [3]field {
	return [...]field{
		{name: "hardwareConfigurationId", required: true, rule: ruleGUID, str: &ev.HardwareConfigurationID},
		{name: "userState", required: true, rule: ruleUserState, obj: &ev.UserState},
		{name: "tenantId", rule: ruleGUID, str: &ev.TenantID},
	}
}

// fields is the table of a userState's properties, decoded into u, the
// required ones first: a missing one is reported in this order.
func (u *UserState) fields() [maxFields]field {
	return [...]field{
		{name: "upn", required: true, rule: ruleText, str: &u.UPN},
		{name: "userEmail", required: true, rule: ruleText, str: &u.UserEmail},
		{name: "userName", required: true, rule: ruleText, str: &u.UserName},
		{name: "lastStateUpdateDateTime", required: true, rule: ruleDateTime, str: &u.LastStateUpdateDateTime},
		{name: "successfulDeviceCount", required: true, rule: ruleCount, num: &u.SuccessfulDeviceCount},
		{name: "failedDeviceCount", required: true, rule: ruleCount, num: &u.FailedDeviceCount},
		{name: "pendingDeviceCount", required: true, rule: ruleCount, num: &u.PendingDeviceCount},
		{name: "errorDeviceCount", required: true, rule: ruleCount, num: &u.ErrorDeviceCount},
		{name: "notApplicableDeviceCount", required: true, rule: ruleCount, num: &u.NotApplicableDeviceCount},
		{name: "unknownDeviceCount", required: true, rule: ruleCount, num: &u.UnknownDeviceCount},
		{name: "id", rule: ruleID},
		{name: "@odata.type", rule: ruleODataType},
	}
}

// maxFields is the most properties an object has.
const maxFields = 12

// A place names a value in errors: the path of its object ("" for the body
// itself) and its name there, kept apart until an error needs the path.
type place struct{ at, name string }

// path returns p's path for an error's Field, always as a new string: names
// come from a table that points into the caller's Event, and escape analysis,
// which does not tell a table's names from its pointers, would otherwise move
// every Event to the heap in case a name reached it in an error.
func (p place) path() string {
	if p.at == "" {
		return strings.Clone(p.name)
	}
	return p.at + "." + p.name
}

// A decoder walks a body once, validating as it goes. It is a scanner of its
// own rather than encoding/json because it must see what encoding/json hides
// (duplicate keys, how a number was written) and should not allocate per token.
type decoder struct {
	data []byte
	pos  int
	buf  []byte // unescaped text of the last string that had escapes
}

// decodeBody decodes data, a body holding one JSON object with the given
// fields, into where the fields point.
func decodeBody(data []byte, fields []field) *ValidationError {
	d := decoder{data: data}
	if err := d.open(); err != nil {
		return err
	}
	if err := d.object(fields, ""); err != nil {
		return err
	}
	return d.close()
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

// object decodes the object at d.pos, whose path is at: each property once,
// each one of fields, every required one present.
func (d *decoder) object(fields []field, at string) *ValidationError {
	var seen [maxFields]bool
	next := 0 // where the next property probably is in fields
	d.pos++   // '{'
	for first := true; ; first = false {
		key, more, err := d.nextKey(first)
		if err != nil {
			return err
		}
		if !more {
			break
		}
		i := lookupField(fields, key, next)
		if i < 0 {
			return unknownProperty(at, key)
		}
		next = i + 1
		p := place{at, fields[i].name}
		if seen[i] {
			return &ValidationError{Field: p.path(), Reason: "duplicate property"}
		}
		seen[i] = true
		if err := d.value(&fields[i], p); err != nil {
			return err
		}
	}
	for i := range fields {
		if fields[i].required && !seen[i] {
			return &ValidationError{Field: place{at, fields[i].name}.path(), Reason: "is required"}
		}
	}
	return nil
}

// lookupField returns the index of the field named key, or -1. Names are
// matched exactly: Graph's are case-insensitive, but an event's are not.
// The search begins at from and wraps around: producers mostly write the
// properties in the table's order, so one comparison usually finds the next.
func lookupField(fields []field, key []byte, from int) int {
	i := from
	for range fields {
		if i == len(fields) {
			i = 0
		}
		if string(key) == fields[i].name {
			return i
		}
		i++
	}
	return -1
}

// want says what a value of rule r is, for errors.
func (r rule) want() string {
	switch r {
	case ruleGUID:
		return "a GUID string"
	case ruleUserState:
		return "an object"
	case ruleDateTime:
		return "a date-time string"
	case ruleCount:
		return countWant
	case ruleID:
		return "a string or null"
	}
	return "a string"
}

// value decodes the value at d.pos by f's rule and stores it where f points.
func (d *decoder) value(f *field, p place) *ValidationError {
	switch c := d.data[d.pos]; {
	case f.rule == ruleUserState:
		if c != '{' {
			return d.typeError(p.path(), f.rule.want())
		}
		// The userState is a property of the body itself: its path is its name.
		fields := f.obj.fields()
		return d.object(fields[:], p.name)
	case f.rule == ruleCount:
		if c != '-' && !isDigit(c) {
			return d.typeError(p.path(), f.rule.want())
		}
		n, err := d.count(p)
		*f.num = n
		return err
	case f.rule == ruleID && c == 'n':
		return d.literal("null")
	case c != '"':
		return d.typeError(p.path(), f.rule.want())
	}
	// The other rules are those of strings.
	s, err := d.str()
	if err != nil {
		return err
	}
	var reason string
	switch f.rule {
	case ruleGUID:
		if !isGUID(s) {
			reason = "must be a GUID (8-4-4-4-12 hex digits)"
		}
	case ruleText:
		reason = checkText(s)
	case ruleDateTime:
		reason = checkDateTime(s)
	case ruleODataType:
		if string(s) != ODataType {
			reason = "must be " + strconv.Quote(ODataType)
		}
	}
	if reason != "" {
		return &ValidationError{Field: p.path(), Reason: reason}
	}
	if f.str != nil {
		*f.str = string(s)
	}
	return nil
}

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

// Limits of the user's names (upn, userEmail, userName), in characters.
const (
	minTextLen = 1
	maxTextLen = 1024
)

// checkText returns why s is not one of the user's names, or "" if it is one.
func checkText(s []byte) string {
	n := 0
	for _, r := range string(s) {
		if r < 0x20 || 0x7f <= r && r <= 0x9f {
			return "must not contain control characters"
		}
		n++
	}
	if n < minTextLen || n > maxTextLen {
		return fmt.Sprintf("must be %d to %d characters", minTextLen, maxTextLen)
	}
	return ""
}

const countWant = "an integer from 0 to 2147483647"

// count decodes the device count (Graph's Int32) at d.pos, a JSON number.
func (d *decoder) count(p place) (int32, *ValidationError) {
	n, err := d.number()
	switch {
	case err != nil:
		return 0, err
	case !n.integer:
		// JSON Schema counts 5.0 as an integer, but Graph's Int32 does not.
		return 0, &ValidationError{Field: p.path(), Reason: "must be " + countWant + ", written without a fraction or exponent"}
	case n.neg && n.abs != 0 || n.abs > 1<<31-1:
		return 0, &ValidationError{Field: p.path(), Reason: "must be " + countWant}
	}
	return int32(n.abs), nil
}
