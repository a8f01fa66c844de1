package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// workerChild is `hwstate run` (or `publish`) started by the bench as a child process, so
// that the CPU and memory it uses are measured apart from JetStream's and the emulator's.
type workerChild struct {
	cmd      *exec.Cmd
	httpAddr string
	exited   chan struct{}
	waitErr  error
}

// startWorkerChild runs this executable's `run` command with the scenario's settings as
// HWSTATE_* variables.
func startWorkerChild(sc benchScenario, env *benchEnv, stderr io.Writer) (*workerChild, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	settings := map[string]string{
		"NATS_URL":       env.natsURL,
		"GRAPH_BASE_URL": env.graphURL,
		"GRAPH_TOKEN":    benchToken,
		"RATE":           strconv.FormatFloat(sc.rate, 'f', -1, 64),
		"BURST":          strconv.Itoa(sc.burst),
		"CONCURRENCY":    strconv.Itoa(sc.concurrency),
		"ACK_WAIT":       sc.ackWait.String(),
		"GRAPH_BATCH":    strconv.Itoa(sc.graphBatch),
		"HTTP_ADDR":      addr,
		"LOG_LEVEL":      "warn",
	}
	if sc.fetchBatch > 0 {
		settings["FETCH_BATCH"] = strconv.Itoa(sc.fetchBatch)
	}
	c, err := startChild([]string{"run"}, settings, stderr, stderr)
	if err != nil {
		return nil, err
	}
	c.httpAddr = addr
	return c, nil
}

// startChild runs this executable with args and the given HWSTATE_* variables (names
// without the prefix); any HWSTATE_* of the bench's own environment is left out.
func startChild(args []string, settings map[string]string, stdout, stderr io.Writer) (*workerChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the hwstate executable: %w", err)
	}
	cmd := exec.Command(exe, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HWSTATE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range settings {
		cmd.Env = append(cmd.Env, "HWSTATE_"+k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting hwstate %s: %w", args[0], err)
	}
	c := &workerChild{cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// freeLoopbackAddr finds a free port for the child's /metrics. Another process could take it
// before the child listens; the child then fails to start and the bench says so.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitReady waits until the child answers /readyz with 200 (bound to its consumer).
func (c *workerChild) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		resp, err := http.Get("http://" + c.httpAddr + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("the worker exited before it was ready: %v", c.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the worker was not ready within %s", limit)
		}
	}
}

// procUsage is the child's CPU time and memory as the kernel reports them now. The peak is
// VmHWM, never getrusage's ru_maxrss: os/exec starts a child with vfork, which shares the
// bench's memory until exec, and ru_maxrss keeps that high-water mark across exec, so it
// would report the bench's own size (JetStream, the emulator) as the worker's.
type procUsage struct {
	cpu         time.Duration
	rss, hwmKiB int64 // resident set now and its peak, KiB
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat, fixed at 100 by the Linux ABI.
const userHZ = 100

func (c *workerChild) usage() (procUsage, error) { return usageOf(c.cmd.Process.Pid) }

// usageOf reads a process's usage from /proc.
func usageOf(pid int) (procUsage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procUsage{}, err
	}
	// The command name (field 2) may hold spaces; the fields after its ')' are fixed.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	if len(fields) < 13 {
		return procUsage{}, errors.New("short /proc stat")
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	u := procUsage{cpu: time.Duration(utime+stime) * time.Second / userHZ}
	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procUsage{}, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), ":")
		kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			u.rss = kib
		case "VmHWM":
			u.hwmKiB = kib
		}
	}
	return u, sc.Err()
}

// metrics reads the child's /metrics into series name (with labels) -> value.
func (c *workerChild) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		if line == "" || line[0] == '#' || i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// stop asks the child to shut down (SIGTERM) and kills it if it takes longer than limit.
func (c *workerChild) stop(limit time.Duration) error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(limit):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("the worker did not stop within %s after SIGTERM", limit)
	}
	if !c.cmd.ProcessState.Success() {
		return fmt.Errorf("the worker exited with %v", c.waitErr)
	}
	return nil
}
