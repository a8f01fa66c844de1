package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/procfs"

	"github.com/hwstate/hwstate/internal/sandbox"
)

// child is `hwstate run` (or `publish`) started by the bench as a child process, so that
// the CPU and memory it uses are measured apart from JetStream's and the emulator's.
type child struct {
	cmd      *exec.Cmd
	httpAddr string
	exited   chan struct{}
	waitErr  error
	// stopping says the bench asked it to stop: its exit is no failure of the run.
	stopping atomic.Bool
}

// startWorker runs `hwstate run` with the scenario's settings as HWSTATE_* variables.
func startWorker(sc scenario, sb *sandbox.Sandbox, cfg Config) (*child, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	settings := map[string]string{
		"NATS_URL":       sb.NATSURL,
		"GRAPH_BASE_URL": sb.GraphURL,
		"GRAPH_TOKEN":    sb.Token,
		"RATE":           strconv.FormatFloat(sc.rate, 'f', -1, 64),
		"BURST":          strconv.Itoa(sc.burst),
		"CONCURRENCY":    strconv.Itoa(sc.concurrency),
		"ACK_WAIT":       sc.ackWait.String(),
		"GRAPH_BATCH":    sc.graphBatchSetting(),
		"HTTP_ADDR":      addr,
		"LOG_LEVEL":      "warn",
	}
	if sc.fetchBatch > 0 {
		settings["FETCH_BATCH"] = strconv.Itoa(sc.fetchBatch)
	}
	if sc.tenantsFile != "" {
		settings["TENANTS"] = sc.tenantsFile
	}
	c, err := startChild(cfg.Executable, []string{"run"}, settings, cfg.Progress, cfg.Progress)
	if err != nil {
		return nil, err
	}
	c.httpAddr = addr
	return c, nil
}

// startReadyWorker runs `hwstate run` (startWorker) and waits, at most limit, until it is
// ready; the caller stops it, or kills it when returning early.
func startReadyWorker(ctx context.Context, sc scenario, sb *sandbox.Sandbox, cfg Config, limit time.Duration) (*child, error) {
	c, err := startWorker(sc, sb, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, limit); err != nil {
		c.kill()
		return nil, err
	}
	return c, nil
}

