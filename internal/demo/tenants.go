package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/hwstate/hwstate/graph"
	"github.com/hwstate/hwstate/graph/emulator"
	"github.com/hwstate/hwstate/internal/sandbox"
	"github.com/hwstate/hwstate/worker"
)

// The demo's second part: one worker in multi-tenant mode (CONTRACT.md section 6) writing
// into three tenants side by side, one throttled hard and one whose consent is revoked, and
// events for a tenant it does not list. Its streams are its own, so that its outcomes are
// told apart from the first part's.
var tenantsConfig = worker.Config{
	Stream: "HWSTATE_TENANT_EVENTS", Subject: "hwstate.tenants.create", Consumer: "hwstate-tenants",
	ResultStream: "HWSTATE_TENANT_RESULTS", ResultSubject: "hwstate.tenants.result",
	DLQStream: "HWSTATE_TENANT_DLQ", DLQSubject: "hwstate.tenants.dlq",
	LedgerBucket: "HWSTATE_TENANT_LEDGER",
	Rate:         20, Burst: 1, Concurrency: 16, AckWait: 30 * time.Second,
}

// The demo's tenants: directory ids, GUIDs.
const (
	contosoID   = "4f1c2d3e-0000-4000-8000-000000000001"
	fabrikamID  = "4f1c2d3e-0000-4000-8000-000000000002"
	northwindID = "4f1c2d3e-0000-4000-8000-000000000003"
	unlistedID  = "4f1c2d3e-0000-4000-8000-0000000000ff"
	// fabrikamRate is the creates per second Graph allows fabrikam, a tenth of the worker's.
	fabrikamRate = 2
	// unlistedEvents are sent to the tenant that is not listed.
	unlistedEvents = 3
	// defaultTenantEvents is Config.TenantEvents when 0.
	defaultTenantEvents = 30
)

// demoTenant is one tenant of the second part.
type demoTenant struct {
	name, id string
	listed   bool
	graph    emulator.Config // how the emulated tenant answers; its token is set by the demo
	what     string
}

var demoTenants = []demoTenant{
	{name: "contoso", id: contosoID, listed: true, what: "normal"},
	{name: "fabrikam", id: fabrikamID, listed: true, graph: emulator.Config{Rate: fabrikamRate, Burst: 1},
		what: fmt.Sprintf("throttled hard: Graph allows it %d creates/s (429 beyond)", fabrikamRate)},
	{name: "northwind", id: northwindID, listed: true, graph: emulator.Config{Forbidden: true},
		what: "consent revoked: Graph answers 403 to every create, until the demo restores it"},
	{name: "unlisted", id: unlistedID, what: "not in the tenants list: nothing may be sent to it"},
}

// tenantEvent is one event of the second part.
type tenantEvent struct {
	id        string
	tenant    *demoTenant
	published time.Time
}

// tenantRun is the second part's state: its events, and when northwind's consent returned.
type tenantRun struct {
	sb        *sandbox.Sandbox
	events    []tenantEvent
	start     time.Time
	consentAt time.Time
}

