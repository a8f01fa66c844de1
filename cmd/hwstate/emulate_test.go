package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/proctest"
)

func TestEmulateGraphFlags(t *testing.T) {
	const id = "00000000-0000-4000-8000-000000000429"
	ctx, cancel := context.WithCancel(context.Background())
	var stdout proctest.Buffer
	done := make(chan error, 1)
	go func() {
		done <- runEmulator(ctx, []string{"--addr", "127.0.0.1:0", "--outage-for", "1h", "--throttle-ids", id,
			"--reject-ids", id, "--fail-status", "502", "--seed", "7", "--window-limit", "100",
			"--ambiguous-rate", "0.03", "--ambiguous-faults", "504,drop", "--refuse-filter", "501", "--page-size", "10", "--forbidden"}, &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("emulate-graph: %v", err)
		}
	})
	addr := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/beta`)
	var m []string
	proctest.WaitFor(t, 10*time.Second, "the address on stdout", func() bool {
		m = addr.FindStringSubmatch(stdout.String())
		return m != nil
	})
	want := emulator.Config{OutageFor: time.Hour, ThrottleIDs: []string{id}, RejectIDs: []string{id},
		FailStatus: 502, Seed: 7, Burst: 1, RetryAfter: time.Second, Window: emulator.Window{Limit: 100, Per: 20 * time.Second},
		AmbiguousRate: 0.03, AmbiguousFaults: []string{emulator.Fault504, emulator.FaultDrop}, RefuseFilter: 501, PageSize: 10, Forbidden: true}
	for _, path := range []string{"/_emulator/config", "/tenants/" + id + "/_emulator/config"} { // a tenant starts as the flags say
		resp, err := http.Get("http://" + m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		var got emulator.Config
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %v %+v\nwant %+v", path, err, got, want)
		}
	}
	if r, err := http.Post("http://"+m[1]+"/beta/$batch", "application/json", nil); err != nil || r.StatusCode != 503 {
		t.Errorf("in the outage window: %v %v", r, err)
	} else {
		r.Body.Close()
	}
}

func TestEmulateGraphRefusesBadFlags(t *testing.T) {
	err := runEmulator(context.Background(), []string{"--addr", "127.0.0.1:0", "--fail-ids", "nope"}, io.Discard, io.Discard)
	if err == nil || !regexp.MustCompile(`failIds: "nope" is not a GUID`).MatchString(err.Error()) {
		t.Errorf("err %v", err)
	}
}