// kill ends the child at once, unless it has exited already.
func (c *child) kill() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// startChild runs the executable with args and the given HWSTATE_* variables (names
// without the prefix); any HWSTATE_* of the bench's own environment is left out.
func startChild(exe string, args []string, settings map[string]string, stdout, stderr io.Writer) (*child, error) {
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
	c := &child{cmd: cmd, exited: make(chan struct{})}
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
func (c *child) waitReady(ctx context.Context, limit time.Duration) error {
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

// procUsage is a process's CPU time and memory as the kernel reports them now. The peak is
// VmHWM, never getrusage's ru_maxrss: os/exec starts a child with vfork, which shares the
// bench's memory until exec, and ru_maxrss keeps that high-water mark across exec, so it
// would report the bench's own size (JetStream, the emulator) as the worker's.
type procUsage struct {
	cpu         time.Duration
	rss, hwmKiB int64 // resident set now and its peak, KiB
}

func (c *child) usage() (procUsage, error) { return usageOf(c.cmd.Process.Pid) }

// usageOf reads a process's usage from /proc.
func usageOf(pid int) (procUsage, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procUsage{}, err
	}
	stat, err := p.Stat()
	if err != nil {
		return procUsage{}, err
	}
	status, err := p.NewStatus()
	if err != nil {
		return procUsage{}, err
	}
	return procUsage{
		cpu:    time.Duration(stat.CPUTime() * float64(time.Second)),
		rss:    int64(status.VmRSS / 1024),
		hwmKiB: int64(status.VmHWM / 1024),
	}, nil
}

// rateLimit reads the worker's current rate limit (hwstate_rate_limit) from its /metrics.
func (c *child) rateLimit() (float64, error) {
	resp, err := http.Get("http://" + c.httpAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, fmt.Errorf("the worker's /metrics: %w", err)
	}
	f := families["hwstate_rate_limit"]
	if f == nil || len(f.GetMetric()) == 0 {
		return 0, fmt.Errorf("the worker's /metrics has no hwstate_rate_limit")
	}
	return f.GetMetric()[0].GetGauge().GetValue(), nil
}

// stop asks the child to shut down (SIGTERM) and kills it if it takes longer than limit.
func (c *child) stop(limit time.Duration) error { return stopChildren([]*child{c}, limit) }

// waitExit waits for the child to exit after it was asked to (SIGTERM), and kills it if it
// takes longer than limit.
func (c *child) waitExit(limit time.Duration) error {
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

// workers are the `hwstate run` children of a scenario, one or several replicas on the same
// consumer, measured together: their CPU added up (with that of workers stopped before, in
// a restart), the largest peak RSS of any one of them, and the sum of their rate limits
// (what the tenant may see).
type workers struct {
	children []*child
	retired  time.Duration // the CPU of workers stopped before
	exited   chan struct{} // closed when any child exits unasked
}

// startWorkers starts n children with the scenario's settings.
func startWorkers(sc scenario, sb *sandbox.Sandbox, cfg Config, n int) (*workers, error) {
	ws := &workers{}
	return ws, ws.start(sc, sb, cfg, n)
}

// start starts n children, after those stopped before, if any.
func (ws *workers) start(sc scenario, sb *sandbox.Sandbox, cfg Config, n int) error {
	exited := make(chan struct{})
	ws.exited = exited
	var once sync.Once
	for range n {
		c, err := startWorker(sc, sb, cfg)
		if err != nil {
			ws.kill()
			return err
		}
		ws.children = append(ws.children, c)
		go func() {
			<-c.exited
			if !c.stopping.Load() {
				once.Do(func() { close(exited) })
			}
		}()
	}
	return nil
}

// waitReady waits until every child is bound to its consumer.
func (ws *workers) waitReady(ctx context.Context, limit time.Duration) error {
	for _, c := range ws.children {
		if err := c.waitReady(ctx, limit); err != nil {
			return err
		}
	}
	return nil
}

// exitErr is why the child that exited did.
func (ws *workers) exitErr() error {
	for _, c := range ws.children {
		select {
		case <-c.exited:
			return c.waitErr
		default:
		}
	}
	return nil
}

func (ws *workers) usage() (procUsage, error) {
	u := procUsage{cpu: ws.retired}
	for _, c := range ws.children {
		cu, err := c.usage()
		if err != nil {
			return u, err
		}
		u.cpu += cu.cpu
		u.rss += cu.rss
		u.hwmKiB = max(u.hwmKiB, cu.hwmKiB)
	}
	return u, nil
}

func (ws *workers) rateLimit() (float64, error) {
	sum := 0.0
	for _, c := range ws.children {
		l, err := c.rateLimit()
		if err != nil {
			return 0, err
		}
		sum += l
	}
	return sum, nil
}

// stop stops every child (SIGTERM, all at once) and keeps their CPU time.
func (ws *workers) stop(limit time.Duration) error {
	u, err := ws.usage()
	if err != nil {
		return err
	}
	if err := stopChildren(ws.children, limit); err != nil {
		return err
	}
	ws.retired, ws.children = u.cpu, nil
	return nil
}

// stopOne stops the last child started, as a replica scaled away, and keeps its CPU time.
func (ws *workers) stopOne(limit time.Duration) error {
	last := ws.children[len(ws.children)-1]
	u, err := last.usage()
	if err != nil {
		return err
	}
	if err := stopChildren([]*child{last}, limit); err != nil {
		return err
	}
	ws.retired += u.cpu
	ws.children = ws.children[:len(ws.children)-1]
	return nil
}

// stopChildren asks every child to stop (SIGTERM, all at once) and waits for each.
func stopChildren(children []*child, limit time.Duration) error {
	for _, c := range children {
		c.stopping.Store(true)
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range children {
		if err := c.waitExit(limit); err != nil {
			return err
		}
	}
	return nil
}

// kill ends the children still running, for a run that failed.
func (ws *workers) kill() {
	for _, c := range ws.children {
		c.kill()
	}
}
