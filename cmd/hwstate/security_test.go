package main_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/entratest"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// configRejected is a configuration the emulator refuses with 400, for dead letters that
// carry Graph's answer.
const configRejected = "00000000-0000-4000-8000-000000000400"

// canary is a distinctive secret-like value, new each run.
func canary(t *testing.T, kind string) string {
	t.Helper()
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "canary-" + kind + "-" + hex.EncodeToString(b)
}

// publishMixed publishes valid events, invalid ones and ones Graph rejects, so that every
// path (result, invalid_event, graph_rejected) writes something.
func (r *rig) publishMixed(valid, invalid, rejected int) []string {
	r.t.Helper()
	ids := proctest.IDs(valid + invalid + rejected)
	proctest.Publish(r.t, r.js, ids, func(i int) []byte {
		switch {
		case i < valid:
			return sandbox.Event(sandbox.ConfigOK, i)
		case i < valid+invalid:
			return []byte(`{"hardwareConfigurationId":"not-a-guid"`)
		default:
			return sandbox.Event(configRejected, i)
		}
	})
	return ids
}

// everythingWritten is all the worker wrote that a person or a pipeline can read: its output,
// every result and dead letter with its headers, and every ledger record.
func (r *rig) everythingWritten(procs ...*proctest.Process) map[string]string {
	r.t.Helper()
	out := map[string]string{}
	for i, p := range procs {
		out[fmt.Sprintf("process %d output", i+1)] = p.Output()
	}
	for _, stream := range []string{worker.DefaultResultStream, worker.DefaultDLQStream} {
		var b strings.Builder
		proctest.EachMessage(r.t, r.js, stream, func(m jetstream.Msg) {
			fmt.Fprintf(&b, "%v %s\n", m.Headers(), m.Data())
		})
		out[stream] = b.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv, err := r.js.KeyValue(ctx, worker.DefaultLedgerBucket)
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	for key := range proctest.LedgerKeys(r.t, r.js) {
		e, err := kv.Get(ctx, key)
		if err != nil {
			r.t.Fatalf("ledger %s: %v", key, err)
		}
		fmt.Fprintf(&b, "%s %s\n", key, e.Value())
	}
	out[worker.DefaultLedgerBucket] = b.String()
	return out
}

// checkAbsent fails if the secret, or a line of it long enough to be telling (a key's base64),
// appears in anything written.
func checkAbsent(t *testing.T, secret string, written map[string]string) {
	t.Helper()
	for where, text := range written {
		for line := range strings.Lines(secret) {
			line = strings.TrimSpace(line)
			if len(line) >= 12 && !strings.HasPrefix(line, "-----") && line != secret && strings.Contains(text, line) {
				t.Errorf("a line of the secret, %q, appears in %s", line, where)
			}
		}
		if strings.Contains(text, secret) {
			t.Errorf("the secret %q appears in %s", secret, where)
		}
		t.Logf("%s: %d bytes checked", where, len(text))
	}
}

// secretFile is a file holding content, for a _FILE setting.
func secretFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The Graph token never appears in what the worker writes, given as the value or in a file
// (HWSTATE_GRAPH_TOKEN_FILE): not while Graph refuses it (401, logged as the worker's
// credentials), not once it works, not in dead letters.
func TestProcessTokenNeverWritten(t *testing.T) {
	proctest.SkipShort(t)
	for _, tc := range []struct {
		name string
		env  func(t *testing.T, token string) []string
	}{
		{"value", func(_ *testing.T, token string) []string { return []string{"HWSTATE_GRAPH_TOKEN=" + token} }},
		{"file", func(t *testing.T, token string) []string {
			return []string{"HWSTATE_GRAPH_TOKEN=", "HWSTATE_GRAPH_TOKEN_FILE=" + secretFile(t, token+"\n")}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			token := canary(t, "token")
			r := newServerRig(t, emulator.Config{
				Token:     "not-" + token, // refused until the test puts the worker's token in force
				RejectIDs: []string{configRejected},
			})
			// One create per request, so that the 401s the breaker counts are requests Graph saw.
			p := r.start(append(tc.env(t, token), "HWSTATE_LOG_LEVEL=debug", "HWSTATE_GRAPH_BATCH=1")...)
			ids := r.publishMixed(200, 20, 20)
			// Until the breaker opens on them (10 in a row) or a little after.
			p.WaitOutput(t, "DeviceManagementConfiguration.ReadWrite.All", 30*time.Second)
			proctest.WaitFor(t, 30*time.Second, "10 requests answered 401", func() bool { return r.graph.Stats().Unauthorized >= 10 })
			cfg := r.graph.Config()
			cfg.Token = token
			r.graph.SetConfig(cfg)
			out := r.waitDone(ids, time.Minute)
			if len(out.Results) != 200 || len(out.DeadLetters) != 40 {
				t.Errorf("%d results and %d dead letters, want 200 and 40", len(out.Results), len(out.DeadLetters))
			}
			checkAbsent(t, token, r.everythingWritten(p))
			t.Logf("%+v", r.graph.Stats())
		})
	}
}

// Client credentials never appear in what the worker writes, though signing in fails over
// and over: a client secret, or a certificate's private key behind openssl's "Bag
// Attributes" preamble, each as the value or in a file (the _FILE forms). The sign-in
// authority is reached through HTTPS_PROXY, a loopback proxy that refuses every tunnel, so
// nothing leaves the machine. The cases run side by side: each mostly waits.
func TestProcessClientCredentialsNeverWritten(t *testing.T) {
	proctest.SkipShort(t)
	certificate, key := entratest.Certificate(t)
	for _, tc := range []struct {
		name   string
		secret string // what must not appear
		env    func(t *testing.T, secret string) []string
	}{
		{"client secret", canary(t, "secret"), func(_ *testing.T, secret string) []string {
			return []string{"HWSTATE_CLIENT_SECRET=" + secret}
		}},
		{"client secret in a file", canary(t, "secret"), func(t *testing.T, secret string) []string {
			return []string{"HWSTATE_CLIENT_SECRET_FILE=" + secretFile(t, secret+"\r\n")}
		}},
		{"certificate behind a preamble", key, func(*testing.T, string) []string {
			return []string{"HWSTATE_CLIENT_CERT=" + certificate}
		}},
		{"certificate behind a preamble in a file", key, func(t *testing.T, _ string) []string {
			return []string{"HWSTATE_CLIENT_CERT_FILE=" + secretFile(t, certificate)}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy, tunnels := refusingProxy(t)
			r := newServerRig(t, emulator.Config{})
			p := r.start(append(tc.env(t, tc.secret),
				"HWSTATE_GRAPH_TOKEN=", // client credentials instead
				"HWSTATE_TENANT_ID=00000000-0000-4000-8000-00000000000a",
				"HWSTATE_CLIENT_ID=00000000-0000-4000-8000-00000000000b",
				"HWSTATE_LOG_LEVEL=debug",
				"HTTPS_PROXY="+proxy,
			)...)
			ids := r.publishMixed(50, 10, 0)
			start := time.Now()
			proctest.WaitCount(t, r.js, 10, 30*time.Second) // the invalid ones need no Graph
			proctest.WaitFor(t, 30*time.Second, "2 sign-in attempts at the proxy", func() bool { return tunnels.Load() >= 2 })
			signIn := time.Since(start)
			term := time.Now()
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The sign-in in progress is waited for (azidentity retries it for up to about 20 s);
			// the creates queued behind it share its failure instead of each signing in again,
			// which took minutes. 30 s is Kubernetes' default grace period.
			if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
				t.Errorf("after SIGTERM: exit code %d, %v; want 0 within 30s", code, err)
			}
			stopped := time.Since(term)
			if n := r.graph.Stats().Requests; n != 0 {
				t.Errorf("%d requests reached Graph without a token", n)
			}
			out := proctest.ReadOutcomes(t, r.js)
			if len(out.Results) != 0 || len(out.DeadLetters) != 10 {
				t.Errorf("%d results and %d dead letters, want only the 10 invalid events dead-lettered", len(out.Results), len(out.DeadLetters))
			}
			if !strings.Contains(strings.ToLower(p.Output()), "sign") {
				t.Error("no sign-in failure in the output: the test did not exercise the error path")
			}
			checkAbsent(t, tc.secret, r.everythingWritten(p))
			t.Logf("%d sign-in attempts refused at the proxy in %s; %d events waiting; exited %s after SIGTERM",
				tunnels.Load(), signIn.Round(time.Millisecond), len(ids)-10, stopped.Round(time.Millisecond))
		})
	}
}

