package main

import (
	"bytes"
	"strings"
	"testing"
)

// Every command with flags reads HWSTATE_<FLAG> for a flag not given, and the flag wins over
// the variable. Each case fails on a bad value, so it ends before the command does any work:
// a bad variable must be read, and a bad flag must win over a good variable.
func TestEveryCommandReadsItsVariables(t *testing.T) {
	const guid = "00000000-0000-4000-8000-000000000001"
	cases := []struct {
		command        []string
		variable       string
		good, bad      string
		wantErr        string
		otherVariables map[string]string
	}{
		{[]string{"run"}, "HWSTATE_RATE", "5", "0", "--rate must be above 0", nil},
		{[]string{"demo"}, "HWSTATE_LOG_LEVEL", "error", "loud", "--log-level", nil},
		{[]string{"emulate-graph"}, "HWSTATE_FAIL_IDS", guid, "nope", `failIds: "nope" is not a GUID`, nil},
		{[]string{"publish"}, "HWSTATE_MAX_PENDING", "5", "0", "--max-pending must be at least 1", map[string]string{"HWSTATE_FILE": "-"}},
		{[]string{"dlq", "ls"}, "HWSTATE_REASON", "graph_rejected", "nope", "want invalid_event", nil},
		{[]string{"bench"}, "HWSTATE_SCENARIO", "idle", "nope", "unknown scenario", map[string]string{"HWSTATE_DURATION": "1ms"}},
	}
	for _, tt := range cases {
		flagName := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(tt.variable, "HWSTATE_")), "_", "-")
		for _, c := range []struct {
			name, value string
			args        []string
		}{
			{"variable read", tt.bad, nil},
			{"flag wins", tt.good, []string{flagName, tt.bad}},
		} {
			t.Run(tt.command[0]+"/"+c.name, func(t *testing.T) {
				for k, v := range tt.otherVariables {
					t.Setenv(k, v)
				}
				t.Setenv(tt.variable, c.value)
				var stdout, stderr bytes.Buffer
				code := mainExit(append(append([]string{}, tt.command...), c.args...), &stdout, &stderr)
				if code != 1 || !strings.Contains(stderr.String(), tt.wantErr) {
					t.Errorf("%s=%s %v: exit %d, stderr %q; want 1 and %q", tt.variable, c.value, c.args, code, stderr.String(), tt.wantErr)
				}
			})
		}
	}
}