// runTenants runs the second part on the sandbox the first part used.
func runTenants(ctx context.Context, sb *sandbox.Sandbox, cfg Config, w io.Writer) error {
	perTenant := cfg.TenantEvents
	if perTenant <= 0 {
		perTenant = defaultTenantEvents
	}
	var listed []worker.Tenant
	for _, t := range demoTenants {
		if t.listed {
			c := t.graph
			c.Token = sb.Token
			sb.Emulator.Tenant(t.id).SetConfig(c)
			listed = append(listed, worker.Tenant{ID: t.id, Name: t.name})
		}
	}
	client := func(t worker.Tenant) (worker.Creator, error) {
		return &graph.Client{BaseURL: sb.TenantGraphURL(t.ID), Tokens: graph.StaticToken(sb.Token), Timeout: 10 * time.Second}, nil
	}
	running, err := sb.StartWorker(ctx, nil, tenantsConfig, worker.WithTenants(listed, client), worker.WithLogger(cfg.Log),
		worker.WithBackoff(50*time.Millisecond, 500*time.Millisecond), worker.WithBreakerTimeout(time.Second))
	if err != nil {
		return fmt.Errorf("multi-tenant worker: %w", err)
	}
	defer func() { _ = running.Stop(context.Background()) }()

	c := tenantsConfig
	fmt.Fprintf(w, "\nMany tenants: one worker writing into three tenants side by side, each with its own consumer\n"+
		"(%s on %s.{tenantId}), Graph client, rate limit (worker rate %g creates/s) and breaker:\n", c.Consumer+"-{tenantId}", c.Subject, c.Rate)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range demoTenants {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.name, t.id, t.what)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "publishing %d events to each listed tenant and %d to the unlisted one...\n", perTenant, unlistedEvents)

	r := &tenantRun{sb: sb, start: time.Now()}
	for i := range perTenant {
		for k := range demoTenants {
			t := &demoTenants[k]
			if !t.listed && i >= unlistedEvents {
				continue
			}
			ev := tenantEvent{id: fmt.Sprintf("%s-%03d", t.name, i), tenant: t}
			body := sandbox.Event(sandbox.ConfigOK, i)
			if err := sandbox.Publish(ctx, sb.JS, c.Subject+"."+t.id, ev.id, body); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			ev.published = time.Now()
			r.events = append(r.events, ev)
		}
	}
	if err := r.wait(ctx, w); err != nil {
		return err
	}
	if err := running.Stop(ctx); err != nil {
		return err
	}
	got, err := r.outcomes(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\nat the end, after %s:\n", seconds(time.Since(r.start)))
	rows := r.rows(got)
	writeRows(w, rows)
	return r.verdict(w, got, rows)
}

