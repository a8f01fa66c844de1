package main_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/internal/proctest"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// permissionsFile is what deploy/nats/nats-auth.sh makes the users' credentials from.
const permissionsFile = "../../deploy/nats/permissions"

// natsPermissions reads permissionsFile: each user's allowed publish and subscribe subjects.
func natsPermissions(t *testing.T) map[string]jwt.Permissions {
	t.Helper()
	f, err := os.Open(permissionsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	perms := map[string]jwt.Permissions{}
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
		switch fields[1] {
		case "pub":
			p.Pub.Allow.Add(fields[2])
		case "sub":
			p.Sub.Allow.Add(fields[2])
		default:
			t.Fatalf("%s:%d: %q is neither pub nor sub", permissionsFile, n, fields[1])
		}
		perms[fields[0]] = p
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"worker", "producer", "operator"} {
		if _, ok := perms[user]; !ok {
			t.Fatalf("%s: no permissions for %s", permissionsFile, user)
		}
	}
	return perms
}

// violations is a NATS server's logger that keeps the permission violations it logs.
type violations struct {
	mu    sync.Mutex
	lines []string
}

func (s *violations) record(format string, v ...any) {
	if line := fmt.Sprintf(format, v...); strings.Contains(line, "Violation") {
		s.mu.Lock()
		s.lines = append(s.lines, line)
		s.mu.Unlock()
	}
}

func (s *violations) Noticef(format string, v ...any) { s.record(format, v...) }
func (s *violations) Warnf(format string, v ...any)   { s.record(format, v...) }
func (s *violations) Fatalf(format string, v ...any)  { s.record(format, v...) }
func (s *violations) Errorf(format string, v ...any)  { s.record(format, v...) }
func (s *violations) Debugf(format string, v ...any)  { s.record(format, v...) }
func (s *violations) Tracef(format string, v ...any)  { s.record(format, v...) }

// refused runs try, which the server must refuse: it logs a violation naming subject (try
// may fail or not; a refused request just goes unanswered).
func (s *violations) refused(t *testing.T, subject string, try func(ctx context.Context) error) {
	t.Helper()
	s.take()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := try(ctx)
	want := fmt.Sprintf("Violation - Subject %q", subject)
	if v := s.take(); !slices.ContainsFunc(v, func(line string) bool { return strings.Contains(line, want) }) {
		t.Errorf("%s was not refused (%v; the server logged %q)", subject, err, v)
	}
}

func (s *violations) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.lines
	s.lines = nil
	return v
}

// newLeastPrivilegeRig is a rig on a server that enforces deploy/nats/permissions, and what
// the server logs of the requests it refuses.
func newLeastPrivilegeRig(t *testing.T) (*rig, *natstest.Server, *violations) {
	t.Helper()
	ns := natstest.Start(t, natstest.WithUsers(natsPermissions(t)))
	log := &violations{}
	ns.SetLoggerV2(log, false, false, false)
	return newRig(t, []*natstest.Server{ns}, emulator.Config{}), ns, log
}

// The NATS users of deploy/nats/permissions, on a server that enforces them: the worker runs
// end to end with its own and is never refused anything; a producer publishes events with
// its own (`hwstate publish` too) and can read neither results, dead letters nor the
// ledger; an operator lists and redrives dead letters with `hwstate dlq`.
func TestProcessNATSLeastPrivilege(t *testing.T) {
	proctest.SkipShort(t)
	r, ns, log := newLeastPrivilegeRig(t)
	creds := ns.UserCreds
	r.env = append(r.env, "HWSTATE_NATS_CREDS="+creds["worker"])

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
	_, producer := natstest.Connect(t, ns.ClientURL(), nats.UserCredentials(creds["producer"]))
	ids := proctest.IDs(n + 1)
	proctest.Publish(t, producer, ids, func(i int) []byte {
		if i == n {
			return []byte(`{"not":"an event"}`)
		}
		return sandbox.Event(sandbox.ConfigOK, i)
	})
	out := r.waitDone(ids, time.Minute)
	r.checkCreates(ids[:n])
	if len(out.DeadLetters) != 1 {
		t.Errorf("%d dead letters, want 1", len(out.DeadLetters))
	}
	if v := log.take(); len(v) > 0 {
		t.Errorf("the worker was refused what it needs:\n%s", strings.Join(v, "\n"))
	}

	t.Run("producer reads nothing", func(t *testing.T) {
		nc, js := natstest.Connect(t, ns.ClientURL(), nats.UserCredentials(creds["producer"]))
		for _, name := range []string{worker.DefaultResultStream, worker.DefaultDLQStream, worker.DefaultStream, "KV_" + worker.DefaultLedgerBucket} {
			log.refused(t, "$JS.API.STREAM.INFO."+name, func(ctx context.Context) error {
				_, err := js.Stream(ctx, name)
				return err
			})
		}
		// Even without the API: a direct get of a ledger key, or a plain subscription to
		// the result and DLQ subjects and the ledger's keys.
		direct := "$JS.API.DIRECT.GET.KV_" + worker.DefaultLedgerBucket + ".$KV." + worker.DefaultLedgerBucket + "." + proctest.LedgerKey(ids[0])
		log.refused(t, direct, func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, direct, nil)
			return err
		})
		for _, subject := range []string{worker.DefaultResultSubject, worker.DefaultDLQSubject, "$KV." + worker.DefaultLedgerBucket + ".>"} {
			log.refused(t, subject, func(ctx context.Context) error {
				if _, err := nc.SubscribeSync(subject); err != nil {
					return err
				}
				// The server has handled the subscription once it answers the flush's ping;
				// the refusal is in its log, not an error here.
				return nc.FlushWithContext(ctx)
			})
		}
	})

	t.Run("producer backfills with hwstate publish", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "events.ndjson")
		if err := os.WriteFile(file, append(sandbox.Event(sandbox.ConfigOK, n+1), '\n'), 0o600); err != nil {
			t.Fatal(err)
		}
		p := proctest.Start(t, hwstate.Path(t), []string{"HWSTATE_NATS_URL=" + ns.ClientURL(), "HWSTATE_NATS_CREDS=" + creds["producer"]}, "publish", "--file", file)
		if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("hwstate publish: exit %d, %v\n%s", code, err, p.Output())
		}
		if v := log.take(); len(v) > 0 {
			t.Errorf("the producer was refused what hwstate publish needs:\n%s", strings.Join(v, "\n"))
		}
	})

	t.Run("operator lists and redrives dead letters", func(t *testing.T) {
		for _, args := range [][]string{{"dlq", "ls"}, {"dlq", "redrive", "--reason", "invalid_event"}} {
			p := proctest.Start(t, hwstate.Path(t), []string{"HWSTATE_NATS_URL=" + ns.ClientURL(), "HWSTATE_NATS_CREDS=" + creds["operator"]}, args...)
			code, err := p.Wait(30 * time.Second)
			if err != nil || code != 0 {
				t.Fatalf("hwstate %v: exit %d, %v\n%s", args, code, err, p.Output())
			}
			if !strings.Contains(p.Output(), ids[n]) {
				t.Errorf("hwstate %v does not name %s:\n%s", args, ids[n], p.Output())
			}
			if v := log.take(); len(v) > 0 {
				t.Errorf("the operator was refused what %v needs:\n%s", args, strings.Join(v, "\n"))
			}
		}
	})

	// What the worker itself may not do: read its own input's other consumers' work, or
	// touch streams that are not its own.
	t.Run("worker stays in its lane", func(t *testing.T) {
		_, js := natstest.Connect(t, ns.ClientURL(), nats.UserCredentials(creds["worker"]))
		log.refused(t, "$JS.API.STREAM.DELETE."+worker.DefaultDLQStream, func(ctx context.Context) error {
			return js.DeleteStream(ctx, worker.DefaultDLQStream)
		})
		log.refused(t, "$JS.API.STREAM.CREATE.OTHER", func(ctx context.Context) error {
			_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OTHER", Subjects: []string{"other.>"}})
			return err
		})
	})
}

