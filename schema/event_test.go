package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
)

const goodGUID = "0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"

// goodUserState is the userState of the CONTRACT's example, as raw JSON values.
var goodUserState = []struct{ key, value string }{
	{"upn", `"ada@contoso.com"`},
	{"userEmail", `"ada@contoso.com"`},
	{"userName", `"Ada Lovelace"`},
	{"lastStateUpdateDateTime", `"2017-01-01T00:02:58.4418045-08:00"`},
	{"successfulDeviceCount", "5"},
	{"failedDeviceCount", "1"},
	{"pendingDeviceCount", "2"},
	{"errorDeviceCount", "0"},
	{"notApplicableDeviceCount", "8"},
	{"unknownDeviceCount", "2"},
}

var goodEvent = Event{
	HardwareConfigurationID: goodGUID,
	UserState: UserState{
		UPN:                      "ada@contoso.com",
		UserEmail:                "ada@contoso.com",
		UserName:                 "Ada Lovelace",
		LastStateUpdateDateTime:  "2017-01-01T00:02:58.4418045-08:00",
		SuccessfulDeviceCount:    5,
		FailedDeviceCount:        1,
		PendingDeviceCount:       2,
		ErrorDeviceCount:         0,
		NotApplicableDeviceCount: 8,
		UnknownDeviceCount:       2,
	},
}

// omit as a value removes the property.
const omit = "\x00omit"

