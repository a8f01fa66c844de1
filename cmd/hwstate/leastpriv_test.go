package main_test

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/worker"
)

// permissionsFile is what deploy/nats/nats-auth.sh makes the users' credentials from.
const permissionsFile = "../../deploy/nats/permissions"

// natsPermissions reads permissionsFile: each user's allowed publish and subscribe subjects.
func natsPermissions(t *testing.T) map[string]*jwt.Permissions {
	t.Helper()
	f, err := os.Open(permissionsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	perms := map[string]*jwt.Permissions{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			t.Fatalf("%s:%d: want <user> <pub|sub> <subject>, got %q", permissionsFile, n, line)
		}
		p := perms[fields[0]]
		if p == nil {
			p = &jwt.Permissions{}
			perms[fields[0]] = p
		}
		switch fields[1] {
		case "pub":
			p.Pub.Allow.Add(fields[2])
		case "sub":
			p.Sub.Allow.Add(fields[2])
		default:
			t.Fatalf("%s:%d: %q is neither pub nor sub", permissionsFile, n, fields[1])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"worker", "producer", "operator"} {
		if perms[user] == nil {
			t.Fatalf("%s: no permissions for %s", permissionsFile, user)
		}
	}
	return perms
}

// authServer is a JetStream server in operator mode with one account, HWSTATE, whose users
// have the permissions given, plus "admin" with none (the test's own view of the streams).
// It records every permission violation it logs.
type authServer struct {
	url   string
	creds map[string]string // user -> .creds file

	mu         sync.Mutex
	violations []string
}

func startAuthServer(t *testing.T, perms map[string]*jwt.Permissions) *authServer {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	opKey, err := nkeys.CreateOperator()
	must(err)
	opPub, err := opKey.PublicKey()
	must(err)
	resolver := &server.MemAccResolver{}
	account := func(name string, jetStream bool) (nkeys.KeyPair, string) {
		kp, err := nkeys.CreateAccount()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewAccountClaims(pub)
		claims.Name = name
		if jetStream {
			claims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
		}
		token, err := claims.Encode(opKey)
		must(err)
		must(resolver.Store(pub, token))
		return kp, pub
	}
	_, sysPub := account("SYS", false)
	accKey, _ := account("HWSTATE", true)
	op := jwt.NewOperatorClaims(opPub)
	op.SystemAccount = sysPub
	opJWT, err := op.Encode(opKey)
	must(err)
	op, err = jwt.DecodeOperatorClaims(opJWT)
	must(err)

	s := &authServer{creds: map[string]string{}}
	dir := t.TempDir()
	users := maps.Clone(perms)
	users["admin"] = &jwt.Permissions{}
	for name, p := range users {
		kp, err := nkeys.CreateUser()
		must(err)
		pub, err := kp.PublicKey()
		must(err)
		claims := jwt.NewUserClaims(pub)
		claims.Name = name
		claims.Permissions = *p
		token, err := claims.Encode(accKey)
		must(err)
		seed, err := kp.Seed()
		must(err)
		creds, err := jwt.FormatUserConfig(token, seed)
		must(err)
		s.creds[name] = filepath.Join(dir, name+".creds")
		must(os.WriteFile(s.creds[name], creds, 0o600))
	}

	ns, err := server.NewServer(&server.Options{
		Host:             "127.0.0.1",
		Port:             -1,
		JetStream:        true,
		StoreDir:         t.TempDir(),
		NoSigs:           true,
		TrustedOperators: []*jwt.OperatorClaims{op},
		AccountResolver:  resolver,
		SystemAccount:    sysPub,
	})
	must(err)
	ns.SetLoggerV2(s, false, false, false)
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server not ready")
	}
	s.url = ns.ClientURL()
	return s
}

// The server's logger: permission violations are what the test is after.
func (s *authServer) record(format string, v ...any) {
	if line := fmt.Sprintf(format, v...); strings.Contains(line, "Violation") {
		s.mu.Lock()
		s.violations = append(s.violations, line)
		s.mu.Unlock()
	}
}
func (s *authServer) Noticef(format string, v ...any) { s.record(format, v...) }
func (s *authServer) Warnf(format string, v ...any)   { s.record(format, v...) }
func (s *authServer) Fatalf(format string, v ...any)  { s.record(format, v...) }
func (s *authServer) Errorf(format string, v ...any)  { s.record(format, v...) }
func (s *authServer) Debugf(format string, v ...any)  { s.record(format, v...) }
func (s *authServer) Tracef(format string, v ...any)  { s.record(format, v...) }

// refused runs try, which the server must refuse: it logs a violation naming subject (try
// may fail or not; a refused request just goes unanswered).
func (s *authServer) refused(t *testing.T, subject string, try func(ctx context.Context) error) {
	t.Helper()
	s.takeViolations()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := try(ctx)
	want := fmt.Sprintf("Violation - Subject %q", subject)
	if v := s.takeViolations(); !slices.ContainsFunc(v, func(line string) bool { return strings.Contains(line, want) }) {
		t.Errorf("%s was not refused (%v; the server logged %q)", subject, err, v)
	}
}

func (s *authServer) takeViolations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.violations
	s.violations = nil
	return v
}

