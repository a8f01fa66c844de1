package graph

import (
	"net/http"
	"testing"
	"time"
)

// BenchmarkNewResponse classifies whole answers as the client reads them: a 201 with the
// created entity, and a 429 with Retry-After and Graph's error body.
func BenchmarkNewResponse(b *testing.B) {
	created := []byte(`{"@odata.context":"http://127.0.0.1/beta/$metadata#deviceManagement/hardwareConfigurations('0f3c9a1e-5b2d-4c7e-9a10-2f6d8b4e1c33')/userRunStates/$entity","id":"5b0e0f3a-8d5e-4f3c-9a3b-0c6f7e2d1a44",` + string(testBody()[1:]))
	throttled := []byte(`{"error":{"code":"TooManyRequests","message":"Too many requests.","innerError":{"date":"2026-11-28T21:00:00","request-id":"5b0e0f3a-8d5e-4f3c-9a3b-0c6f7e2d1a44"}}}`)
	header := http.Header{"Request-Id": {"5b0e0f3a-8d5e-4f3c-9a3b-0c6f7e2d1a44"}, "Date": {"Sat, 28 Nov 2026 21:00:00 GMT"}, "Retry-After": {"2.128"}}
	now := time.Now()
	for _, c := range []struct {
		name   string
		status int
		body   []byte
		want   Class
	}{{"201", http.StatusCreated, created, Created}, {"429", http.StatusTooManyRequests, throttled, Transient}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			b.ReportAllocs()
			for b.Loop() {
				if r := newResponse(c.status, header, c.body, now); r.Class != c.want {
					b.Fatal(r.Class)
				}
			}
		})
	}
}
