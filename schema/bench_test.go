package schema

import "testing"

func BenchmarkDecode(b *testing.B) {
	body := []byte(good)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendGraphBody(b *testing.B) {
	u := goodEvent.UserState
	buf := u.AppendGraphBody(nil)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = u.AppendGraphBody(buf[:0])
	}
}
