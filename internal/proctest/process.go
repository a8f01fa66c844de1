package proctest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Process is a running hwstate child with its stdout and stderr captured together.
type Process struct {
	cmd  *exec.Cmd
	out  Buffer
	done chan struct{} // closed when the process has exited
}

// Start runs bin with args and only the environment given (plus PATH), so nothing from the
// test's own environment leaks in. The process is killed when the test ends, and a data race
// it reported fails the test.
func Start(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = p.cmd.Wait() // the state is read from cmd.ProcessState
		close(p.done)
	}()
	t.Cleanup(func() {
		p.Kill()
		out := p.Output()
		if strings.Contains(out, "WARNING: DATA RACE") {
			t.Errorf("hwstate (pid %d) reported a data race:\n%s", p.cmd.Process.Pid, out)
		} else if t.Failed() {
			t.Logf("hwstate (pid %d) output, last 8 KiB:\n%s", p.cmd.Process.Pid, out[max(0, len(out)-8<<10):])
		}
	})
	return p
}

// SkipShort skips a test under -short: one that runs the whole pipeline, or the binary, for
// seconds.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the whole pipeline for seconds: skipped with -short")
	}
}

// Kill sends SIGKILL, as a crash or an OOM kill would, and waits for the process to be gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill() // fails only when it has already exited
	<-p.done
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// ErrStillRunning is Wait's answer when the process outlives the time given.
var ErrStillRunning = errors.New("process still running")

// Wait waits up to limit for the process to exit and returns its exit code (-1 when a signal
// ended it).
func (p *Process) Wait(limit time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(limit):
		return 0, ErrStillRunning
	}
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Output is everything the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// WaitOutput waits until the output holds s; it fails t if the process exits or limit
// passes first.
func (p *Process) WaitOutput(t testing.TB, s string, limit time.Duration) {
	t.Helper()
	p.WaitOutputCount(t, s, 1, limit)
}

// WaitOutputCount waits until the output holds s at least n times; it fails t if the
// process exits or limit passes first.
func (p *Process) WaitOutputCount(t testing.TB, s string, n int, limit time.Duration) {
	t.Helper()
	exited := false
	held := Poll(limit, func() bool {
		if strings.Count(p.Output(), s) >= n {
			return true
		}
		exited = p.Exited()
		return exited
	})
	switch {
	case exited:
		t.Fatalf("hwstate exited (%v) before writing %q %d times:\n%s", p.cmd.ProcessState, s, n, p.Output())
	case !held:
		t.Fatalf("hwstate did not write %q %d times in %s:\n%s", s, n, limit, p.Output())
	}
}

// Buffer is a bytes.Buffer that goroutines may write while a test reads it: a process's
// output copiers, or a command's loggers.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
