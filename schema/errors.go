package schema

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