// Multi-tenant mode with the same users: the worker, with a consumer per tenant, is never
// refused anything; a producer publishes to tenants' subjects with `hwstate publish
// --tenant` and by the body's tenantId; an operator lists and redrives one tenant's dead
// letters, back to its subject.
func TestProcessNATSLeastPrivilegeTenants(t *testing.T) {
	proctest.SkipShort(t)
	r, ns, log := newLeastPrivilegeRig(t)
	creds := ns.UserCreds
	file := filepath.Join(t.TempDir(), "tenants.yaml")
	writeTenants(t, file, tenantA)
	w := r.start("HWSTATE_NATS_CREDS="+creds["worker"], "HWSTATE_TENANTS="+file)

	// A's events by --tenant and by their own tenantId; B is not listed: its event is a
	// dead letter, redriven once B is.
	events := filepath.Join(t.TempDir(), "events.ndjson")
	named := `{"tenantId":"` + tenantA + `",` + strings.TrimPrefix(string(sandbox.Event(sandbox.ConfigOK, 2)), "{")
	if err := os.WriteFile(events, []byte(string(sandbox.Event(sandbox.ConfigOK, 1))+"\n"+named+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unlisted := filepath.Join(t.TempDir(), "b.ndjson")
	if err := os.WriteFile(unlisted, append(sandbox.Event(sandbox.ConfigOK, 3), '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	tool := func(user string, args ...string) string {
		t.Helper()
		p := proctest.Start(t, hwstate.Path(t), []string{"HWSTATE_NATS_URL=" + ns.ClientURL(), "HWSTATE_NATS_CREDS=" + creds[user]}, args...)
		if code, err := p.Wait(30 * time.Second); err != nil || code != 0 {
			t.Fatalf("hwstate %v: exit %d, %v\n%s", args, code, err, p.Output())
		}
		if v := log.take(); len(v) > 0 {
			t.Errorf("the %s was refused what hwstate %v needs:\n%s", user, args, strings.Join(v, "\n"))
		}
		return p.Output()
	}
	tool("producer", "publish", "--file", events, "--tenant", tenantA)
	tool("producer", "publish", "--file", unlisted, "--tenant", tenantB)
	proctest.WaitCount(t, r.js, 3, time.Minute)
	out := proctest.ReadOutcomes(t, r.js)
	if len(out.Results) != 2 || len(out.DeadLetters) != 1 {
		t.Fatalf("results %v, dead letters %v: want A's two created, B's dead-lettered", out.Results, out.DeadLetters)
	}

	writeTenants(t, file, tenantA, tenantB)
	w.WaitOutput(t, "tenant listed or changed in the tenants file", time.Minute)
	if ls := tool("operator", "dlq", "ls", "--tenant", tenantB); !strings.Contains(ls, "1 dead letters") {
		t.Errorf("dlq ls --tenant B:\n%s", ls)
	}
	tool("operator", "dlq", "redrive", "--tenant", tenantB)
	// The redrive took the dead letter out: three outcomes again once B's event is created.
	proctest.WaitCount(t, r.js, 3, time.Minute)
	if rs := proctest.ReadOutcomes(t, r.js).Results; len(rs) != 3 {
		t.Errorf("results %v: want B's redriven event created too", rs)
	}
	if v := log.take(); len(v) > 0 {
		t.Errorf("the worker was refused what it needs:\n%s", strings.Join(v, "\n"))
	}
}
