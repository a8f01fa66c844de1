package schema

import "testing"

func BenchmarkDecode(b *testing.B) {
	benchmarkDecode(b, Decode, good)
}

func BenchmarkDecodeMultiTenant(b *testing.B) {
	benchmarkDecode(b, DecodeMultiTenant, withTenant(`"`+goodTenant+`"`))
}

func benchmarkDecode(b *testing.B, decode func([]byte) (Event, error), body string) {
	data := []byte(body)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decode(data); err != nil {
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
