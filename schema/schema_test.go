package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// The schemas' ids: the multi-tenant one refers to the other.
const (
	schemaBase    = "https://hwstate.dev/schema/"
	schemaID      = schemaBase + "event.schema.json"
	multiTenantID = schemaBase + "event.multitenant.schema.json"
)

// compileSchema compiles the schema with the given id, or its subschema at
// the JSON pointer ptr ("" for the whole), with every schema of the package
// loaded for its references.
func compileSchema(t *testing.T, id, ptr string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, file := range []string{"event.schema.json", "event.multitenant.schema.json"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if err := c.AddResource(schemaBase+file, doc); err != nil {
			t.Fatal(err)
		}
	}
	sch, err := c.Compile(id + "#" + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", id, err)
	}
	return sch
}

// schemaAccepts reports whether body is one JSON value that sch accepts.
// What is not JSON at all no schema accepts.
func schemaAccepts(sch *jsonschema.Schema, body []byte) (bool, error) {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	err = sch.Validate(inst)
	return err == nil, err
}

func TestSchemaHeader(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"event.schema.json", []string{
			`"$id": "` + schemaID + `"`,
			`"const": "` + ODataType + `"`,
			`"maximum": 2147483647`,
			`"maxLength": 1024`,
		}},
		{"event.multitenant.schema.json", []string{
			`"$id": "` + multiTenantID + `"`,
			`"$ref": "event.schema.json#/$defs/userState"`,
			`"tenantId": {`,
		}},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range append(tt.want, `"$schema": "https://json-schema.org/draft/2020-12/schema"`) {
			if !bytes.Contains(b, []byte(want)) {
				t.Errorf("%s lacks %s", tt.file, want)
			}
		}
	}
}

// TestSchemaAgrees checks that each schema and its decoder judge every body
// of eventCases and tenantCases alike, except those marked decoderOnly, which
// the schema must accept: were it to reject one, the mark would hide a rule
// it can express. Single-tenant mode judges every tenant case invalid.
func TestSchemaAgrees(t *testing.T) {
	singleTenant := make([]eventCase, 0, len(eventCases)+len(tenantCases))
	singleTenant = append(singleTenant, eventCases...)
	for _, tc := range tenantCases {
		singleTenant = append(singleTenant, eventCase{name: tc.name, body: tc.body})
	}
	modes := []struct {
		id     string
		decode func([]byte) (Event, error)
		cases  []eventCase
	}{
		{schemaID, Decode, singleTenant},
		{multiTenantID, DecodeMultiTenant, append(append([]eventCase(nil), eventCases...), tenantCases...)},
	}
	for _, m := range modes {
		sch := compileSchema(t, m.id, "")
		for _, tc := range m.cases {
			t.Run(path.Base(m.id)+"/"+tc.name, func(t *testing.T) {
				accepted, why := schemaAccepts(sch, []byte(tc.body))
				_, err := m.decode([]byte(tc.body))
				switch {
				case tc.decoderOnly && !accepted:
					t.Errorf("marked decoderOnly, but the schema rejects it: %v", why)
				case tc.decoderOnly && err == nil:
					t.Errorf("marked decoderOnly, but the decoder accepts it")
				case !tc.decoderOnly && accepted != (err == nil):
					t.Errorf("schema accepts: %v (%v); decoder: %v", accepted, why, err)
				}
			})
		}
	}
}

// TestSchemaGraphBody checks that $defs/userState, the schema of a Graph
// request body, accepts what AppendGraphBody makes.
func TestSchemaGraphBody(t *testing.T) {
	sch := compileSchema(t, schemaID, "/$defs/userState")
	eachValidEvent(t, func(name string, ev Event) {
		body := ev.UserState.AppendGraphBody(nil)
		if ok, why := schemaAccepts(sch, body); !ok {
			t.Errorf("%s: schema rejects %s: %v", name, body, why)
		}
	})
	// And rejects, like DecodeUserState, a whole event.
	if ok, _ := schemaAccepts(sch, []byte(good)); ok {
		t.Errorf("$defs/userState accepts an event: %s", strings.TrimSpace(good))
	}
}

// TestDateTimeAgrees checks the decoder's date-time rule on grids of dates and
// of times against an independent judge: the schema's pattern for the shape,
// then time.Parse for the calendar (after upper-casing, as time.Parse only
// knows 'T' and 'Z').
func TestDateTimeAgrees(t *testing.T) {
	b, err := os.ReadFile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Defs struct {
			UserState struct {
				Properties struct {
					LastStateUpdateDateTime struct{ Pattern string }
				}
			}
		} `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	shape := regexp.MustCompile(doc.Defs.UserState.Properties.LastStateUpdateDateTime.Pattern)
	check := func(s string) {
		_, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
		want := shape.MatchString(s) && err == nil
		if got := checkDateTime([]byte(s)) == ""; got != want {
			t.Errorf("%q: decoder accepts: %v, want %v", s, got, want)
		}
	}
	n := 0
	for _, year := range []string{"0000", "0001", "1900", "2000", "2023", "2024", "2100", "9999", "999", "20240"} {
		for month := range 14 {
			for day := range 33 {
				check(fmt.Sprintf("%s-%02d-%02dT12:00:00Z", year, month, day))
				n++
			}
		}
	}
	for _, hour := range []string{"00", "23", "24", "99", "1"} {
		for _, minute := range []string{"00", "59", "60"} {
			for _, sec := range []string{"00", "59", "60", "5x"} {
				for _, frac := range []string{"", ".", ".0", ".1234567", ".12345678", ",1"} {
					for _, zone := range []string{"Z", "z", "", "+00:00", "-00:00", "-08:00", "+23:59", "+24:00", "-00:60", "+0800", "+08", "Z0", "UTC", "A", "x"} {
						for _, sep := range []string{"T", "t", " "} {
							check("2024-02-29" + sep + hour + ":" + minute + ":" + sec + frac + zone)
							n++
						}
					}
				}
			}
		}
	}
	for _, s := range []string{"", "2024", "2024-02-29", "2024-02-29T", "2024-02-29T00:00:00.", "+2024-02-29T00:00:00Z", "2024-2-29T00:00:00Z", "2024-02-29T00:00:00.1234567+08:00x"} {
		check(s)
		n++
	}
	t.Logf("%d date-times checked", n)
}
