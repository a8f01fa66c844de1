package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hwstate/hwstate/graph/emulator"
)

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("emulate-graph", stdout, stderr, "usage: hwstate emulate-graph [flags]\n\n"+
		"The Graph emulator: strict about requests like Graph, 201 with a new id, faults on request.\n"+
		"GET on a configuration's userRunStates lists what was created ($filter=upn eq '...', $top, @odata.nextLink).\n"+
		"Every flag's setting can change while it runs: PUT or PATCH /_emulator/config with its JSON form\n"+
		"(e.g. {\"ambiguousRate\":0.03,\"ambiguousFaults\":[\"504\",\"drop\"],\"refuseFilter\":501}); GET /_emulator/stats counts.\n"+
		"Tenants: every path under /tenants/{tenantId} (a GUID) is another tenant's, with its own state, limits and faults,\n"+
		"made on first use with the root's configuration then in force: Graph at /tenants/{id}/beta, control at /tenants/{id}/_emulator/config\n"+
		"and /tenants/{id}/_emulator/stats (e.g. PATCH {\"forbidden\":true} revokes its consent); GET /_emulator/tenants counts them all.")
	var cfg emulator.Config
	addr := fs.String("addr", "127.0.0.1:8081", "listen address; Graph is served under /beta, the control endpoint under /_emulator/")
	fs.StringVar(&cfg.Token, "token", "", "the only bearer token accepted; empty: any")
	fs.DurationVar(&cfg.Latency, "latency", 0, "added to every answer")
	fs.Float64Var(&cfg.Rate, "rate", 0, "creates per second before 429 (a token bucket like a tenant's); 0: unlimited")
	fs.IntVar(&cfg.Burst, "burst", 1, "token bucket size with --rate")
	fs.IntVar(&cfg.Window.Limit, "window-limit", 0, "creates per sliding --window-per before 429 (Intune's shape: 100 per 20s); 0: unlimited")
	fs.DurationVar(&cfg.Window.Per, "window-per", 20*time.Second, "the sliding window of --window-limit")
	fs.DurationVar(&cfg.RetryAfter, "retry-after", time.Second, "Retry-After of injected 429s")
	fs.BoolVar(&cfg.OmitRetryAfter, "omit-retry-after", false, "answer 429 without Retry-After, as Intune sometimes does")
	fs.Float64Var(&cfg.ThrottleRate, "throttle-rate", 0, "probability of a 429 per request")
	fs.Float64Var(&cfg.ErrorRate, "error-rate", 0, "probability of a 503 per request")
	fs.Float64Var(&cfg.AmbiguousRate, "ambiguous-rate", 0, "probability that a create is made and its answer then lost (see --ambiguous-faults)")
	fs.IntVar(&cfg.ThrottleFirst, "throttle-first", 0, "answer 429 to the first N requests of each client-request-id")
	fs.IntVar(&cfg.FailFirst, "fail-first", 0, "answer --fail-status to the next N requests of each client-request-id, after --throttle-first")
	fs.IntVar(&cfg.FailStatus, "fail-status", 503, "the 5xx of --fail-first and --fail-ids")
	fs.Int64Var(&cfg.Seed, "seed", 0, "seed of --throttle-rate, --error-rate and --ambiguous-rate draws; 0: random")
	fs.IntVar(&cfg.RefuseFilter, "refuse-filter", 0, "answer this status (400 or 501) to a list with $filter, as a tenant may; 0: serve the filter")
	fs.IntVar(&cfg.PageSize, "page-size", 0, "the most user states in a page of a list, whatever $top asks; 0: $top, or 100")
	fs.BoolVar(&cfg.Outage, "outage", false, "answer 503 to everything (switch off with PATCH /_emulator/config {\"outage\":false})")
	fs.BoolVar(&cfg.Forbidden, "forbidden", false, "answer 403 to every create and list, as a tenant whose admin revoked the app's consent")
	fs.DurationVar(&cfg.OutageFor, "outage-for", 0, "an outage window: answer 503 to everything for this long from start (later: PATCH /_emulator/config {\"outageFor\":\"30s\"})")
	for _, f := range []struct {
		name, usage string
		ids         *[]string
	}{
		{"not-found-ids", "comma-separated configuration ids answered 404", &cfg.NotFoundIDs},
		{"reject-ids", "comma-separated configuration ids whose creates are answered 400", &cfg.RejectIDs},
		{"fail-ids", "comma-separated configuration ids whose creates always answer --fail-status", &cfg.FailIDs},
		{"throttle-ids", "comma-separated configuration ids whose first create of each client-request-id answers 429", &cfg.ThrottleIDs},
		{"ambiguous-faults", "comma-separated faults of --ambiguous-rate: 500, 504 (that answer), hang (none until the client gives up), drop (the connection closed); empty: all", &cfg.AmbiguousFaults},
	} {
		fs.Func(f.name, f.usage, func(v string) error {
			*f.ids = strings.Split(v, ",")
			return nil
		})
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	fmt.Fprintf(stdout, "Graph emulator on http://%s/beta (control: http://%s/_emulator/config, /_emulator/stats; tenants: http://%s/tenants/{id}/beta)\n",
		ln.Addr(), ln.Addr(), ln.Addr())
	srv := &http.Server{Handler: emulator.New(cfg), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
