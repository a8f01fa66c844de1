package worker

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/schema"
)

// Multi-tenant mode (CONTRACT.md section 6): a lane per tenant (lane.go), each pulling from
// its own durable consumer filtered on {HWSTATE_SUBJECT}.{tenantId}. Separate consumers,
// rather than one consumer whose messages are sorted into per-tenant queues, are what keep
// head-of-line blocking out: a consumer delivers in stream order, so behind a tenant's
// backlog of a million events another tenant's event would wait for the million to be
// pulled, however they were queued afterwards. With a consumer each, a tenant's pulls see
// only its own events, and the messages a lane may hold are its own share.

// tenancy is the worker's state of multi-tenant mode.
type tenancy struct {
	initial    []Tenant
	newCreator func(Tenant) (Creator, error)
	// sweepEvery is how often the stream's subjects are listed to find events of tenants
	// without a lane.
	sweepEvery time.Duration

	mu sync.Mutex // serialises SetTenants
}

const defaultSweepEvery = 2 * time.Second

// idleRounds is how many consumer polls in a row an unlisted tenant's lane must be found with
// nothing pending or held before it stops.
const idleRounds = 3

// SetTenants makes these the listed tenants: a tenant added gets a lane that starts at once;
// a tenant removed is from then on like any unlisted tenant (its events are dead-lettered);
// a tenant whose settings changed gets a new Graph client and, when its rate changed, a new
// pacer. Events already being sent finish with the settings they started with.
func (w *Worker) SetTenants(listed []Tenant) {
	t := w.opts.tenants
	if t == nil {
		w.log.Error("SetTenants called in single-tenant mode; ignored")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	want := make(map[string]Tenant, len(listed))
	for _, tn := range listed {
		want[w.cfg.Subject+"."+tn.ID] = tn
	}
	for _, l := range w.lanes.all() {
		if _, ok := want[l.subject]; !ok && l.listed.Load() != nil {
			l.log.Info("tenant no longer listed: its events are dead-lettered from now on")
			w.list(l, nil)
		}
	}
	for subject, tn := range want {
		if l := w.lanes.get(subject); l != nil {
			if cur := l.listed.Load(); cur != nil && cur.tenant == tn {
				continue
			}
		}
		li := &listing{tenant: tn, creator: w.creatorFor(tn)}
		l, added := w.lanes.getOrAdd(subject, func() *lane {
			return w.newLane(tn.ID, subject, tenantConsumer(w.cfg.Consumer, tn.ID), li)
		})
		if !added {
			l.log.Info("tenant listed or changed in the tenants file")
			w.list(l, li)
		}
	}
}

// creatorFor makes a tenant's Graph client; one that cannot be made (a credential file that
// cannot be read) is logged, and the tenant's events wait until a reload fixes it.
func (w *Worker) creatorFor(tn Tenant) Creator {
	c, err := w.opts.tenants.newCreator(tn)
	if err != nil {
		w.log.Error("cannot make the tenant's Graph client: its events wait until the tenants file is fixed",
			zap.String("tenant", tn.ID), zap.Error(err))
		return failingCreator{err: err}
	}
	return c
}

// tenantsWatch is a round of watchConsumers in multi-tenant mode: the lanes' consumers, and
// every sweepEvery the stream's subjects. The stream's handle is looked up once (its calls
// name the stream, so it serves one made again too), not at every round.
func (w *Worker) tenantsWatch() func(context.Context) {
	var in jetstream.Stream
	var lastSweep time.Time
	return func(ctx context.Context) {
		if in == nil {
			s, err := w.js.Stream(ctx, w.cfg.Stream)
			if err != nil {
				w.repairIfGone(nil, err)
				return
			}
			in = s
		}
		w.watchTenants(ctx, in)
		if now := w.opts.now(); now.Sub(lastSweep) >= w.opts.tenants.sweepEvery {
			lastSweep = now
			w.sweep(ctx, in)
		}
	}
}

// watchTenants reads the state of every lane's consumer from the list of the stream's
// consumers: its ack wait and figures, whether it is gone, and whether an unlisted tenant's
// lane has run out of events and can stop.
func (w *Worker) watchTenants(ctx context.Context, in jetstream.Stream) {
	infos := make(map[string]*jetstream.ConsumerInfo)
	list := in.ListConsumers(ctx)
	for info := range list.Info() {
		infos[info.Name] = info
	}
	if err := list.Err(); err != nil {
		if isGone(err) {
			for _, l := range w.lanes.all() {
				w.repairIfGone(l, err)
			}
		}
		return
	}
	for _, l := range w.lanes.all() {
		info, ok := infos[l.consumerName]
		if !ok {
			if l.isBound() {
				w.repairIfGone(l, jetstream.ErrConsumerNotFound)
			}
			continue
		}
		w.observe(l, info)
		if l.listed.Load() != nil || info.NumPending > 0 || info.NumAckPending > 0 || l.held.Load() > 0 {
			l.idle = 0
			continue
		}
		if l.idle++; l.idle >= idleRounds {
			l.log.Debug("unlisted tenant's events all dead-lettered: its lane stops")
			w.lanes.remove(l)
		}
	}
}

// sweep lists the subjects of the input stream that hold events and starts a lane for each
// one without: its tenant is not listed, and its events are dead-lettered.
func (w *Worker) sweep(ctx context.Context, in jetstream.Stream) {
	info, err := in.Info(ctx, jetstream.WithSubjectFilter(w.inputSubject()))
	if err != nil {
		w.log.Debug("listing the input stream's subjects failed", zap.Error(err))
		return
	}
	prefix := w.cfg.Subject + "."
	for subject, n := range info.State.Subjects {
		if n == 0 || w.lanes.get(subject) != nil {
			continue
		}
		token := strings.TrimPrefix(subject, prefix)
		if l, added := w.lanes.getOrAdd(subject, func() *lane {
			return w.newLane(token, subject, tenantConsumer(w.cfg.Consumer, token), nil)
		}); added {
			l.log.Info("events for a tenant not in the tenants file: dead-lettering them", zap.Uint64("events", n))
		}
	}
}

// decodeFor decodes an event: in multi-tenant mode its tenant must be listed, and a tenantId
// in its body must be the subject's.
func decodeFor(ev *event, data []byte) (schema.Event, error) {
	l := ev.lane
	if l.tenant == "" {
		return schema.Decode(data)
	}
	if ev.listing == nil {
		return schema.Event{}, fmt.Errorf("tenant %q (from the subject) is not listed in the tenants file: nothing is written to it", l.tenant)
	}
	parsed, err := schema.DecodeMultiTenant(data)
	if err != nil {
		return parsed, err
	}
	if parsed.TenantID != "" && !strings.EqualFold(parsed.TenantID, l.tenant) {
		return parsed, fmt.Errorf("tenantId %q in the body disagrees with the subject's tenant %q", parsed.TenantID, l.tenant)
	}
	return parsed, nil
}
