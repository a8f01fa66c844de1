package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

const schemaID = "https://hwstate.dev/schema/event.schema.json"

// compileSchema compiles event.schema.json, or the subschema at the JSON
// pointer ptr ("" for the event).
func compileSchema(t *testing.T, ptr string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("event.schema.json: %v", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaID, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(schemaID + "#" + ptr)
	if err != nil {
		t.Fatalf("compile event.schema.json: %v", err)
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
	b, err := os.ReadFile("event.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"$schema": "https://json-schema.org/draft/2020-12/schema"`,
		`"$id": "` + schemaID + `"`,
		`"const": "` + ODataType + `"`,
		`"maximum": 2147483647`,
		`"maxLength": 1024`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("event.schema.json lacks %s", want)
		}
	}
}

// TestSchemaAgrees checks that event.schema.json and Decode judge every body
// of eventCases alike, except those marked decoderOnly, which the schema must
// accept: were it to reject one, the mark would hide a rule it can express.
func TestSchemaAgrees(t *testing.T) {
	sch := compileSchema(t, "")
	for _, tc := range eventCases {
		t.Run(tc.name, func(t *testing.T) {
			accepted, why := schemaAccepts(sch, []byte(tc.body))
			_, err := Decode([]byte(tc.body))
			switch {
			case tc.decoderOnly && !accepted:
				t.Errorf("marked decoderOnly, but the schema rejects it: %v", why)
			case tc.decoderOnly && err == nil:
				t.Errorf("marked decoderOnly, but Decode accepts it")
			case !tc.decoderOnly && accepted != (err == nil):
				t.Errorf("schema accepts: %v (%v); Decode: %v", accepted, why, err)
			}
		})
	}
}

// TestSchemaGraphBody checks that $defs/userState, the schema of a Graph
// request body, accepts what AppendGraphBody makes.
func TestSchemaGraphBody(t *testing.T) {
	sch := compileSchema(t, "/$defs/userState")
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
