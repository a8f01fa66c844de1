package schema

import "time"

// checkDateTime returns why s is not an RFC 3339 date-time with a time zone
// and at most 7 fractional digits (what .NET's DateTimeOffset, behind Graph,
// keeps), or "" if it is one.
func checkDateTime(s []byte) string {
	const shape = "must be an RFC 3339 date-time with a time zone, like 2017-01-01T00:02:58.4418045-08:00"
	// 2006-01-02T15:04:05 then an optional fraction, then Z or ±hh:mm.
	if len(s) < len("2006-01-02T15:04:05Z") {
		return shape
	}
	year, ok1 := atoi(s[0:4])
	month, ok2 := atoi(s[5:7])
	day, ok3 := atoi(s[8:10])
	hour, ok4 := atoi(s[11:13])
	minute, ok5 := atoi(s[14:16])
	sec, ok6 := atoi(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
		s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return shape
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		switch {
		case n == 1:
			return shape
		case n-1 > 7:
			return "must have at most 7 fractional digits"
		}
		rest = rest[n:]
	}
	var zoneHour, zoneMinute int
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == len("+07:00") && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		var okH, okM bool
		zoneHour, okH = atoi(rest[1:3])
		zoneMinute, okM = atoi(rest[4:6])
		if !okH || !okM {
			return shape
		}
	default:
		return shape
	}
	// The ranges are those of time.Parse, which rejects leap seconds too.
	if month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 || zoneHour > 23 || zoneMinute > 59 {
		return "must be a real date and time of day"
	}
	return ""
}

// atoi parses a field of fixed width that must be all digits.
func atoi(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	// Day 0 of the next month is the last day of this one.
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
