package backfill

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hwstate/hwstate/schema"
)

func TestLineReader(t *testing.T) {
	long := strings.Repeat("x", maxLine+10)
	type line struct {
		text    string
		tooLong bool
	}
	for _, tc := range []struct {
		name, input string
		want        []line
	}{
		{"empty", "", nil},
		{"no final newline", "a\nb", []line{{"a", false}, {"b", false}}},
		{"CRLF", "a\r\nb\r\n", []line{{"a", false}, {"b", false}}},
		{"blank lines kept", "\n\na\n", []line{{"", false}, {"", false}, {"a", false}}},
		{"too long in the middle", "a\n" + long + "\nb\n", []line{{"a", false}, {"", true}, {"b", false}}},
		{"too long at the end", "a\n" + long, []line{{"a", false}, {"", true}}},
		{"longest event with CRLF", strings.Repeat("y", schema.MaxEventSize) + "\r\n", []line{{strings.Repeat("y", schema.MaxEventSize), false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newLineReader(strings.NewReader(tc.input))
			var got []line
			for {
				text, tooLong, err := r.next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if tooLong {
					text = nil
				}
				got = append(got, line{string(text), tooLong})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("lines %+v, want %+v", got, tc.want)
			}
			if r.n != len(tc.want) || r.read != int64(len(tc.input)) {
				t.Errorf("counted %d lines and %d bytes, want %d and %d", r.n, r.read, len(tc.want), len(tc.input))
			}
		})
	}
}

func TestProgressLines(t *testing.T) {
	s := snapshot{lines: 1000, ok: 990, invalid: 10, published: 900, duplicates: 90, bytes: 250, elapsed: 2 * time.Second}
	for _, tc := range []struct {
		name       string
		size       int64
		validating bool
		want       string
	}{
		{"file", 1000, false, "progress: 1000 lines (25%, about 6s left), 500 lines/s: 900 published, 90 duplicates, 10 invalid\n"},
		{"stdin", -1, false, "progress: 1000 lines, 500 lines/s: 900 published, 90 duplicates, 10 invalid\n"},
		{"validating", 1000, true, "progress: 1000 lines (25%, about 6s left), 500 lines/s: 990 valid, 10 invalid\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			p := newProgress(&b, tc.size, tc.validating)
			p.show(s)
			if b.String() != tc.want {
				t.Errorf("got  %q\nwant %q", b.String(), tc.want)
			}
		})
	}
}
