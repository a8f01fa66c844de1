package schema

import (
	"strings"
	"testing"
)

const goodTenant = "4f1c2d3e-0000-4000-8000-000000000001"

// withTenant is the good event with the raw member `"tenantId":value` first.
func withTenant(value string) string {
	return `{"tenantId":` + value + `,` + good[1:]
}

// tenantCases are the bodies of multi-tenant mode (CONTRACT section 6): the
// good event with a tenantId, as DecodeMultiTenant must judge them. Decode,
// for which tenantId is an unknown property, rejects them all.
var tenantCases = []eventCase{
	{name: "good tenantId", body: withTenant(`"` + goodTenant + `"`), valid: true},
	{name: "good tenantId upper-case", body: withTenant(`"` + strings.ToUpper(goodTenant) + `"`), valid: true},
	{name: "good tenantId escaped", body: withTenant(`"\u0034f1c2d3e-0000-4000-8000-000000000001"`), valid: true},
	{name: "good tenantId last", body: good[:len(good)-1] + `,"tenantId":"` + goodTenant + `"}`, valid: true},
	{name: "good tenantId escaped key", body: `{"tenant\u0049d":"` + goodTenant + `",` + good[1:], valid: true},

	{name: "tenantId empty", body: withTenant(`""`), field: "tenantId"},
	{name: "tenantId null", body: withTenant(`null`), field: "tenantId"},
	{name: "tenantId number", body: withTenant(`1`), field: "tenantId"},
	{name: "tenantId object", body: withTenant(`{}`), field: "tenantId"},
	{name: "tenantId array", body: withTenant(`["` + goodTenant + `"]`), field: "tenantId"},
	{name: "tenantId a domain name", body: withTenant(`"contoso.onmicrosoft.com"`), field: "tenantId"},
	{name: "tenantId in braces", body: withTenant(`"{` + goodTenant + `}"`), field: "tenantId"},
	{name: "tenantId without dashes", body: withTenant(`"` + strings.ReplaceAll(goodTenant, "-", "") + `"`), field: "tenantId"},
	{name: "tenantId too long", body: withTenant(`"` + goodTenant + `0"`), field: "tenantId"},
	{name: "tenantId with a subject wildcard", body: withTenant(`"` + goodTenant[:35] + `>"`), field: "tenantId"},
	{name: "tenantId with trailing newline", body: withTenant(`"` + goodTenant + `\n"`), field: "tenantId"},
	{name: "tenantId in other case", body: `{"TenantId":"` + goodTenant + `",` + good[1:]},
	{name: "tenantId misspelt", body: `{"tenantID":"` + goodTenant + `",` + good[1:]},
	{name: "duplicate tenantId", body: withTenant(`"` + goodTenant + `","tenantId":"` + goodTenant + `"`), field: "tenantId", decoderOnly: true},
	{name: "duplicate tenantId escaped", body: withTenant(`"` + goodTenant + `","tenant\u0049d":"` + goodTenant + `"`), field: "tenantId", decoderOnly: true},
	{name: "tenantId with an invalid userState", body: `{"tenantId":"` + goodTenant + `",` + eventWith("upn", `""`)[1:], field: "userState.upn"},
}

func TestDecodeMultiTenant(t *testing.T) {
	for _, tc := range tenantCases {
		t.Run(tc.name, func(t *testing.T) {
			checkCase(t, "DecodeMultiTenant", DecodeMultiTenant, tc)
			// Single-tenant mode knows no tenantId: it is an unknown property
			// of the body, whatever its value.
			checkCase(t, "Decode", Decode, eventCase{name: tc.name, body: tc.body})
		})
	}
}

func TestDecodeMultiTenantValues(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"absent", good, ""},
		{"as received", withTenant(`"4F1C2D3E-0000-4000-8000-00000000000a"`), "4F1C2D3E-0000-4000-8000-00000000000a"},
		{"unescaped", withTenant(`"\u0034f1c2d3e-0000-4000-8000-000000000001"`), goodTenant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := DecodeMultiTenant([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			want := goodEvent
			want.TenantID = tt.want
			if ev != want {
				t.Errorf("DecodeMultiTenant =\n%+v\nwant\n%+v", ev, want)
			}
		})
	}
}

// TestTenantErrorMessages pins the reasons that people read in dead letters.
func TestTenantErrorMessages(t *testing.T) {
	tests := []struct {
		decode func([]byte) (Event, error)
		body   string
		want   string
	}{
		{DecodeMultiTenant, withTenant(`"contoso"`), "tenantId: must be a GUID (8-4-4-4-12 hex digits)"},
		{DecodeMultiTenant, withTenant(`null`), "tenantId: must be a GUID string, not null"},
		{DecodeMultiTenant, withTenant(`"` + goodTenant + `","tenantId":"` + goodTenant + `"`), "tenantId: duplicate property"},
		{Decode, withTenant(`"` + goodTenant + `"`), `body: unknown property "tenantId"`},
	}
	for _, tt := range tests {
		_, err := tt.decode([]byte(tt.body))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%.60q: error = %v, want %s", tt.body, err, tt.want)
		}
	}
}
