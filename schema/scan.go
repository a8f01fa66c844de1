package schema

import (
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the decoder's JSON lexer: white space, punctuation, strings,
// numbers and literals, per RFC 8259. The rules of the event are in decode.go.

// literal consumes lit, a JSON literal such as null.
func (d *decoder) literal(lit string) *ValidationError {
	if len(d.data)-d.pos < len(lit) || string(d.data[d.pos:d.pos+len(lit)]) != lit {
		return d.syntaxError("invalid literal")
	}
	d.pos += len(lit)
	return nil
}

// nextKey returns the key of the next member of the object being walked
// (first: d is just past its '{'), leaving d at the member's value. At the
// closing '}' it returns more == false, leaving d after it.
func (d *decoder) nextKey(first bool) (key []byte, more bool, err *ValidationError) {
	d.skipSpace()
	if d.pos == len(d.data) {
		return nil, false, d.syntaxError("unexpected end of input in object")
	}
	switch c := d.data[d.pos]; {
	case c == '}':
		d.pos++
		return nil, false, nil
	case !first && c == ',':
		d.pos++
		d.skipSpace()
	case !first:
		return nil, false, d.syntaxError("expected ',' or '}' after object member")
	}
	if d.pos == len(d.data) || d.data[d.pos] != '"' {
		return nil, false, d.syntaxError("expected a property name")
	}
	if key, err = d.str(); err != nil {
		return nil, false, err
	}
	d.skipSpace()
	if d.pos == len(d.data) || d.data[d.pos] != ':' {
		return nil, false, d.syntaxError("expected ':' after property name")
	}
	d.pos++
	d.skipSpace()
	if d.pos == len(d.data) {
		return nil, false, d.syntaxError("unexpected end of input, expected a value")
	}
	return key, true, nil
}

// str decodes the string at d.pos. The result is only valid until the next
// call: it is a slice of the body, or of d.buf if the string had escapes.
func (d *decoder) str() ([]byte, *ValidationError) {
	start := d.pos + 1 // after '"'
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			return d.data[start:i], nil
		case c == '\\':
			return d.unescape(start, i)
		case c < 0x20:
			d.pos = i
			return nil, d.syntaxError("control character in string")
		}
	}
	d.pos = len(d.data)
	return nil, d.syntaxError("unterminated string")
}

// unescape is str for a string from start whose first escape is at i.
func (d *decoder) unescape(start, i int) ([]byte, *ValidationError) {
	b := append(d.buf[:0], d.data[start:i]...)
	for i < len(d.data) {
		c := d.data[i]
		switch {
		case c == '"':
			d.pos = i + 1
			d.buf = b
			return b, nil
		case c < 0x20:
			d.pos = i
			return nil, d.syntaxError("control character in string")
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 == len(d.data) {
			d.pos = i
			return nil, d.syntaxError("unterminated string")
		}
		switch e := d.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hex4(d.data[i+2:])
			if !ok {
				d.pos = i
				return nil, d.syntaxError(`invalid \u escape`)
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by a low one makes a character;
				// encoding/json would turn anything else into U+FFFD silently.
				var low rune
				if j := i + 6; j+1 < len(d.data) && d.data[j] == '\\' && d.data[j+1] == 'u' {
					low, _ = hex4(d.data[j+2:])
				}
				if r = utf16.DecodeRune(r, low); r == utf8.RuneError {
					d.pos = i
					return nil, d.syntaxError("unpaired surrogate in \\u escape")
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
			i += 4
		default:
			d.pos = i
			return nil, d.syntaxError("invalid escape in string")
		}
		i += 2
	}
	d.pos = len(d.data)
	return nil, d.syntaxError("unterminated string")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		var v byte
		switch {
		case isDigit(c):
			v = c - '0'
		case 'a' <= c && c <= 'f':
			v = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			v = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func (d *decoder) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// A number is what d.number read: enough of a JSON number to judge an Int32.
type number struct {
	neg     bool  // written with a minus sign
	integer bool  // written without a fraction or exponent
	abs     int64 // the integer part's value, or more than 1<<31-1 when it exceeds that
}

// number consumes the JSON number at d.pos, which begins with '-' or a digit.
func (d *decoder) number() (number, *ValidationError) {
	n := number{integer: true}
	i := d.pos
	if d.data[i] == '-' {
		n.neg = true
		i++
	}
	if i == len(d.data) || !isDigit(d.data[i]) {
		d.pos = i
		return n, d.syntaxError("invalid number")
	}
	if d.data[i] == '0' {
		i++ // JSON allows no leading zeros: a digit after this one is a syntax error, found by the caller
	} else {
		for ; i < len(d.data) && isDigit(d.data[i]); i++ {
			if n.abs <= 1<<31-1 { // past that it is out of range anyway; stop before int64 overflows
				n.abs = n.abs*10 + int64(d.data[i]-'0')
			}
		}
	}
	if i < len(d.data) && d.data[i] == '.' {
		n.integer = false
		if i++; i == len(d.data) || !isDigit(d.data[i]) {
			d.pos = i
			return n, d.syntaxError("invalid number")
		}
		for i < len(d.data) && isDigit(d.data[i]) {
			i++
		}
	}
	if i < len(d.data) && (d.data[i] == 'e' || d.data[i] == 'E') {
		n.integer = false
		if i++; i < len(d.data) && (d.data[i] == '+' || d.data[i] == '-') {
			i++
		}
		if i == len(d.data) || !isDigit(d.data[i]) {
			d.pos = i
			return n, d.syntaxError("invalid number")
		}
		for i < len(d.data) && isDigit(d.data[i]) {
			i++
		}
	}
	d.pos = i
	return n, nil
}

func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return -1
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