// wait waits until every event has its outcome. Once contoso's events all have theirs,
// fabrikam's are half created and northwind has refused creates all along, it shows where
// each tenant is and restores northwind's consent.
func (r *tenantRun) wait(ctx context.Context, w io.Writer) error {
	const limit = 2 * time.Minute
	deadline := time.Now().Add(limit)
	for {
		got, err := r.outcomes(ctx)
		if err != nil {
			return err
		}
		rows := r.rows(got)
		waiting := 0
		for _, row := range rows {
			waiting += row.waiting()
		}
		if waiting == 0 {
			return nil
		}
		northwind := r.sb.Emulator.Tenant(northwindID)
		contoso, fabrikam := rows[0], rows[1]
		if r.consentAt.IsZero() && contoso.waiting() == 0 && 2*fabrikam.created >= fabrikam.events && northwind.Stats().Forbidden > 0 {
			fmt.Fprintf(w, "\nafter %s, contoso is done, fabrikam half done, and northwind still refuses; the demo restores northwind's consent now:\n",
				seconds(time.Since(r.start)))
			writeRows(w, rows)
			// Taken first: any create northwind answers from now on comes after it.
			r.consentAt = time.Now()
			c := northwind.Config()
			c.Forbidden = false
			northwind.SetConfig(c)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of the tenants' %d events still had no outcome after %s", waiting, len(r.events), limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (r *tenantRun) outcomes(ctx context.Context) (sandbox.Outcomes, error) {
	return sandbox.ReadOutcomesOf(ctx, r.sb.JS, tenantsConfig.ResultStream, tenantsConfig.DLQStream)
}

// tenantRow is where one tenant is: its events' outcomes and what its Graph answered.
type tenantRow struct {
	tenant                *demoTenant
	events, created, dead int
	toOutcome             []time.Duration // publish to outcome, of the events with one, sorted
	throttled, forbidden  uint64
	requests, duplicates  uint64
}

func (row tenantRow) waiting() int { return row.events - row.created - row.dead }

// rows tells where each tenant is, in demoTenants' order.
func (r *tenantRun) rows(got sandbox.Outcomes) []tenantRow {
	stats := r.sb.Emulator.TenantStats() // only the tenants Graph requests reached
	rows := make([]tenantRow, len(demoTenants))
	at := map[*demoTenant]*tenantRow{}
	for i := range demoTenants {
		t := &demoTenants[i]
		st := stats[t.id]
		rows[i] = tenantRow{tenant: t, throttled: st.Throttled, forbidden: st.Forbidden, requests: st.Requests, duplicates: st.Duplicates}
		at[t] = &rows[i]
	}
	for _, ev := range r.events {
		row := at[ev.tenant]
		row.events++
		for _, res := range got.Results[ev.id] {
			row.created++
			row.toOutcome = append(row.toOutcome, res.CompletedAt.Sub(ev.published))
		}
		for _, dl := range got.DeadLetters[ev.id] {
			row.dead++
			row.toOutcome = append(row.toOutcome, dl.FailedAt.Sub(ev.published))
		}
	}
	for i := range rows {
		slices.Sort(rows[i].toOutcome)
	}
	return rows
}

func writeRows(w io.Writer, rows []tenantRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tenant\tevents\tcreated\tdead-lettered\twaiting\t429s\t403s\tGraph requests\tp50 to outcome\tmax to outcome\t")
	for _, row := range rows {
		p50, most := "-", "-"
		if n := len(row.toOutcome); n > 0 {
			p50, most = seconds(row.toOutcome[(n-1)/2]), seconds(row.toOutcome[n-1])
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t\n", row.tenant.name, row.events, row.created, row.dead,
			row.waiting(), row.throttled, row.forbidden, row.requests, p50, most)
	}
	_ = tw.Flush()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

// verdict checks what the second part shows, and says it: every listed tenant's events
// created once each, the unlisted tenant's dead-lettered and nothing sent to it, northwind's
// created only once its consent returned; and contoso never waiting for the others.
func (r *tenantRun) verdict(w io.Writer, got sandbox.Outcomes, rows []tenantRow) error {
	var wrong []string
	for _, ev := range r.events {
		results, dead := got.Results[ev.id], got.DeadLetters[ev.id]
		switch {
		case len(results)+len(dead) != 1:
			wrong = append(wrong, fmt.Sprintf("%s: %d results and %d dead letters, want one outcome", ev.id, len(results), len(dead)))
		case ev.tenant.listed && (len(results) != 1 || results[0].TenantID != ev.tenant.id):
			wrong = append(wrong, fmt.Sprintf("%s: want created in %s, got %+v %+v", ev.id, ev.tenant.id, results, dead))
		case !ev.tenant.listed && (len(dead) != 1 || dead[0].Reason != worker.InvalidEvent || dead[0].TenantID != ev.tenant.id):
			wrong = append(wrong, fmt.Sprintf("%s: want invalid_event for %s, got %+v %+v", ev.id, ev.tenant.id, results, dead))
		case ev.tenant.id == northwindID && results[0].CompletedAt.Before(r.consentAt):
			wrong = append(wrong, fmt.Sprintf("%s: created at %s, before northwind's consent returned at %s", ev.id,
				results[0].CompletedAt.Format(time.StampMilli), r.consentAt.Format(time.StampMilli)))
		}
	}
	for _, row := range rows {
		if row.duplicates > 0 {
			wrong = append(wrong, fmt.Sprintf("%s: %d duplicate creates", row.tenant.name, row.duplicates))
		}
	}
	if _, ok := r.sb.Emulator.TenantStats()[unlistedID]; ok {
		wrong = append(wrong, "the unlisted tenant got Graph requests")
	}
	if r.consentAt.IsZero() {
		wrong = append(wrong, "northwind's consent was never restored: contoso was not done while northwind refused")
	}
	wrong = append(wrong, got.WrongIDs...)
	if len(wrong) > 0 {
		for _, s := range wrong {
			fmt.Fprintln(w, "  MISMATCH", s)
		}
		return errors.New("some of the tenants' events did not reach their expected outcome")
	}
	contoso, fabrikam, northwind, unlisted := rows[0], rows[1], rows[2], rows[3]
	fmt.Fprintf(w, "\nWhat to notice: contoso's %d events were all created within %s of publishing (p50 %s), while fabrikam was held to\n"+
		"its %d creates/s (%d answered 429, its last event took %s) and northwind refused every create (%d answered 403):\n"+
		"one tenant's throttling or revoked consent does not slow another. northwind's events waited, neither created nor\n"+
		"dead-lettered, and were created once its consent returned at %s. The %d events of the unlisted tenant were\n"+
		"dead-lettered (invalid_event) and nothing was sent to it. Each event has exactly one outcome.\n",
		contoso.events, seconds(last(contoso.toOutcome)), seconds(contoso.toOutcome[(len(contoso.toOutcome)-1)/2]),
		fabrikamRate, fabrikam.throttled, seconds(last(fabrikam.toOutcome)), northwind.forbidden,
		seconds(r.consentAt.Sub(r.start)), unlisted.events)
	return nil
}

func last(d []time.Duration) time.Duration { return d[len(d)-1] }
