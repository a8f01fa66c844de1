package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/internal/entratest"
)

// flagSettings are `hwstate run`'s settings from args alone (no HWSTATE_ variables, no
// validation).
func flagSettings(t *testing.T, args []string) settings {
	t.Helper()
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var s settings
	s.register(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return s
}

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
		{"fixed token, $batch auto by default", []string{"--graph-token", "x"}, "", true},
		{"fixed token, batched", []string{"--graph-token", "x", "--graph-batch", "20"}, "", true},
		{"fixed token, never batched", []string{"--graph-token", "x", "--graph-batch", "1"}, "", false},
		{"client secret", []string{"--tenant-id", "t", "--client-id", "c", "--client-secret", secret}, "", true},
		{"client secret in the usgov cloud", []string{"--graph-cloud", "usgov", "--tenant-id", "t", "--client-id", "c", "--client-secret", secret, "--graph-batch", "1"}, "", false},
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
			s := flagSettings(t, tt.args)
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
		{[]string{"--graph-batch", "auto", "--concurrency", "1"}, ""},
		{[]string{"--graph-batch", "21"}, "--graph-batch must be auto or from 1 to 20"},
		{[]string{"--graph-batch", "0"}, "want a positive number or auto"},
		{[]string{"--graph-batch", "20", "--concurrency", "19"}, "--graph-batch must be at most --concurrency"},
	}
	for _, tt := range cases {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parseSettings(t, tt.args...)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestWorkloadIdentityFromEnvironment: the variables the Azure Workload Identity webhook
// sets choose a sign-in with the federated token file, at their authority, for the Graph of
// --graph-cloud, unless another Graph credential is set.
func TestWorkloadIdentityFromEnvironment(t *testing.T) {
	const (
		tenant    = "72f988bf-86f1-41af-91ab-2d7cd011db47"
		webhookID = "3f1e5c2a-8b7d-4e6f-9a0b-1c2d3e4f5a6b"
		secret    = "canary-S3cr3t-cmd-wi-5e2b"
		federated = "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.signature"
	)
	tokenFile := filepath.Join(t.TempDir(), "azure-identity-token")
	if err := os.WriteFile(tokenFile, []byte(federated), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name          string
		args          []string
		authority     string // AZURE_AUTHORITY_HOST
		wantHost      string
		wantScope     string
		wantClient    string
		wantAssertion string // empty: a client secret was sent
	}{
		{"global", nil, "https://login.microsoftonline.com/", "login.microsoftonline.com",
			"https://graph.microsoft.com/.default", webhookID, federated},
		{"usgov", []string{"--graph-cloud", "usgov"}, "https://login.microsoftonline.us/", "login.microsoftonline.us",
			"https://graph.microsoft.us/.default", webhookID, federated},
		{"no AZURE_AUTHORITY_HOST: the cloud's", []string{"--graph-cloud", "china"}, "", "login.chinacloudapi.cn",
			"https://microsoftgraph.chinacloudapi.cn/.default", webhookID, federated},
		{"--client-id wins over AZURE_CLIENT_ID", []string{"--client-id", "other-app"}, "https://login.microsoftonline.com/", "login.microsoftonline.com",
			"https://graph.microsoft.com/.default", "other-app", federated},
		{"a client secret wins over workload identity", []string{"--tenant-id", tenant, "--client-id", "secret-app", "--client-secret", secret},
			"https://login.microsoftonline.com/", "login.microsoftonline.com", "https://graph.microsoft.com/.default", "secret-app", ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tokenFile)
			t.Setenv("AZURE_CLIENT_ID", webhookID)
			t.Setenv("AZURE_TENANT_ID", tenant)
			t.Setenv("AZURE_AUTHORITY_HOST", tt.authority)
			auth := entratest.Start(t, secret, time.Hour)
			s := flagSettings(t, tt.args)
			cloud, err := graph.CloudByName(s.GraphCloud)
			if err != nil {
				t.Fatal(err)
			}
			tokens, err := s.graphTokens(cloud, graph.WithSignInTransport(auth.Transport()), graph.WithoutInstanceDiscovery())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tokens.Token(context.Background(), false); err != nil {
				t.Fatal(err)
			}
			reqs := auth.Requests()
			if len(reqs) != 1 {
				t.Fatalf("%d token requests: %+v", len(reqs), reqs)
			}
			got := reqs[0]
			if got.Host != tt.wantHost || got.Tenant != tenant || got.ClientID != tt.wantClient ||
				!strings.Contains(" "+got.Scope+" ", " "+tt.wantScope+" ") || got.ClientAssertion != tt.wantAssertion {
				t.Errorf("token request %+v, want host %s, tenant %s, client %s, scope %s, assertion %q",
					got, tt.wantHost, tenant, tt.wantClient, tt.wantScope, tt.wantAssertion)
			}
		})
	}

	t.Run("half-given", func(t *testing.T) {
		t.Setenv("AZURE_FEDERATED_TOKEN_FILE", tokenFile)
		t.Setenv("AZURE_CLIENT_ID", webhookID)
		s := flagSettings(t, nil)
		_, err := s.graphTokens(graph.Clouds()[0])
		if err == nil || !strings.Contains(err.Error(), "workload identity") || !strings.Contains(err.Error(), "tenant id") {
			t.Errorf("err %v, want one naming workload identity and the missing tenant id", err)
		}
	})
}