// The NATS users of deploy/nats/permissions, on a server that enforces them: the worker runs
// end to end with its own and is never refused anything; a producer publishes events with
// its own and can read neither results, dead letters nor the ledger; an operator lists
// dead letters with `hwstate dlq ls`.
func TestProcessNATSLeastPrivilege(t *testing.T) {
	skipShort(t)
	ns := startAuthServer(t, natsPermissions(t))
	_, admin := natstest.Connect(t, ns.url, nats.UserCredentials(ns.creds["admin"]))
	g := proctest.NewGraph(t, emulator.Config{Token: testToken})
	r := &rig{t: t, js: admin, graph: g, env: []string{
		"HWSTATE_NATS_URL=" + ns.url,
		"HWSTATE_NATS_CREDS=" + ns.creds["worker"],
		"HWSTATE_GRAPH_BASE_URL=" + g.URL,
		"HWSTATE_GRAPH_TOKEN=" + testToken,
		"HWSTATE_HTTP_ADDR=127.0.0.1:0",
		"HWSTATE_RATE=2000",
		"HWSTATE_BURST=50",
		"HWSTATE_ACK_WAIT=5s",
	}}
	// The second start finds the streams, consumer and bucket the first one made.
	first := r.start()
	if err := first.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := first.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after SIGTERM: exit %d, %v", code, err)
	}
	r.start()

	// The producer's events, one of them invalid (a dead letter for the operator).
	const n = 200
	_, producer := natstest.Connect(t, ns.url, nats.UserCredentials(ns.creds["producer"]))
	ids := proctest.IDs(n + 1)
	proctest.Publish(t, producer, ids, func(i int) []byte {
		if i == n {
			return []byte(`{"not":"an event"}`)
		}
		return proctest.Event(proctest.ConfigOK, i)
	})
	out := r.waitDone(ids, time.Minute)
	r.checkCreates(ids[:n], nil)
	if len(out.DeadLetters) != 1 {
		t.Errorf("%d dead letters, want 1", len(out.DeadLetters))
	}
	if v := ns.takeViolations(); len(v) > 0 {
		t.Errorf("the worker was refused what it needs:\n%s", strings.Join(v, "\n"))
	}

	t.Run("producer reads nothing", func(t *testing.T) {
		nc, js := natstest.Connect(t, ns.url, nats.UserCredentials(ns.creds["producer"]))
		for _, name := range []string{worker.DefaultResultStream, worker.DefaultDLQStream, worker.DefaultStream, "KV_" + worker.DefaultLedgerBucket} {
			ns.refused(t, "$JS.API.STREAM.INFO."+name, func(ctx context.Context) error {
				_, err := js.Stream(ctx, name)
				return err
			})
		}
		// Even without the API: a direct get of a ledger key, or a plain subscription to
		// the result and DLQ subjects and the ledger's keys.
		direct := "$JS.API.DIRECT.GET.KV_" + worker.DefaultLedgerBucket + ".$KV." + worker.DefaultLedgerBucket + "." + proctest.LedgerKey(ids[0])
		ns.refused(t, direct, func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, direct, nil)
			return err
		})
		for _, subject := range []string{worker.DefaultResultSubject, worker.DefaultDLQSubject, "$KV." + worker.DefaultLedgerBucket + ".>"} {
			ns.refused(t, subject, func(ctx context.Context) error {
				if _, err := nc.SubscribeSync(subject); err != nil {
					return err
				}
				// The server has handled the subscription once it answers the flush's ping;
				// the refusal is in its log, not an error here.
				return nc.FlushWithContext(ctx)
			})
		}
	})

	t.Run("operator lists and redrives dead letters", func(t *testing.T) {
		for _, args := range [][]string{{"dlq", "ls"}, {"dlq", "redrive", "--reason", "invalid_event"}} {
			p := proctest.Start(t, hwstate.Path(t), []string{"HWSTATE_NATS_URL=" + ns.url, "HWSTATE_NATS_CREDS=" + ns.creds["operator"]}, args...)
			code, err := p.Wait(30 * time.Second)
			if err != nil || code != 0 {
				t.Fatalf("hwstate %v: exit %d, %v\n%s", args, code, err, p.Output())
			}
			if !strings.Contains(p.Output(), ids[n]) {
				t.Errorf("hwstate %v does not name %s:\n%s", args, ids[n], p.Output())
			}
			if v := ns.takeViolations(); len(v) > 0 {
				t.Errorf("the operator was refused what %v needs:\n%s", args, strings.Join(v, "\n"))
			}
		}
	})

	// What the worker itself may not do: read its own input's other consumers' work, or
	// touch streams that are not its own.
	t.Run("worker stays in its lane", func(t *testing.T) {
		_, js := natstest.Connect(t, ns.url, nats.UserCredentials(ns.creds["worker"]))
		ns.refused(t, "$JS.API.STREAM.DELETE."+worker.DefaultDLQStream, func(ctx context.Context) error {
			return js.DeleteStream(ctx, worker.DefaultDLQStream)
		})
		ns.refused(t, "$JS.API.STREAM.CREATE.OTHER", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
			return err
		})
	})
}
