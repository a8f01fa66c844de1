package main

import (
	"flag"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hwstate/hwstate/internal/entratest"
	"github.com/hwstate/hwstate/internal/natstest"
)

// parseSettings is `hwstate run`'s settings from args (and the environment).
func parseSettings(t *testing.T, args ...string) (*settings, error) {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s settings
	s.register(fs)
	return &s, s.parse(fs, args)
}

// writeFile writes content to a new file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkNotIn fails if text holds the secret, or any line of it long enough to be telling
// (a PEM's base64 lines).
func checkNotIn(t *testing.T, text, secret string) {
	t.Helper()
	for line := range strings.Lines(secret) {
		line = strings.TrimSpace(line)
		if len(line) >= 12 && !strings.HasPrefix(line, "-----") && strings.Contains(text, line) {
			t.Errorf("%q reveals the secret's line %q", text, line)
		}
	}
	if strings.Contains(text, secret) {
		t.Errorf("%q reveals the secret", text)
	}
}

// Every secret setting has a _FILE form, as a flag and as a variable: the file's content with
// its trailing newline dropped. Giving both forms, or a file that cannot be read or is empty,
// is an error naming the settings (and the path), never the value or the content.
func TestSecretFileSettings(t *testing.T) {
	const value = "canary-value-5e1f90"
	dir := t.TempDir()
	lf := writeFile(t, dir, "lf", value+"\n")
	crlf := writeFile(t, dir, "crlf", value+"\r\n")
	bare := writeFile(t, dir, "bare", value)
	empty := writeFile(t, dir, "empty", "\n")
	for _, name := range []string{"client-secret", "client-cert", "graph-token"} {
		flagName, fileFlag := "--"+name, "--"+name+"-file"
		env, fileEnv := envName(name), envName(name)+"_FILE"
		for _, tc := range []struct {
			name    string
			args    []string
			env     map[string]string
			wantErr []string // empty: the value is read
		}{
			{"file ending in \\n", []string{fileFlag, lf}, nil, nil},
			{"file ending in \\r\\n", []string{fileFlag, crlf}, nil, nil},
			{"file without a newline", []string{fileFlag, bare}, nil, nil},
			{"variable", nil, map[string]string{fileEnv: lf}, nil},
			{"flag wins over the variable", []string{fileFlag, lf}, map[string]string{fileEnv: empty}, nil},
			{"both flags", []string{flagName, value, fileFlag, lf}, nil, []string{flagName + " (" + env + ") and " + fileFlag + " (" + fileEnv + ")"}},
			{"both variables", nil, map[string]string{env: value, fileEnv: lf}, []string{"both set"}},
			{"missing file", []string{fileFlag, lf + ".gone"}, nil, []string{fileFlag + " (" + fileEnv + ")", lf + ".gone", "no such file"}},
			{"a directory", []string{fileFlag, dir}, nil, []string{fileFlag, dir, "is a directory"}},
			{"empty file", []string{fileFlag, empty}, nil, []string{fileFlag, empty + " is empty"}},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				for k, v := range tc.env {
					t.Setenv(k, v)
				}
				s, err := parseSettings(t, tc.args...)
				if len(tc.wantErr) == 0 {
					if err != nil {
						t.Fatal(err)
					}
					got := map[string]string{"client-secret": s.ClientSecret.value, "client-cert": s.ClientCert.value, "graph-token": s.GraphToken.value}[name]
					if got != value {
						t.Errorf("value %q, want %q", got, value)
					}
					return
				}
				if err == nil {
					t.Fatalf("no error, want one saying %q", tc.wantErr)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not say %q", err, want)
					}
				}
				checkNotIn(t, err.Error(), value)
			})
		}
	}
}

