// Package proctest runs the hwstate binary as a child process in tests, so that crashes
// (SIGKILL), shutdowns (SIGTERM) and replicas are real processes, and gives tests the
// sandbox (internal/sandbox) with its publish, count and read-back failing the test
// instead of returning errors: what the worker recorded, its results, dead letters and
// ledger.
package proctest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
)

// Binary is the hwstate binary, built on first use into its directory. The zero value is
// not usable: make one with NewBinary.
type Binary struct {
	dir string

	once sync.Once
	path string
	err  error
	out  []byte
}

// Main runs a package's tests with *b a Binary that builds into a temporary directory,
// removed once they are over, and exits with their code. For the package's TestMain:
//
//	func TestMain(m *testing.M) { proctest.Main(m, &hwstate) }
func Main(m *testing.M, b **Binary) {
	dir, err := os.MkdirTemp("", "hwstate-test-")
	if err != nil {
		panic(err)
	}
	*b = NewBinary(dir)
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// NewBinary returns a Binary that builds into dir (which the caller removes).
func NewBinary(dir string) *Binary { return &Binary{dir: dir} }

// Path builds the binary once and returns where it is; a build failure fails t.
func (b *Binary) Path(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		b.path = filepath.Join(b.dir, "hwstate")
		args := []string{"build", "-o", b.path}
		// Built like the test itself: under -race the children report races too, and reuse
		// the race-built packages already in the build cache.
		if raceEnabled() {
			args = append(args, "-race")
		}
		// go test puts its own go first in PATH.
		b.out, b.err = exec.Command("go", append(args, "github.com/hwstate/hwstate/cmd/hwstate")...).CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("go build: %v\n%s", b.err, b.out)
	}
	return b.path
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
