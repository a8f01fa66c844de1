package proctest

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
)

// Graph is the emulator served over loopback HTTP, counting the requests it is still
// answering, so a test can wait for those a killed worker left behind before it counts
// creates.
type Graph struct {
	*emulator.Emulator
	URL string // the base URL for HWSTATE_GRAPH_BASE_URL

	inFlight atomic.Int64
}

// NewGraph serves an emulator with cfg until the test ends.
func NewGraph(t testing.TB, cfg emulator.Config) *Graph {
	t.Helper()
	g := &Graph{Emulator: emulator.New(cfg)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.inFlight.Add(1)
		defer g.inFlight.Add(-1)
		g.Emulator.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	g.URL = srv.URL + "/beta"
	return g
}

// Settle waits until no request has been in progress for a moment: the requests of a killed
// worker still reach the emulator's handler after the process is gone.
func (g *Graph) Settle(t testing.TB) {
	t.Helper()
	const quiet = 200 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	idleSince := time.Now()
	for time.Since(idleSince) < quiet {
		if g.inFlight.Load() != 0 {
			idleSince = time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the emulator is still answering %d requests", g.inFlight.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