// A certificate is anything holding -----BEGIN, whatever comes before it (openssl's "Bag
// Attributes"), as a value or in a file; an error about a certificate never shows the value
// or the file's content, not even a key that does not look like PEM.
func TestClientCertNeverEchoed(t *testing.T) {
	text, key := entratest.Certificate(t)
	keyOnly := text[:strings.Index(text, key)+len(key)]
	// The key's base64 without its BEGIN and END lines: taken for a file name.
	bareKey := strings.Join(strings.Split(strings.TrimSpace(key), "\n")[1:strings.Count(key, "\n")-1], "\n")
	dir := t.TempDir()
	creds := []string{"--tenant-id", "t", "--client-id", "c"}
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string // empty: no error
	}{
		{"PEM behind a preamble", []string{"--client-cert", text}, ""},
		{"PEM behind a preamble, in a file", []string{"--client-cert-file", writeFile(t, dir, "app.pem", text)}, ""},
		{"PEM file named", []string{"--client-cert", writeFile(t, dir, "named.pem", text)}, ""},
		{"key without its certificate", []string{"--client-cert", keyOnly}, "certificate"},
		{"key without -----BEGIN", []string{"--client-cert", bareKey}, "--client-cert (HWSTATE_CLIENT_CERT) holds no PEM"},
		{"key without -----BEGIN, in a file", []string{"--client-cert-file", writeFile(t, dir, "bare", bareKey)}, "--client-cert-file (HWSTATE_CLIENT_CERT_FILE) (the content of " + dir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := parseSettings(t, append(creds, tc.args...)...)
			if err == nil {
				_, err = s.graphClient()
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tc.wantErr)
			}
			checkNotIn(t, err.Error(), key)
		})
	}
}

func TestRedactURLs(t *testing.T) {
	for _, tc := range []struct {
		urls, shown string
		secrets     []string
	}{
		{"nats://127.0.0.1:4222", "nats://127.0.0.1:4222", nil},
		{"nats://hw:pw@127.0.0.1:4222", "nats://hw:xxxxx@127.0.0.1:4222", []string{"pw"}},
		{"tls://hw:pw@a:4222,nats://b:4222,nats://tok@c:4222", "tls://hw:xxxxx@a:4222,nats://b:4222,nats://xxxxx@c:4222", []string{"pw", "tok"}},
		{"hw:p@ss:w@host:4222", "hw:xxxxx@host:4222", []string{"p@ss:w"}},
		{"nats://hw:pa ss/x@host", "nats://hw:xxxxx@host", []string{"pa ss/x"}},
		{"nats://hw:pa,ss@host:4222", "(a URL that does not parse),xxxxx@host:4222", []string{"hw:pa", "ss"}},
	} {
		shown, secrets := redactURLs(tc.urls)
		if shown != tc.shown || strings.Join(secrets, " ") != strings.Join(tc.secrets, " ") {
			t.Errorf("redactURLs(%q) = %q, %q; want %q, %q", tc.urls, shown, secrets, tc.shown, tc.secrets)
		}
	}
}

// A NATS password or token in the URL is never in a connection error: not when the URL does
// not parse, not when nothing listens, not when the server refuses it. Nor are NATS
// credentials given in place of a .creds file's name.
func TestConnectErrorsHideSecrets(t *testing.T) {
	const password = "canary-nats-pw-83d1"
	ns := natstest.Start(t, natstest.WithPassword("hw", "right"))
	refusing := strings.TrimPrefix(ns.ClientURL(), "nats://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	_ = ln.Close()
	for _, tc := range []struct {
		name string
		conn natsFlags
	}{
		{"does not parse", natsFlags{URL: "nats://hw:" + password + " x/y@" + closed}},
		{"a comma in the password", natsFlags{URL: "nats://hw:" + password + "," + password + "@" + closed}},
		{"nothing listens", natsFlags{URL: "nats://hw:" + password + "@" + closed}},
		{"nothing listens, in a list, over TLS", natsFlags{URL: "nats://" + closed + ",tls://hw:" + password + "@" + closed}},
		{"refused password", natsFlags{URL: "nats://hw:" + password + "@" + refusing}},
		{"refused token", natsFlags{URL: "nats://" + password + "@" + refusing}},
		{"credentials instead of a file name", natsFlags{URL: ns.ClientURL(), Creds: "-----BEGIN NATS USER JWT-----\n" + password + "\n------END NATS USER JWT------\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, _, err := tc.conn.connect(tc.conn.URL)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			t.Log(err)
			checkNotIn(t, err.Error(), password)
		})
	}
}