// userStateWith returns the good userState object with key's raw JSON value
// replaced by value, or added after the others if the good one lacks key.
func userStateWith(key, value string) string {
	var b strings.Builder
	b.WriteByte('{')
	found := false
	add := func(k, v string) {
		if v == omit {
			return
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", k, v)
	}
	for _, p := range goodUserState {
		if p.key == key {
			found = true
			add(p.key, value)
		} else {
			add(p.key, p.value)
		}
	}
	if !found && key != "" {
		add(key, value)
	}
	b.WriteByte('}')
	return b.String()
}

// eventWith is the good event with userStateWith(key, value).
func eventWith(key, value string) string {
	return `{"hardwareConfigurationId":"` + goodGUID + `","userState":` + userStateWith(key, value) + `}`
}

// eventWithGUID is the good event with the raw JSON value guid as its
// hardwareConfigurationId.
func eventWithGUID(guid string) string {
	return `{"hardwareConfigurationId":` + guid + `,"userState":` + userStateWith("", "") + `}`
}

var good = eventWith("", "")

// withMember adds the raw member (`"key":value`) to the end of the
// userState of the event body.
func withMember(body, member string) string {
	return body[:len(body)-2] + "," + member + "}}"
}

// padTo pads body with white space to n bytes.
func padTo(body string, n int) string {
	return body + strings.Repeat(" ", n-len(body))
}

// An eventCase is a body and what Decode must make of it.
type eventCase struct {
	name  string
	body  string
	valid bool
	// field is the Field of the error when the body is invalid ("" for the body as a whole).
	field string
	// decoderOnly marks an invalid body that event.schema.json accepts: its rule
	// is beyond JSON Schema, so only the decoder enforces it.
	decoderOnly bool
}

var counts = []string{
	"successfulDeviceCount",
	"failedDeviceCount",
	"pendingDeviceCount",
	"errorDeviceCount",
	"notApplicableDeviceCount",
	"unknownDeviceCount",
}

var names = []string{"upn", "userEmail", "userName"}

// eventCases is shared by the tests of Decode, of the JSON Schema and the fuzz
// seeds: at least one body for every rule of CONTRACT section 1.
var eventCases = func() []eventCase {
	const dateKey = "lastStateUpdateDateTime"
	cases := []eventCase{
		{name: "good", body: good, valid: true},
		{name: "good with id", body: eventWith("id", `"b1c3d2e4-0000-4000-8000-000000000001"`), valid: true},
		{name: "good with null id", body: eventWith("id", "null"), valid: true},
		{name: "good with empty id", body: eventWith("id", `""`), valid: true},
		{name: "good with odata type", body: eventWith("@odata.type", `"`+ODataType+`"`), valid: true},
		{name: "good with white space", body: " \t\r\n" + strings.ReplaceAll(good, ",", " ,\n\t") + "\r\n ", valid: true},
		{name: "good userState first", body: `{"userState":` + userStateWith("", "") + `,"hardwareConfigurationId":"` + goodGUID + `"}`, valid: true},
		{name: "good upper-case GUID", body: eventWithGUID(`"` + strings.ToUpper(goodGUID) + `"`), valid: true},
		{name: "good escaped GUID", body: eventWithGUID(`"\u0030f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33"`), valid: true},
		{name: "good escaped key", body: withMember(eventWith("upn", omit), `"up\u006e":"x"`), valid: true},
		{name: "good escapes in strings", body: eventWith("userName", `"Ad\u0061 \"L\\ovelace\/\ud83d\ude00"`), valid: true},
		{name: "good non-ASCII name", body: eventWith("userName", `"Åda Lövelace 😀 `+"\u00a0\u2028"+`"`), valid: true},
		{name: "good 1 character", body: eventWith("upn", `"a"`), valid: true},
		{name: "good 1024 characters", body: eventWith("upn", `"`+strings.Repeat("é", 1024)+`"`), valid: true},
		{name: "good zero counts", body: eventWith("failedDeviceCount", "0"), valid: true},
		{name: "good minus zero count", body: eventWith("failedDeviceCount", "-0"), valid: true},
		{name: "good max count", body: eventWith("failedDeviceCount", "2147483647"), valid: true},
		{name: "good date Z without fraction", body: eventWith(dateKey, `"2017-01-01T00:02:58Z"`), valid: true},
		{name: "good date lower-case t and z", body: eventWith(dateKey, `"2017-01-01t00:02:58.1z"`), valid: true},
		{name: "good date plus offset", body: eventWith(dateKey, `"2017-12-31T23:59:59.9999999+14:00"`), valid: true},
		{name: "good date leap day", body: eventWith(dateKey, `"2024-02-29T12:00:00-00:00"`), valid: true},
		{name: "good body of 64 KiB", body: padTo(good, MaxEventSize), valid: true},

		{name: "missing hardwareConfigurationId", body: `{"userState":` + userStateWith("", "") + `}`, field: "hardwareConfigurationId"},
		{name: "missing userState", body: `{"hardwareConfigurationId":"` + goodGUID + `"}`, field: "userState"},
		{name: "empty object", body: `{}`, field: "hardwareConfigurationId"},
		{name: "extra top-level property", body: `{"hardwareConfigurationId":"` + goodGUID + `","userState":` + userStateWith("", "") + `,"extra":1}`},
		{name: "top-level property in other case", body: `{"HardwareConfigurationId":"` + goodGUID + `","userState":` + userStateWith("", "") + `}`},
		{name: "extra userState property", body: eventWith("deviceName", `"x"`), field: "userState"},
		{name: "userState property in other case", body: eventWith("UPN", `"x"`), field: "userState"},
		{name: "userState property that Graph has but events may not", body: eventWith("userPrincipalName", `"x"`), field: "userState"},
		{name: "tenantId in userState", body: eventWith("tenantId", `"`+goodTenant+`"`), field: "userState"},

		{name: "GUID too short", body: eventWithGUID(`"` + goodGUID[:35] + `"`), field: "hardwareConfigurationId"},
		{name: "GUID too long", body: eventWithGUID(`"` + goodGUID + `0"`), field: "hardwareConfigurationId"},
		{name: "GUID not hex", body: eventWithGUID(`"0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c3g"`), field: "hardwareConfigurationId"},
		{name: "GUID in braces", body: eventWithGUID(`"{` + goodGUID + `}"`), field: "hardwareConfigurationId"},
		{name: "GUID without dashes", body: eventWithGUID(`"0f3c9a1e5b2d4c7e9a102f6d8b4e1c33"`), field: "hardwareConfigurationId"},
		{name: "GUID with dashes elsewhere", body: eventWithGUID(`"0f3c9a1e5-b2d-4c7e-9a10-2f6d8b4e1c33"`), field: "hardwareConfigurationId"},
		{name: "GUID as URN", body: eventWithGUID(`"urn:uuid:` + goodGUID + `"`), field: "hardwareConfigurationId"},
		{name: "GUID with path", body: eventWithGUID(`"../x"`), field: "hardwareConfigurationId"},
		{name: "GUID with slash", body: eventWithGUID(`"a/b"`), field: "hardwareConfigurationId"},
		{name: "GUID followed by a path", body: eventWithGUID(`"` + goodGUID[:32] + `/../"`), field: "hardwareConfigurationId"},
		{name: "GUID with trailing newline", body: eventWithGUID(`"` + goodGUID + `\n"`), field: "hardwareConfigurationId"},
		{name: "GUID empty", body: eventWithGUID(`""`), field: "hardwareConfigurationId"},
		{name: "GUID null", body: eventWithGUID(`null`), field: "hardwareConfigurationId"},
		{name: "GUID number", body: eventWithGUID(`123`), field: "hardwareConfigurationId"},
		{name: "GUID object", body: eventWithGUID(`{}`), field: "hardwareConfigurationId"},

		{name: "userState array", body: `{"hardwareConfigurationId":"` + goodGUID + `","userState":[]}`, field: "userState"},
		{name: "userState string", body: `{"hardwareConfigurationId":"` + goodGUID + `","userState":"x"}`, field: "userState"},
		{name: "userState null", body: `{"hardwareConfigurationId":"` + goodGUID + `","userState":null}`, field: "userState"},

		{name: "date without zone", body: eventWith(dateKey, `"2017-01-01T00:02:58.4418045"`), field: "userState." + dateKey},
		{name: "date with 8 fractional digits", body: eventWith(dateKey, `"2017-01-01T00:02:58.44180451-08:00"`), field: "userState." + dateKey},
		{name: "date with empty fraction", body: eventWith(dateKey, `"2017-01-01T00:02:58.-08:00"`), field: "userState." + dateKey},
		{name: "date with space for T", body: eventWith(dateKey, `"2017-01-01 00:02:58Z"`), field: "userState." + dateKey},
		{name: "date only", body: eventWith(dateKey, `"2017-01-01"`), field: "userState." + dateKey},
		{name: "date without seconds", body: eventWith(dateKey, `"2017-01-01T00:02Z"`), field: "userState." + dateKey},
		{name: "date with offset without colon", body: eventWith(dateKey, `"2017-01-01T00:02:58+0800"`), field: "userState." + dateKey},
		{name: "date with short offset", body: eventWith(dateKey, `"2017-01-01T00:02:58+08"`), field: "userState." + dateKey},
		{name: "date with offset hour 24", body: eventWith(dateKey, `"2017-01-01T00:02:58+24:00"`), field: "userState." + dateKey},
		{name: "date month 13", body: eventWith(dateKey, `"2017-13-01T00:02:58Z"`), field: "userState." + dateKey},
		{name: "date month 0", body: eventWith(dateKey, `"2017-00-01T00:02:58Z"`), field: "userState." + dateKey},
		{name: "date day 32", body: eventWith(dateKey, `"2017-01-32T00:02:58Z"`), field: "userState." + dateKey},
		{name: "date February 30", body: eventWith(dateKey, `"2017-02-30T00:02:58Z"`), field: "userState." + dateKey, decoderOnly: true},
		{name: "date February 29 of a common year", body: eventWith(dateKey, `"2100-02-29T00:02:58Z"`), field: "userState." + dateKey, decoderOnly: true},
		{name: "date April 31", body: eventWith(dateKey, `"2017-04-31T00:02:58Z"`), field: "userState." + dateKey, decoderOnly: true},
		{name: "date hour 24", body: eventWith(dateKey, `"2017-01-01T24:00:00Z"`), field: "userState." + dateKey},
		{name: "date minute 60", body: eventWith(dateKey, `"2017-01-01T00:60:00Z"`), field: "userState." + dateKey},
		{name: "date leap second", body: eventWith(dateKey, `"2016-12-31T23:59:60Z"`), field: "userState." + dateKey},
		{name: "date with comma fraction", body: eventWith(dateKey, `"2017-01-01T00:02:58,1Z"`), field: "userState." + dateKey},
		{name: "date with non-ASCII digit", body: eventWith(dateKey, `"２017-01-01T00:02:58Z"`), field: "userState." + dateKey},
		{name: "date with zone letter", body: eventWith(dateKey, `"2017-01-01T00:02:58A"`), field: "userState." + dateKey},
		{name: "date with trailing space", body: eventWith(dateKey, `"2017-01-01T00:02:58Z "`), field: "userState." + dateKey},
		{name: "date empty", body: eventWith(dateKey, `""`), field: "userState." + dateKey},
		{name: "date number", body: eventWith(dateKey, `1483228978`), field: "userState." + dateKey},
		{name: "date null", body: eventWith(dateKey, `null`), field: "userState." + dateKey},

		{name: "wrong odata type", body: eventWith("@odata.type", `"#microsoft.graph.windows10GeneralConfiguration"`), field: "userState.@odata.type"},
		{name: "odata type in other case", body: eventWith("@odata.type", `"`+strings.ToLower(ODataType)+`"`), field: "userState.@odata.type"},
		{name: "odata type without hash", body: eventWith("@odata.type", `"`+ODataType[1:]+`"`), field: "userState.@odata.type"},
		{name: "odata type null", body: eventWith("@odata.type", `null`), field: "userState.@odata.type"},
		{name: "id number", body: eventWith("id", `5`), field: "userState.id"},
		{name: "id object", body: eventWith("id", `{}`), field: "userState.id"},
		{name: "id boolean", body: eventWith("id", `true`), field: "userState.id"},

		{name: "duplicate hardwareConfigurationId", body: `{"hardwareConfigurationId":"` + goodGUID + `","hardwareConfigurationId":"` + goodGUID + `","userState":` + userStateWith("", "") + `}`, field: "hardwareConfigurationId", decoderOnly: true},
		{name: "duplicate userState", body: `{"hardwareConfigurationId":"` + goodGUID + `","userState":` + userStateWith("", "") + `,"userState":` + userStateWith("", "") + `}`, field: "userState", decoderOnly: true},
		{name: "duplicate upn", body: withMember(good, `"upn":"ada@contoso.com"`), field: "userState.upn", decoderOnly: true},
		{name: "duplicate upn escaped", body: withMember(good, `"up\u006e":"ada@contoso.com"`), field: "userState.upn", decoderOnly: true},
		{name: "duplicate count", body: withMember(good, `"failedDeviceCount":1`), field: "userState.failedDeviceCount", decoderOnly: true},
		{name: "duplicate id", body: withMember(good, `"id":"a","id":"a"`), field: "userState.id", decoderOnly: true},
		{name: "duplicate odata type", body: withMember(good, `"@odata.type":"`+ODataType+`","@\u006fdata.type":"`+ODataType+`"`), field: "userState.@odata.type", decoderOnly: true},

		{name: "trailing object", body: good + `{}`},
		{name: "trailing garbage", body: good + "\nx"},
		{name: "trailing comma", body: good + ","},
		{name: "trailing NUL", body: good + "\x00"},
		{name: "two events", body: good + "\n" + good},

		{name: "invalid UTF-8 in a string", body: eventWith("userName", "\"Ada \xff\""), decoderOnly: true},
		{name: "overlong UTF-8", body: eventWith("userName", "\"Ada \xc0\xaf\""), decoderOnly: true},
		{name: "UTF-8 encoded surrogate", body: eventWith("userName", "\"Ada \xed\xa0\x80\""), decoderOnly: true},
		{name: "truncated UTF-8", body: eventWith("userName", "\"Ada \xe2\x82\""), decoderOnly: true},
		{name: "escaped lone high surrogate", body: eventWith("userName", `"Ada \ud83d"`), decoderOnly: true},
		{name: "escaped lone low surrogate", body: eventWith("userName", `"Ada \ude00"`), decoderOnly: true},
		{name: "escaped surrogates reversed", body: eventWith("userName", `"Ada \ude00\ud83d"`), decoderOnly: true},
		{name: "body over 64 KiB", body: padTo(good, MaxEventSize+1), decoderOnly: true},

		{name: "empty body", body: ``},
		{name: "only white space", body: " \n"},
		{name: "array", body: `[` + good + `]`},
		{name: "string", body: `"x"`},
		{name: "number", body: `1`},
		{name: "null", body: `null`},
		{name: "byte order mark", body: "\xef\xbb\xbf" + good},
		{name: "unterminated object", body: good[:len(good)-1]},
		{name: "unterminated string", body: `{"hardwareConfigurationId":"` + goodGUID},
		{name: "missing colon", body: `{"hardwareConfigurationId" "` + goodGUID + `"}`},
		{name: "trailing comma in object", body: good[:len(good)-1] + `,}`},
		{name: "single-quoted key", body: `{'hardwareConfigurationId':"` + goodGUID + `"}`},
		{name: "unquoted key", body: `{hardwareConfigurationId:"` + goodGUID + `"}`},
		{name: "raw newline in a string", body: eventWith("userName", "\"Ada\nLovelace\"")},
		{name: "invalid escape", body: eventWith("userName", `"Ada \x41"`)},
		{name: "short unicode escape", body: eventWith("userName", `"Ada \u41"`)},
		{name: "count with leading zero", body: eventWith("failedDeviceCount", "01")},
		{name: "count with plus sign", body: eventWith("failedDeviceCount", "+1")},
		{name: "count minus alone", body: eventWith("failedDeviceCount", "-")},
		{name: "count with dot alone", body: eventWith("failedDeviceCount", "1.")},
		{name: "count with empty exponent", body: eventWith("failedDeviceCount", "1e")},
		{name: "id misspelt null", body: eventWith("id", "nul")},
		{name: "id null in other case", body: eventWith("id", "nulL")},
	}
	for _, k := range []string{"upn", "userEmail", "userName", dateKey} {
		cases = append(cases, eventCase{name: "missing " + k, body: eventWith(k, omit), field: "userState." + k})
	}
	for _, k := range counts {
		cases = append(cases,
			eventCase{name: "missing " + k, body: eventWith(k, omit), field: "userState." + k},
			eventCase{name: k + " 5.0", body: eventWith(k, "5.0"), field: "userState." + k, decoderOnly: true},
			eventCase{name: k + " 1e3", body: eventWith(k, "1e3"), field: "userState." + k, decoderOnly: true},
			eventCase{name: k + " 5E+0", body: eventWith(k, "5E+0"), field: "userState." + k, decoderOnly: true},
			eventCase{name: k + " 5.5", body: eventWith(k, "5.5"), field: "userState." + k},
			eventCase{name: k + ` "5"`, body: eventWith(k, `"5"`), field: "userState." + k},
			eventCase{name: k + " -1", body: eventWith(k, "-1"), field: "userState." + k},
			eventCase{name: k + " 2147483648", body: eventWith(k, "2147483648"), field: "userState." + k},
			eventCase{name: k + " 2^64", body: eventWith(k, "18446744073709551616"), field: "userState." + k},
			eventCase{name: k + " null", body: eventWith(k, "null"), field: "userState." + k},
			eventCase{name: k + " true", body: eventWith(k, "true"), field: "userState." + k},
		)
	}
	for _, k := range names {
		cases = append(cases,
			eventCase{name: k + " empty", body: eventWith(k, `""`), field: "userState." + k},
			eventCase{name: k + " 1025 characters", body: eventWith(k, `"`+strings.Repeat("é", 1025)+`"`), field: "userState." + k},
			eventCase{name: k + ` with \u0000`, body: eventWith(k, `"ada\u0000"`), field: "userState." + k},
			eventCase{name: k + ` with \n`, body: eventWith(k, `"ada\n"`), field: "userState." + k},
			eventCase{name: k + ` with \u001f`, body: eventWith(k, `"ada\u001F"`), field: "userState." + k},
			eventCase{name: k + ` with \u0085`, body: eventWith(k, `"ada\u0085"`), field: "userState." + k},
			eventCase{name: k + " with raw U+0085", body: eventWith(k, "\"ada\u0085\""), field: "userState." + k},
			eventCase{name: k + " with raw DEL", body: eventWith(k, "\"ada\x7f\""), field: "userState." + k},
			eventCase{name: k + " with raw U+009F", body: eventWith(k, "\"ada\u009f\""), field: "userState." + k},
			eventCase{name: k + " number", body: eventWith(k, `1`), field: "userState." + k},
			eventCase{name: k + " null", body: eventWith(k, `null`), field: "userState." + k},
			eventCase{name: k + " array", body: eventWith(k, `["ada"]`), field: "userState." + k},
		)
	}
	return cases
}()

// TestContractRules is the index of CONTRACT section 1: each of its rules
// with the cases of eventCases that break it (and, where a bound is at
// stake, the case that keeps it), which TestDecode judges. A rule with no
// case, or a case renamed away, fails here.
func TestContractRules(t *testing.T) {
	each := func(keys []string, cases ...string) []string {
		var out []string
		for _, k := range keys {
			for _, c := range cases {
				out = append(out, strings.ReplaceAll(c, "%", k))
			}
		}
		return out
	}
	rules := []struct {
		rule  string
		cases []string
	}{
		{"body: UTF-8 JSON", []string{"invalid UTF-8 in a string", "overlong UTF-8", "UTF-8 encoded surrogate", "truncated UTF-8", "escaped lone high surrogate", "byte order mark", "empty body", "array", "unterminated object"}},
		{"body: at most 64 KiB", []string{"good body of 64 KiB", "body over 64 KiB"}},
		{"envelope: exactly hardwareConfigurationId and userState", []string{"extra top-level property", "top-level property in other case"}},
		{"hardwareConfigurationId: required", []string{"missing hardwareConfigurationId", "empty object"}},
		{"hardwareConfigurationId: a GUID, any case, nothing else", []string{"good upper-case GUID", "GUID too short", "GUID too long", "GUID not hex", "GUID in braces", "GUID without dashes", "GUID as URN", "GUID with path", "GUID with slash", "GUID followed by a path", "GUID with trailing newline", "GUID empty", "GUID null", "GUID number"}},
		{"userState: a required object", []string{"missing userState", "userState array", "userState string", "userState null"}},
		{"names: required", each(names, "missing %")},
		{"names: strings of 1 to 1024 characters", append(each(names, "% empty", "% 1025 characters", "% number", "% null", "% array"), "good 1 character", "good 1024 characters")},
		{"names: no control characters", each(names, `% with \u0000`, `% with \n`, `% with \u001f`, `% with \u0085`, "% with raw DEL", "% with raw U+009F")},
		{"lastStateUpdateDateTime: required", []string{"missing lastStateUpdateDateTime"}},
		{"lastStateUpdateDateTime: RFC 3339 with a zone offset or Z", []string{"good date Z without fraction", "good date plus offset", "date without zone", "date with space for T", "date only", "date with offset without colon", "date February 30", "date hour 24", "date leap second", "date number"}},
		{"lastStateUpdateDateTime: up to 7 fractional digits", []string{"good date plus offset", "date with 8 fractional digits"}},
		{"counts: required", each(counts, "missing %")},
		{"counts: integers from 0 to 2147483647", append(each(counts, "% 5.0", `% "5"`, "% -1", "% 2147483648", "% 1e3", "% null"), "good max count", "good zero counts")},
		{"id: a string or null, dropped", []string{"good with id", "good with null id", "id number", "id object"}},
		{"@odata.type: ODataType only", []string{"good with odata type", "wrong odata type", "odata type in other case", "odata type null"}},
		{"userState: any other property is invalid", []string{"extra userState property", "userState property in other case", "userState property that Graph has but events may not"}},
		{"duplicate keys: invalid at both levels", []string{"duplicate hardwareConfigurationId", "duplicate userState", "duplicate upn", "duplicate upn escaped", "duplicate count", "duplicate id", "duplicate odata type"}},
		{"trailing data: invalid", []string{"trailing object", "trailing garbage", "trailing NUL", "two events"}},
		// CONTRACT section 6: DecodeMultiTenant, judged by TestDecodeMultiTenant.
		{"tenantId: optional", []string{"good", "good tenantId", "good tenantId last"}},
		{"tenantId: a GUID, any case, nothing else", []string{"good tenantId upper-case", "good tenantId escaped", "tenantId empty", "tenantId null", "tenantId number", "tenantId a domain name", "tenantId in braces", "tenantId without dashes", "tenantId too long", "tenantId with a subject wildcard", "tenantId with trailing newline"}},
		{"tenantId: a property of the envelope, named exactly", []string{"tenantId in userState", "tenantId in other case", "tenantId misspelt"}},
		{"tenantId: at most once", []string{"duplicate tenantId", "duplicate tenantId escaped"}},
		{"tenantId: the other rules unchanged", []string{"tenantId with an invalid userState"}},
	}
	known := make(map[string]bool, len(eventCases)+len(tenantCases))
	for _, tc := range append(append([]eventCase(nil), eventCases...), tenantCases...) {
		known[tc.name] = true
	}
	for _, r := range rules {
		if len(r.cases) == 0 {
			t.Errorf("%s: no case", r.rule)
		}
		for _, c := range r.cases {
			if !known[c] {
				t.Errorf("%s: no case named %q in eventCases", r.rule, c)
			}
		}
	}
	// The id's being dropped is seen in the values: TestDecodeValues "id dropped".
}

// TestDecode judges eventCases with Decode, and with DecodeMultiTenant, which
// must judge alike every body that has no tenantId.
func TestDecode(t *testing.T) {
	for _, tc := range eventCases {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, "Decode", Decode, tc)
			checkCase(t, "DecodeMultiTenant", DecodeMultiTenant, tc)
		})
	}
}

