package deploy_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// loadCompose loads docker-compose.yml as docker compose does (compose-go is its loader):
// variables interpolated from env alone, validated against the compose-spec schema, env
// files read into each service's environment.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details)
	if err != nil {
		t.Fatalf("docker-compose.yml with %v: %v", env, err)
	}
	p, err = p.WithServicesEnvironmentResolved(false)
	if err != nil {
		t.Fatalf("docker-compose.yml with %v: env files: %v", env, err)
	}
	return p
}

// The compose file in its two modes: the emulator with nothing set, a real tenant with the
// credentials set and nothing else. Either way it is valid, the worker gets exactly one kind
// of Graph credentials (two make it refuse to start), and no port is published beyond
// 127.0.0.1.
func TestComposeModes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    map[string]string // the worker's environment: "" means absent or empty
		tenants bool
	}{
		{
			name: "emulator",
			env:  map[string]string{},
			want: map[string]string{
				"HWSTATE_GRAPH_BASE_URL": "http://emulator:8081/beta",
				"HWSTATE_GRAPH_TOKEN":    "compose-token",
				"HWSTATE_TENANT_ID":      "",
				"HWSTATE_CLIENT_ID":      "",
				"HWSTATE_CLIENT_SECRET":  "",
				"HWSTATE_NATS_CREDS":     "/nats/worker.creds",
				"HWSTATE_NATS_CA":        "/nats/ca.crt",
				"HWSTATE_NATS_URL":       "tls://nats:4222",
			},
		},
		{
			name: "tenant",
			env: map[string]string{
				"HWSTATE_TENANT_ID":     "11111111-1111-1111-1111-111111111111",
				"HWSTATE_CLIENT_ID":     "22222222-2222-2222-2222-222222222222",
				"HWSTATE_CLIENT_SECRET": "s3cret",
			},
			want: map[string]string{
				"HWSTATE_GRAPH_BASE_URL": "",
				"HWSTATE_GRAPH_TOKEN":    "",
				"HWSTATE_TENANT_ID":      "11111111-1111-1111-1111-111111111111",
				"HWSTATE_CLIENT_ID":      "22222222-2222-2222-2222-222222222222",
				"HWSTATE_CLIENT_SECRET":  "s3cret",
				"HWSTATE_NATS_CREDS":     "/nats/worker.creds",
				"HWSTATE_NATS_CA":        "/nats/ca.crt",
				"HWSTATE_NATS_URL":       "tls://nats:4222",
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := loadCompose(t, tc.env)
			w, err := p.GetService("hwstate")
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range tc.want {
				got := ""
				if v := w.Environment[key]; v != nil {
					got = *v
				}
				if got != want {
					t.Errorf("hwstate %s = %q, want %q", key, got, want)
				}
			}
			for _, s := range p.Services {
				for _, port := range s.Ports {
					if port.HostIP != "127.0.0.1" {
						t.Errorf("service %s publishes %s on %q, want 127.0.0.1 only", s.Name, port.Published, port.HostIP)
					}
				}
			}
			// One image, built once: by the worker's service, used as is by the emulator.
			var builders []string
			for _, s := range p.Services {
				if s.Build != nil {
					builders = append(builders, s.Name)
				}
			}
			emu, err := p.GetService("emulator")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(builders, []string{"hwstate"}) || emu.Image != w.Image {
				t.Errorf("services %v build an image, the emulator runs %q and the worker %q: want one image built by hwstate", builders, emu.Image, w.Image)
			}
		})
	}
}
