package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hwstate/hwstate/graph"
)

func TestGraphClientFromSettings(t *testing.T) {
	const secret = "canary-S3cr3t-cmd-1c9a"
	certFile := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		args      []string
		wantErr   string // empty: no error
		wantBatch bool
	}{
		{"fixed token", []string{"--graph-token", "x"}, "", false},
		{"fixed token, batched", []string{"--graph-token", "x", "--graph-batch", "20"}, "", true},
		{"client secret", []string{"--tenant-id", "t", "--client-id", "c", "--client-secret", secret}, "", false},
		{"client secret in the usgov cloud", []string{"--graph-cloud", "usgov", "--tenant-id", "t", "--client-id", "c", "--client-secret", secret}, "", false},
		{"nothing", nil, "no Graph credentials", false},
		{"tenant only", []string{"--tenant-id", "t"}, "missing --client-id (HWSTATE_CLIENT_ID), --client-secret (HWSTATE_CLIENT_SECRET) or --client-cert", false},
		{"secret without tenant", []string{"--client-id", "c", "--client-secret", secret}, "missing --tenant-id (HWSTATE_TENANT_ID)", false},
		{"secret and certificate", []string{"--tenant-id", "t", "--client-id", "c", "--client-secret", secret, "--client-cert", certFile}, "both set", false},
		{"token and credentials", []string{"--graph-token", "x", "--tenant-id", "t"}, "both set", false},
		{"unreadable certificate", []string{"--tenant-id", "t", "--client-id", "c", "--client-cert", certFile}, "certificate", false},
		{"PEM in the variable, not a certificate", []string{"--tenant-id", "t", "--client-id", "c", "--client-cert",
			"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}, "certificate", false},
		{"missing certificate file", []string{"--tenant-id", "t", "--client-id", "c", "--client-cert", certFile + ".gone"}, "--client-cert", false},
		{"unknown cloud", []string{"--graph-cloud", "mars", "--graph-token", "x"}, "unknown Graph cloud", false},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var s settings
			s.register(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			creator, err := s.graphClient()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one saying %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err %q reveals the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, batched := creator.(*graph.Batcher); batched != tt.wantBatch {
				t.Errorf("creator %T, want a Batcher: %v", creator, tt.wantBatch)
			}
		})
	}
}

func TestGraphBatchSettings(t *testing.T) {
	cases := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--graph-batch", "20", "--concurrency", "20"}, ""},
		{[]string{"--graph-batch", "21"}, "--graph-batch must be from 1 to 20"},
		{[]string{"--graph-batch", "20", "--concurrency", "19"}, "--graph-batch must be at most --concurrency"},
	}
	for _, tt := range cases {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("run", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			var s settings
			s.register(fs)
			err := s.parse(fs, tt.args)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}