// checkCase checks what decode, called name, makes of tc's body.
func checkCase(t *testing.T, name string, decode func([]byte) (Event, error), tc eventCase) {
	t.Helper()
	ev, err := decode([]byte(tc.body))
	if tc.valid {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if ref, err := decodeReference([]byte(tc.body)); err != nil || ev != ref {
			t.Errorf("%s =\n%+v\nencoding/json reads\n%+v (%v)", name, ev, ref, err)
		}
		return
	}
	if err == nil {
		t.Fatalf("%s accepted it: %+v", name, ev)
	}
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("%s: error is %T, not *ValidationError: %v", name, err, err)
	}
	if ve.Field != tc.field {
		t.Errorf("%s: Field = %q, want %q (error: %v)", name, ve.Field, tc.field, err)
	}
	if ve.Reason == "" {
		t.Errorf("%s: empty Reason", name)
	}
	if ev != (Event{}) {
		t.Errorf("%s returned %+v with its error", name, ev)
	}
}

// decodeReference reads an event with encoding/json, which is lenient but
// sure to unescape strings right: on a body that Decode accepts, the two
// must read the same values.
func decodeReference(data []byte) (Event, error) {
	var ref struct {
		HardwareConfigurationID string `json:"hardwareConfigurationId"`
		UserState               struct {
			UPN                      string `json:"upn"`
			UserEmail                string `json:"userEmail"`
			UserName                 string `json:"userName"`
			LastStateUpdateDateTime  string `json:"lastStateUpdateDateTime"`
			SuccessfulDeviceCount    int32  `json:"successfulDeviceCount"`
			FailedDeviceCount        int32  `json:"failedDeviceCount"`
			PendingDeviceCount       int32  `json:"pendingDeviceCount"`
			ErrorDeviceCount         int32  `json:"errorDeviceCount"`
			NotApplicableDeviceCount int32  `json:"notApplicableDeviceCount"`
			UnknownDeviceCount       int32  `json:"unknownDeviceCount"`
		} `json:"userState"`
		TenantID string `json:"tenantId"`
	}
	err := json.Unmarshal(data, &ref)
	return Event{HardwareConfigurationID: ref.HardwareConfigurationID, UserState: UserState(ref.UserState), TenantID: ref.TenantID}, err
}

