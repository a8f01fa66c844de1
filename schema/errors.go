package schema

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ValidationError says which field broke which rule.
// Decode and DecodeUserState return no other kind of error.
type ValidationError struct {
	// Field is the JSON path of the offending value, such as
	// "hardwareConfigurationId", "userState" or "userState.upn"; it is empty
	// when the fault lies with the body as a whole (size, encoding, syntax).
	Field string
	// Reason is human-readable, such as "must be an integer from 0 to 2147483647".
	Reason string
}

// Error returns "field: reason", or "body: reason" when Field is empty.
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "body: " + e.Reason
	}
	return e.Field + ": " + e.Reason
}

// typeError reports that the value at d.pos is not the one field needs, or
// that it is no JSON value at all.
func (d *decoder) typeError(field, want string) *ValidationError {
	var got string
	switch c := d.data[d.pos]; {
	case c == '"':
		got = "a string"
	case c == '{':
		got = "an object"
	case c == '[':
		got = "an array"
	case c == 't' || c == 'f':
		got = "a boolean"
	case c == 'n':
		got = "null"
	case c == '-' || isDigit(c):
		got = "a number"
	default:
		r, _ := utf8.DecodeRune(d.data[d.pos:])
		return d.syntaxError("invalid character " + strconv.QuoteRune(r) + " where a value should be")
	}
	return &ValidationError{Field: field, Reason: "must be " + want + ", not " + got}
}

func (d *decoder) syntaxError(msg string) *ValidationError {
	return &ValidationError{Reason: fmt.Sprintf("invalid JSON at offset %d: %s", d.pos, msg)}
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
	// A copy of field, which is a name from a table (see place.path).
	return &ValidationError{Field: strings.Clone(field), Reason: reason}
}
