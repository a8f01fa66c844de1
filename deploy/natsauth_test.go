package deploy_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	natsconf "github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats.go"

	"github.com/hwstate/hwstate/internal/sandbox"
)

// fakeNSC stands in for nsc (not installable here): it logs its arguments, one call a line
// with arguments separated by tabs, and writes the files it is asked for.
const fakeNSC = `#!/bin/sh
printf '%s\t' "$@" >>"$NSC_LOG"
echo >>"$NSC_LOG"
while [ $# -gt 0 ]; do
	case "$1" in
	--output-file|--config-file) echo fake >"$2"; shift ;;
	--field) echo '"AFAKEACCOUNT"' ;;
	esac
	shift
done
`

// nats-auth.sh gives each user exactly the subjects of deploy/nats/permissions (the ones
// the least-privilege process test enforces), writes each user's .creds file readable by its
// owner only, and does nothing on a second run.
func TestNATSAuthScript(t *testing.T) {
	bin, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "nsc"), []byte(fakeNSC), 0o755); err != nil {
		t.Fatal(err)
	}
	logFile := filepath.Join(t.TempDir(), "nsc.log")
	run := func() {
		cmd := exec.Command("sh", filepath.Join(root, "deploy/nats/nats-auth.sh"), out)
		cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "NSC_LOG="+logFile, "NATS_CREDS_OWNER="+strings.TrimSpace(uid(t)))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("nats-auth.sh: %v\n%s", err, b)
		}
	}
	run()

	// What the permissions file says, as nsc flags.
	want := map[string][2][]string{}
	f, err := os.Open(filepath.Join(root, "deploy/nats/permissions"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		w := want[fields[0]]
		i := map[string]int{"pub": 0, "sub": 1}[fields[1]]
		w[i] = append(w[i], fields[2])
		want[fields[0]] = w
	}

	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		args := strings.Split(strings.TrimSuffix(line, "\t"), "\t")
		if len(args) < 2 || args[0] != "add" || args[1] != "user" {
			continue
		}
		var name string
		var perms [2][]string
		for i := 2; i+1 < len(args); i++ {
			switch args[i] {
			case "--name":
				name = args[i+1]
			case "--allow-pub":
				perms[0] = strings.Split(args[i+1], ",")
			case "--allow-sub":
				perms[1] = strings.Split(args[i+1], ",")
			}
		}
		got[name] = perms
	}
	if len(got) != len(want) {
		t.Errorf("users %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	for user, w := range want {
		for i, kind := range []string{"pub", "sub"} {
			if !slices.Equal(got[user][i], w[i]) {
				t.Errorf("%s %s: nsc was given %v, the permissions file says %v", user, kind, got[user][i], w[i])
			}
		}
		fi, err := os.Stat(filepath.Join(out, user+".creds"))
		if err != nil {
			t.Errorf("%s.creds: %v", user, err)
		} else if fi.Mode().Perm() != 0o400 {
			t.Errorf("%s.creds mode %v, want 0400", user, fi.Mode().Perm())
		}
	}
	for _, file := range []string{"resolver.conf", "HWSTATE.account"} {
		if _, err := os.Stat(filepath.Join(out, file)); err != nil {
			t.Error(err)
		}
	}

	// A second run leaves what the first made.
	before := len(log)
	run()
	if after, _ := os.ReadFile(logFile); len(after) != before {
		t.Errorf("a second run called nsc again:\n%s", after[before:])
	}
}

func uid(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("id", "-u").Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// nats-tls.sh's certificates serve NATS over TLS to a client that trusts its CA, under the
// names compose uses; compose's nats.conf asks for TLS with them.
func TestComposeNATSTLS(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	dir, keys := t.TempDir(), t.TempDir()
	out, err := exec.Command("sh", filepath.Join(root, "deploy/compose/nats-tls.sh"), dir, keys).CombinedOutput()
	if err != nil {
		t.Fatalf("nats-tls.sh: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if want := []string{"ca.crt", "server.crt", "server.key"}; !slices.Equal(baseNames(files), want) {
		t.Errorf("nats-tls.sh wrote %v, want %v (the CA's key stays with the signing keys)", baseNames(files), want)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key"))
	if err != nil {
		t.Fatal(err)
	}
	opts := sandbox.JetStreamOptions("compose-tls", t.TempDir(), "127.0.0.1", 0)
	opts.TLS = true
	opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	ns, err := sandbox.StartServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Shutdown()
	port := ns.Addr().(*net.TCPAddr).Port
	for _, host := range []string{"127.0.0.1", "localhost"} {
		nc, err := nats.Connect(fmt.Sprintf("tls://%s:%d", host, port), nats.RootCAs(filepath.Join(dir, "ca.crt")))
		if err != nil {
			t.Errorf("connect to %s over TLS: %v", host, err)
			continue
		}
		nc.Close()
	}

	conf, err := os.ReadFile(filepath.Join(root, "deploy/compose/nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The include is the credentials' (not here): the rest must parse as NATS config.
	text := strings.ReplaceAll(string(conf), "include auth/resolver.conf", "")
	m, err := natsconf.Parse(text)
	if err != nil {
		t.Fatalf("nats.conf: %v", err)
	}
	if got := fmt.Sprint(m["tls"]); !strings.Contains(got, "/etc/nats/auth/server.crt") || !strings.Contains(got, "/etc/nats/auth/server.key") {
		t.Errorf("nats.conf tls %s, want nats-tls.sh's certificate and key", got)
	}
}

func baseNames(paths []string) []string {
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	slices.Sort(out)
	return out
}