func TestDecodeValues(t *testing.T) {
	with := func(f func(*Event)) Event {
		ev := goodEvent
		f(&ev)
		return ev
	}
	tests := []struct {
		name string
		body string
		want Event
	}{
		{"good", good, goodEvent},
		{"id dropped", eventWith("id", `"some-id"`), goodEvent},
		{"odata type dropped", eventWith("@odata.type", `"`+ODataType+`"`), goodEvent},
		{"minus zero", eventWith("failedDeviceCount", "-0"), with(func(ev *Event) { ev.UserState.FailedDeviceCount = 0 })},
		{"max count", eventWith("unknownDeviceCount", "2147483647"), with(func(ev *Event) { ev.UserState.UnknownDeviceCount = 2147483647 })},
		{"date as received", eventWith("lastStateUpdateDateTime", `"2017-01-01t00:02:58z"`), with(func(ev *Event) { ev.UserState.LastStateUpdateDateTime = "2017-01-01t00:02:58z" })},
		{"date unescaped", eventWith("lastStateUpdateDateTime", `"\u0032017-01-01T00:02:58Z"`), with(func(ev *Event) { ev.UserState.LastStateUpdateDateTime = "2017-01-01T00:02:58Z" })},
		{"GUID as received", eventWithGUID(`"0F3C9A1E-5b2d-4c7e-9a10-2f6d8b4e1c33"`), with(func(ev *Event) { ev.HardwareConfigurationID = "0F3C9A1E-5b2d-4c7e-9a10-2f6d8b4e1c33" })},
		{"escapes", eventWith("userName", `"A\"d\\a\/\u00e9\u00E9\ud83d\uDE00"`), with(func(ev *Event) { ev.UserState.UserName = "A\"d\\a/éé😀" })},
		{"escaped key", `{"hardwareConfigurationI\u0064":"` + goodGUID + `","\u0075serState":` + userStateWith("", "") + `}`, goodEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.want {
				t.Errorf("Decode =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestDecodeUserState(t *testing.T) {
	tests := []struct {
		name, body, field string
		valid             bool
	}{
		{name: "good", body: userStateWith("", ""), valid: true},
		{name: "with odata type and id", body: `{"@odata.type":"` + ODataType + `","id":"x",` + userStateWith("", "")[1:], valid: true},
		{name: "missing upn", body: userStateWith("upn", omit), field: "upn"},
		{name: "bad count", body: userStateWith("failedDeviceCount", "5.0"), field: "failedDeviceCount"},
		{name: "wrong odata type", body: userStateWith("@odata.type", `"#microsoft.graph.user"`), field: "@odata.type"},
		{name: "duplicate", body: `{"upn":"x",` + userStateWith("", "")[1:], field: "upn"},
		{name: "unknown property", body: userStateWith("x", "1"), field: ""},
		{name: "a whole event", body: good, field: ""},
		{name: "trailing data", body: userStateWith("", "") + "x", field: ""},
		{name: "array", body: `[]`, field: ""},
		{name: "over 64 KiB", body: padTo(userStateWith("", ""), MaxEventSize+1), field: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := DecodeUserState([]byte(tt.body))
			if tt.valid {
				if err != nil {
					t.Fatalf("DecodeUserState: %v", err)
				}
				if u != goodEvent.UserState {
					t.Errorf("DecodeUserState =\n%+v\nwant\n%+v", u, goodEvent.UserState)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error = %v, want a *ValidationError", err)
			}
			if ve.Field != tt.field {
				t.Errorf("Field = %q, want %q (error: %v)", ve.Field, tt.field, err)
			}
		})
	}
}

func TestValidationErrorError(t *testing.T) {
	tests := []struct {
		err  ValidationError
		want string
	}{
		{ValidationError{Field: "userState.upn", Reason: "must be 1 to 1024 characters"}, "userState.upn: must be 1 to 1024 characters"},
		{ValidationError{Reason: "not valid UTF-8 at offset 3"}, "body: not valid UTF-8 at offset 3"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// TestErrorMessages pins a few reasons that people read in dead letters.
func TestErrorMessages(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{eventWith("upn", `""`), "userState.upn: must be 1 to 1024 characters"},
		{eventWith("upn", `"a\u0085"`), "userState.upn: must not contain control characters"},
		{eventWith("failedDeviceCount", "-1"), "userState.failedDeviceCount: must be an integer from 0 to 2147483647"},
		{eventWith("failedDeviceCount", `"5"`), "userState.failedDeviceCount: must be an integer from 0 to 2147483647, not a string"},
		{eventWith("failedDeviceCount", "5.0"), "userState.failedDeviceCount: must be an integer from 0 to 2147483647, written without a fraction or exponent"},
		{eventWith("upn", omit), "userState.upn: is required"},
		{eventWith("lastStateUpdateDateTime", `"2017-02-30T00:00:00Z"`), "userState.lastStateUpdateDateTime: must be a real date and time of day"},
		{eventWith("lastStateUpdateDateTime", `"2017-02-03T00:00:00.123456789Z"`), "userState.lastStateUpdateDateTime: must have at most 7 fractional digits"},
		{eventWithGUID(`"../x"`), "hardwareConfigurationId: must be a GUID (8-4-4-4-12 hex digits)"},
		{eventWith("nickname", `"x"`), `userState: unknown property "nickname"`},
		{eventWith(strings.Repeat("é", 40), `"x"`), `userState: unknown property "` + strings.Repeat("é", 32) + `" (the first 64 of 80 bytes)`},
		{withMember(good, `"upn":"x"`), "userState.upn: duplicate property"},
		{"[]", "body: must be a JSON object, not an array"},
		{"", "body: must be a JSON object, not empty"},
		{good + "{}", fmt.Sprintf("body: unexpected data after the JSON object at offset %d", len(good))},
		{"{\"a\xff\"}", "body: not valid UTF-8 at offset 3"},
		{padTo(good, MaxEventSize+1), "body: must be at most 65536 bytes, not 65537"},
		{`{"hardwareConfigurationId" 1}`, "body: invalid JSON at offset 27: expected ':' after property name"},
	}
	for _, tt := range tests {
		_, err := Decode([]byte(tt.body))
		if err == nil || err.Error() != tt.want {
			t.Errorf("Decode(%.40q) error = %v, want %s", tt.body, err, tt.want)
		}
	}
}

func TestIsGUID(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{goodGUID, true},
		{strings.ToUpper(goodGUID), true},
		{"00000000-0000-0000-0000-000000000000", true},
		{"ffffffff-FFFF-ffff-FFFF-ffffffffffff", true},
		{"", false},
		{goodGUID[:35], false},
		{goodGUID + "0", false},
		{" " + goodGUID, false},
		{"{" + goodGUID + "}", false},
		{"0f3c9a1e_5b2d_4c7e_9a10_2f6d8b4e1c33", false},
		{"0f3c9a1e5b2d4c7e9a102f6d8b4e1c33", false},
		{"0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c3g", false},
		{"../../../../../../../../../../../..", false},
		{"0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e/../", false},
		{"0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c3\u00e9"[:36], false},
	}
	// Every position, each time with the wrong kind of character there.
	for i := range len(goodGUID) {
		for _, c := range "-gG/ \x00" {
			if (c == '-') == (goodGUID[i] == '-') {
				continue
			}
			s := goodGUID[:i] + string(c) + goodGUID[i+1:]
			tests = append(tests, struct {
				s    string
				want bool
			}{s, false})
		}
	}
	for _, tt := range tests {
		if got := IsGUID(tt.s); got != tt.want {
			t.Errorf("IsGUID(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}