// A password in the NATS URL never appears in what the worker writes while it works with it.
func TestProcessNATSPasswordNeverWritten(t *testing.T) {
	proctest.SkipShort(t)
	password := canary(t, "nats")
	ns := natstest.Start(t, natstest.WithPassword("hw", password))
	r := newRig(t, []*natstest.Server{ns}, emulator.Config{RejectIDs: []string{configRejected}})
	p := r.start("HWSTATE_NATS_URL="+withUserInfo(ns.ClientURL(), "hw:"+password), "HWSTATE_LOG_LEVEL=debug")
	ids := r.publishMixed(100, 10, 10)
	r.waitDone(ids, time.Minute)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
		t.Errorf("after SIGTERM: exit code %d, %v; want 0", code, err)
	}
	checkAbsent(t, password, r.everythingWritten(p))
}

// withUserInfo is a nats:// URL with a user (and password) in it.
func withUserInfo(url, userInfo string) string {
	return strings.Replace(url, "://", "://"+userInfo+"@", 1)
}

// A worker that cannot start says why without the secret that made it fail: a NATS password
// or token refused or never tried (nothing listens), a certificate's key behind a preamble
// but no certificate, a key without -----BEGIN taken for a file name, a client secret given
// twice.
func TestProcessSecretsNeverWrittenAtStart(t *testing.T) {
	proctest.SkipShort(t)
	secret := canary(t, "start")
	certificate, key := entratest.Certificate(t)
	keyOnly := certificate[:strings.Index(certificate, key)+len(key)]
	bareKey := strings.Join(strings.Split(strings.TrimSpace(key), "\n")[1:strings.Count(key, "\n")-1], "\n")
	ns := natstest.Start(t, natstest.WithPassword("hw", "right"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nothing := "nats://" + ln.Addr().String()
	_ = ln.Close()
	token := []string{"HWSTATE_GRAPH_TOKEN=x"}
	credentials := []string{"HWSTATE_TENANT_ID=00000000-0000-4000-8000-00000000000a", "HWSTATE_CLIENT_ID=00000000-0000-4000-8000-00000000000b"}
	for _, tc := range []struct {
		name, secret, want string
		env                []string
	}{
		{"NATS password, nothing listening", secret, "hw:xxxxx@", append(token, "HWSTATE_NATS_URL="+withUserInfo(nothing, "hw:"+secret))},
		{"NATS password refused", secret, "Authorization Violation", append(token, "HWSTATE_NATS_URL="+withUserInfo(ns.ClientURL(), "hw:"+secret))},
		{"NATS token refused, in a list", secret, "nats://xxxxx@", append(token, "HWSTATE_NATS_URL="+nothing+","+withUserInfo(ns.ClientURL(), secret))},
		{"NATS password in a URL that does not parse", secret, "does not parse", append(token, "HWSTATE_NATS_URL="+withUserInfo(ns.ClientURL(), "hw:"+secret+"/x"))},
		{"key behind a preamble, no certificate", key, "certificate", append(credentials, "HWSTATE_CLIENT_CERT="+keyOnly)},
		{"key without -----BEGIN", key, "holds no PEM", append(credentials, "HWSTATE_CLIENT_CERT="+bareKey)},
		{"key without -----BEGIN, in a file", key, "holds no PEM", append(credentials, "HWSTATE_CLIENT_CERT_FILE="+secretFile(t, bareKey))},
		{"client secret as the value and in a file", secret, "both set", append(credentials, "HWSTATE_CLIENT_SECRET="+secret, "HWSTATE_CLIENT_SECRET_FILE="+secretFile(t, secret))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := proctest.Start(t, hwstate.Path(t), append(tc.env, "HWSTATE_HTTP_ADDR=127.0.0.1:0", "HWSTATE_GRAPH_BASE_URL=http://127.0.0.1:1"), "run")
			if code, err := p.Wait(30 * time.Second); err != nil || code != 1 {
				t.Errorf("exit code %d, %v; want 1", code, err)
			}
			if !strings.Contains(p.Output(), tc.want) {
				t.Errorf("output %q does not say %q", p.Output(), tc.want)
			}
			checkAbsent(t, tc.secret, map[string]string{"output": p.Output()})
		})
	}
}

// refusingProxy is an HTTP proxy on loopback that answers every CONNECT 403; tunnels counts
// them.
func refusingProxy(t *testing.T) (url string, tunnels *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	tunnels = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				if req.Method == http.MethodConnect {
					tunnels.Add(1)
				}
				var resp bytes.Buffer
				resp.WriteString("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
				_, _ = c.Write(resp.Bytes())
			}()
		}
	}()
	return "http://" + ln.Addr().String(), tunnels
}

// The worker reaches NATS over TLS (tls:// URL, HWSTATE_NATS_CA) with a .creds file
// (HWSTATE_NATS_CREDS) against a server in operator mode that refuses anything else.
func TestProcessNATSTLSAndCreds(t *testing.T) {
	proctest.SkipShort(t)
	ns := natstest.Start(t, natstest.WithTLS(), natstest.WithCreds())
	if !strings.HasPrefix(ns.ClientURL(), "tls://") {
		t.Fatalf("URL %s", ns.ClientURL())
	}
	r := newRig(t, []*natstest.Server{ns}, emulator.Config{})
	r.start("HWSTATE_NATS_CA="+ns.CAFile, "HWSTATE_NATS_CREDS="+ns.CredsFile)
	ids := r.publish(500)
	r.waitDone(ids, time.Minute)
	r.checkCreates(ids)
}
