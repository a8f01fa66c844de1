package backfill

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/hwstate/hwstate/schema"
)

// router picks each event's subject: the input subject in single-tenant mode, the subject
// of the event's tenant in multi-tenant mode (CONTRACT.md section 6).
type router struct {
	subject string
	tenant  string // the one tenant of every line (--tenant), lower case; "" for each line's own
}

func newRouter(subject, tenant string) (router, error) {
	if tenant != "" && !schema.IsGUID(tenant) {
		return router{}, fmt.Errorf("--tenant %q: want a tenant (directory) id, a GUID", tenant)
	}
	return router{subject: subject, tenant: strings.ToLower(tenant)}, nil
}

// destination is where one event goes.
type destination struct {
	subject string
	tenant  string // "" in single-tenant mode
}

// of checks a line and says where it goes: to the subject of --tenant or of the body's
// tenantId, or to the input subject when neither names a tenant. A body naming another
// tenant than --tenant is refused.
func (r router) of(line []byte) (destination, error) {
	tenant, err := decode(line)
	if err != nil {
		return destination{}, err
	}
	if r.tenant != "" && tenant != "" && !strings.EqualFold(tenant, r.tenant) {
		return destination{}, fmt.Errorf("tenantId %s disagrees with --tenant %s", tenant, r.tenant)
	}
	// Tenant ids are GUIDs, the same in any case; subjects are not, and the worker's
	// filter is the lower case one of the tenants file.
	tenant = cmp.Or(r.tenant, strings.ToLower(tenant))
	if tenant == "" {
		return destination{subject: r.subject}, nil
	}
	return destination{subject: r.subject + "." + tenant, tenant: tenant}, nil
}

// decode checks an event, which may name its tenant, and returns its tenantId, "" without
// one.
func decode(line []byte) (string, error) {
	ev, err := schema.DecodeMultiTenant(line)
	return ev.TenantID, err
}

// msgID is the event's Nats-Msg-Id: the hex SHA-256 of its body, after its tenant's id in
// multi-tenant mode, so that one line sent to two tenants is two events, and a line sent to
// its own tenantId's subject with --tenant or without is one.
func (d destination) msgID(body []byte) string {
	h := sha256.New()
	if d.tenant != "" {
		h.Write([]byte(d.tenant + "\n"))
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// findStream checks that a stream captures the events before any is sent: the subject of
// --tenant, or the input subject or its tenants' subjects. A line sent to a subject no
// stream captures still fails alone (notPublished).
func (r router) findStream(ctx context.Context, js jetstream.JetStream) error {
	subjects := []string{r.subject, r.subject + ".>"}
	if r.tenant != "" {
		subjects = []string{r.subject + "." + r.tenant}
	}
	for _, s := range subjects {
		_, err := js.StreamNameBySubject(ctx, s)
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNotFound) {
			return fmt.Errorf("look up the stream of %s: %w", s, err)
		}
	}
	return fmt.Errorf("no stream captures subject %s: start `hwstate run` once (it creates the input stream) or create one", strings.Join(subjects, " or "))
}

// notPublished says why a line was not published, naming a subject no stream captures.
func notPublished(subject string, err error) error {
	if errors.Is(err, jetstream.ErrNoStreamResponse) {
		return fmt.Errorf("no stream captures subject %s: %w", subject, err)
	}
	return err
}
