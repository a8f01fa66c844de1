package schema

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestAppendGraphBody(t *testing.T) {
	u := goodEvent.UserState
	got := string(u.AppendGraphBody([]byte("prefix:")))
	const want = `prefix:{"@odata.type":"#microsoft.graph.hardwareConfigurationUserState",` +
		`"upn":"ada@contoso.com","userEmail":"ada@contoso.com","userName":"Ada Lovelace",` +
		`"lastStateUpdateDateTime":"2017-01-01T00:02:58.4418045-08:00",` +
		`"successfulDeviceCount":5,"failedDeviceCount":1,"pendingDeviceCount":2,` +
		`"errorDeviceCount":0,"notApplicableDeviceCount":8,"unknownDeviceCount":2}`
	if got != want {
		t.Errorf("AppendGraphBody =\n%s\nwant\n%s", got, want)
	}
}

// TestAppendGraphBodyDecodes checks the body of every good event of
// eventCases with encoding/json and DecodeUserState.
func TestAppendGraphBodyDecodes(t *testing.T) {
	eachValidEvent(t, func(_ string, ev Event) { checkGraphBody(t, ev.UserState) })
}

// eachValidEvent calls fn with every good event of eventCases, decoded.
func eachValidEvent(t *testing.T, fn func(name string, ev Event)) {
	t.Helper()
	for _, tc := range eventCases {
		if !tc.valid {
			continue
		}
		ev, err := Decode([]byte(tc.body))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		fn(tc.name, ev)
	}
}

// checkGraphBody checks that u's Graph body is JSON with @odata.type first,
// no id and integer counts, and that it decodes back to u.
func checkGraphBody(t *testing.T, u UserState) {
	t.Helper()
	body := u.AppendGraphBody(nil)
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var values map[string]any
	if err := dec.Decode(&values); err != nil || dec.InputOffset() != int64(len(body)) {
		t.Fatalf("body is not one JSON object: %v\n%s", err, body)
	}
	if !bytes.HasPrefix(body, []byte(`{"@odata.type":"`+ODataType+`",`)) {
		t.Errorf("@odata.type is not first or not %s: %s", ODataType, body)
	}
	if _, ok := values["id"]; ok {
		t.Errorf("body has an id: %s", body)
	}
	for _, k := range counts {
		n, ok := values[k].(json.Number)
		if _, err := n.Int64(); !ok || err != nil || bytes.ContainsAny([]byte(n), ".eE") {
			t.Errorf("%s is %v, not an integer: %s", k, values[k], body)
		}
	}
	got, err := DecodeUserState(body)
	if err != nil {
		t.Fatalf("DecodeUserState(%s): %v", body, err)
	}
	if got != u {
		t.Errorf("DecodeUserState(AppendGraphBody(u)) =\n%+v\nwant\n%+v", got, u)
	}
}

// TestAppendGraphBodyEscapes checks that whatever a UserState holds, even
// what Decode never returns, its body is JSON holding the same text.
func TestAppendGraphBodyEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`a"b\c/d`, `a"b\c/d`},
		{"\x00\x01\n\r\t\x1f\x7f", "\x00\x01\n\r\t\x1f\x7f"},
		{"é😀\u2028\u0085", "é😀\u2028\u0085"},
		{"bad \xff utf-8 \xe2\x82", "bad \ufffd utf-8 \ufffd\ufffd"},
		{"</script>&", "</script>&"},
	}
	for _, tt := range tests {
		u := UserState{UPN: tt.in, UserEmail: tt.in, UserName: tt.in, LastStateUpdateDateTime: tt.in}
		body := u.AppendGraphBody(nil)
		var got struct {
			UPN, UserEmail, UserName, LastStateUpdateDateTime string
		}
		if err := json.Unmarshal(body, &got); err != nil {
			t.Errorf("%q: body is not JSON: %v\n%s", tt.in, err, body)
			continue
		}
		for _, s := range []string{got.UPN, got.UserEmail, got.UserName, got.LastStateUpdateDateTime} {
			if s != tt.want {
				t.Errorf("%q: body holds %q, want %q", tt.in, s, tt.want)
			}
		}
	}
}

func TestAppendGraphBodyCounts(t *testing.T) {
	u := UserState{SuccessfulDeviceCount: 2147483647, FailedDeviceCount: -2147483648}
	body := string(u.AppendGraphBody(nil))
	for _, want := range []string{`"successfulDeviceCount":2147483647,`, `"failedDeviceCount":-2147483648,`, `"unknownDeviceCount":0}`} {
		if !bytes.Contains([]byte(body), []byte(want)) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
}
