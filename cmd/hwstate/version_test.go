package main

import (
	"bytes"
	"context"
	"runtime/debug"
	"strings"
	"testing"
)

func TestRevision(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		info := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			info.Settings = append(info.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return info
	}
	for _, tc := range []struct {
		name    string
		info    *debug.BuildInfo
		stamped string
		want    string
	}{
		{"go's stamp", vcs("vcs.revision", "abc123", "vcs.modified", "false"), "", "abc123"},
		{"go's stamp of a dirty tree", vcs("vcs.revision", "abc123", "vcs.modified", "true"), "", "abc123 (modified)"},
		{"go's stamp wins over the build's", vcs("vcs.revision", "abc123"), "def456", "abc123"},
		{"the image: no .git, the build's -X main.commit", vcs("-trimpath", "true"), "def456", "def456"},
		{"no build info", nil, "def456", "def456"},
		{"nothing known", vcs(), "", "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := revision(tc.info, tc.stamped); got != tc.want {
				t.Errorf("revision = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestVersionPrintsCommit: what -ldflags "-X main.commit=..." sets is what `hwstate version`
// prints when Go stamped no revision (as under go test, and in the image).
func TestVersionPrintsCommit(t *testing.T) {
	if info, ok := debug.ReadBuildInfo(); ok && revision(info, "") != "unknown" {
		t.Skip("this test binary has Go's vcs stamp, which wins")
	}
	saved := commit
	t.Cleanup(func() { commit = saved })
	commit = "0123456789abcdef"
	var out bytes.Buffer
	if err := runVersion(context.Background(), nil, &out, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "\ncommit 0123456789abcdef\n") {
		t.Errorf("hwstate version printed\n%s\nwant the line commit 0123456789abcdef", out.String())
	}
}
