package proctest

import (
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
)

// Sandbox is a test's stack (internal/sandbox), closed when the test ends, that counts the
// Graph requests the emulator is still answering, so a test can wait for those a killed
// worker left behind before it counts creates.
type Sandbox struct {
	*sandbox.Sandbox
	inFlight atomic.Int64
}

// NewSandbox starts a sandbox with the emulator configured by cfg; opts add to it (a test
// server of internal/natstest: sandbox.WithNATS).
func NewSandbox(t testing.TB, cfg emulator.Config, opts ...sandbox.Option) *Sandbox {
	t.Helper()
	s := &Sandbox{}
	count := sandbox.WithHandler(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.inFlight.Add(1)
			defer s.inFlight.Add(-1)
			next.ServeHTTP(w, r)
		})
	})
	sb, err := sandbox.New(append([]sandbox.Option{sandbox.WithEmulator(cfg), count}, opts...)...)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	t.Cleanup(sb.Close)
	s.Sandbox = sb
	return s
}

// Settle waits until no request has been in progress for a moment: the requests of a killed
// worker still reach the emulator's handler after the process is gone.
func (s *Sandbox) Settle(t testing.TB) {
	t.Helper()
	const quiet = 200 * time.Millisecond
	idleSince := time.Now()
	if !Poll(10*time.Second, func() bool {
		if s.inFlight.Load() != 0 {
			idleSince = time.Now()
		}
		return time.Since(idleSince) >= quiet
	}) {
		t.Fatalf("the emulator is still answering %d requests", s.inFlight.Load())
	}
}
