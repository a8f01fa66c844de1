package schema

import (
	"strconv"
	"unicode/utf8"
)

// AppendGraphBody appends to dst the JSON body of the Graph request that
// creates u, and returns the extended buffer:
//
//	{"@odata.type":"#microsoft.graph.hardwareConfigurationUserState","upn":...,"successfulDeviceCount":5,...}
//
// The properties come in a fixed order, @odata.type first as OData's JSON
// format wants control information; there is never an id, which Graph assigns.
// AppendGraphBody does not validate u: the body is valid JSON whatever u
// holds, and DecodeUserState accepts it whenever u came from Decode.
func (u *UserState) AppendGraphBody(dst []byte) []byte {
	dst = append(dst, `{"@odata.type":"`+ODataType+`","upn":`...)
	dst = appendString(dst, u.UPN)
	dst = append(dst, `,"userEmail":`...)
	dst = appendString(dst, u.UserEmail)
	dst = append(dst, `,"userName":`...)
	dst = appendString(dst, u.UserName)
	dst = append(dst, `,"lastStateUpdateDateTime":`...)
	dst = appendString(dst, u.LastStateUpdateDateTime)
	dst = append(dst, `,"successfulDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.SuccessfulDeviceCount), 10)
	dst = append(dst, `,"failedDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.FailedDeviceCount), 10)
	dst = append(dst, `,"pendingDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.PendingDeviceCount), 10)
	dst = append(dst, `,"errorDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.ErrorDeviceCount), 10)
	dst = append(dst, `,"notApplicableDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.NotApplicableDeviceCount), 10)
	dst = append(dst, `,"unknownDeviceCount":`...)
	dst = strconv.AppendInt(dst, int64(u.UnknownDeviceCount), 10)
	return append(dst, '}')
}

// appendString appends s as a JSON string. Invalid UTF-8, which only a
// hand-made UserState can hold, becomes U+FFFD as in encoding/json.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0 // s[start:i] is still to be copied
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, `\ufffd`...)
				start = i + size
			}
			i += size
			continue
		}
		if c >= 0x20 && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
