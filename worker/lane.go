package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker/v2"
	"go.uber.org/zap"

	"github.com/hwstate/hwstate/graph"
)

// A lane is the part of the worker that works for one tenant: the consumer it pulls from
// and its manners towards that tenant's Graph (token, rate limit and learned level, circuit
// breaker, requests in flight, the messages it may hold). Lanes share nothing that one
// tenant could use up: a tenant throttled, refused, down or with a backlog of a million
// events slows only its own lane (CONTRACT.md section 6).
//
// Single-tenant mode has one lane, on HWSTATE_SUBJECT and HWSTATE_CONSUMER. Multi-tenant
// mode has a lane per subject {HWSTATE_SUBJECT}.{tenantId} that holds events: one for every
// listed tenant, and one for each unlisted subject found with events in the stream, which
// dead-letters them.
type lane struct {
	// tenant is the subject's tenant token in multi-tenant mode ("" in single-tenant mode);
	// it is part of ledger keys and client-request-ids.
	tenant       string
	subject      string
	consumerName string // the durable consumer's name
	log          *zap.Logger
	metrics      atomic.Pointer[Metrics] // figures(): relabelled when the tenant is listed or named anew

	// listed is the tenant's entry in the tenants file and the Graph client made for it; nil
	// while the tenant is not listed (its events are invalid_event). Always set in
	// single-tenant mode.
	listed atomic.Pointer[listing]

	pacer   atomic.Pointer[pacer]
	breaker *gobreaker.CircuitBreaker[graph.Response]
	sending chan struct{} // a slot per Graph request in flight
	// canList is whether reconciliation can ask Graph; cleared (with one warning) when Graph
	// refuses the list call, after which events that might exist are created anyway.
	canList     atomic.Bool
	warnListing sync.Once

	// ackWait is the consumer's AckWait as the server holds it: another replica may have
	// set it.
	ackWait atomic.Int64
	bind    binding
	// idle counts the consumer polls in a row that found it with nothing pending or held:
	// an unlisted lane that stays idle is stopped.
	idle  int
	stop  context.CancelFunc // set, under lanes.mu, when the lane starts
	paced bool               // startPacer has started the pacer at the learned level
	held  atomic.Int64       // messages this lane holds
	work  handlers           // the held messages' queue and its handlers (hold.go)
	// levels carries the levels the pacer learns to saveLevels (level.go).
	levels chan float64
}

func (l *lane) figures() *Metrics { return l.metrics.Load() }

// list makes a lane's tenant listed with these settings (nil: not listed), with a new pacer
// when its rate changes, and its figures labelled accordingly.
func (w *Worker) list(l *lane, listed *listing) {
	old := l.listed.Swap(listed)
	l.canList.Store(listed != nil && isLister(listed.creator))
	// A new lane (no pacer yet) gets both; the pacer records into the figures.
	relabel := l.pacer.Load() == nil || labelOf(l.tenant, old) != labelOf(l.tenant, listed)
	if relabel {
		l.metrics.Store(w.metrics.forTenant(l.tenant, listed))
	}
	oldRate, oldBurst := old.rate(w.cfg)
	perSecond, burst := listed.rate(w.cfg)
	if relabel || oldRate != perSecond || oldBurst != burst {
		p := newPacerAt(max(startRate, perSecond/startShare), perSecond, burst, l.figures(), w.opts.now)
		p.setOnLevel(levelReporter(l.levels))
		p.setShare(w.replicas.share())
		l.pacer.Store(p)
	}
}

// listing is a listed tenant's settings and the Creator made from them.
type listing struct {
	tenant  Tenant
	creator Creator
}

// rate is the lane's configured Graph rate and burst.
func (l *lane) rate(cfg Config) (float64, int) { return l.listed.Load().rate(cfg) }

// rate is a listed tenant's Graph rate and burst; the deployment's for a tenant not listed
// (nil), or one without its own.
func (li *listing) rate(cfg Config) (float64, int) {
	if li != nil && li.tenant.Rate > 0 {
		return li.tenant.Rate, max(li.tenant.Burst, 1)
	}
	return cfg.Rate, cfg.Burst
}

// newLane builds a lane; its pacer starts where slow start begins.
func (w *Worker) newLane(tenant, subject, consumerName string, listed *listing) *lane {
	l := &lane{
		tenant:       tenant,
		subject:      subject,
		consumerName: consumerName,
		log:          w.log,
		sending:      make(chan struct{}, w.cfg.Concurrency),
	}
	if tenant != "" {
		l.log = w.log.With(zap.String("tenant", tenant))
	}
	l.ackWait.Store(int64(w.cfg.AckWait))
	l.bind.bound = make(chan struct{})
	l.levels = make(chan float64, 1)
	w.list(l, listed)
	name := "graph"
	if tenant != "" {
		name += "/" + tenant
	}
	l.breaker = gobreaker.NewCircuitBreaker[graph.Response](gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		// Trip on the share of failures over the last ten seconds, not on a short run of
		// them: one configuration that always fails must not look like Graph being down while
		// other creates succeed. But a long unbroken run trips it too: when Graph goes down
		// after a busy spell, the window is full of successes and the share would take
		// seconds to reach, while the failures counted meanwhile dead-letter events for an
		// outage (TestProcessGraphOutage).
		Interval:     10 * time.Second,
		BucketPeriod: time.Second,
		Timeout:      w.opts.breakerTimeout,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= breakerMinRequests ||
				(c.Requests >= breakerMinRequests && c.TotalFailures*10 >= c.Requests*8)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			l.log.Warn("graph circuit breaker", zap.Stringer("from", from), zap.Stringer("to", to))
			l.figures().breakerState(to)
		},
	})
	return l
}

// breakerMinRequests is how many requests the breaker must see before it judges Graph, and
// how many failures in a row with no success between say Graph is down.
const breakerMinRequests = 10

func isLister(c Creator) bool {
	_, ok := c.(Lister)
	return ok
}

// serverAckWait is the consumer's AckWait as last read from the server.
func (l *lane) serverAckWait() time.Duration { return time.Duration(l.ackWait.Load()) }

// holdLimit is how many messages the lane holds at once. In multi-tenant mode a lane holds
// at most tenantHold of work at its rate, so a thousand lanes with backlogs hold a bounded
// number of messages between them.
func (w *Worker) holdLimit(l *lane) int {
	perSecond, burst := l.rate(w.cfg)
	ackWait := l.serverAckWait()
	n := w.cfg.holdLimit(perSecond, ackWait)
	if l.tenant != "" {
		n = min(n, max(minTenantHold, burst, int(math.Ceil(perSecond*tenantHold.Seconds()))))
	}
	// The consumer's max ack pending is every replica's: one replica holding all of it would
	// leave the others nothing to pull.
	return max(1, min(n, int(math.Ceil(maxAckPending*w.replicas.share()))))
}

// tenantHold is how much work, at its rate, a tenant's lane holds in multi-tenant mode, and
// minTenantHold the fewest messages it holds whatever its rate.
const (
	tenantHold    = 4 * time.Second
	minTenantHold = 4
)

// tenantConsumer is the durable consumer of a tenant's subject: the consumer setting and
// the tenant token, or a hash of the token when it could not be part of a consumer name.
func tenantConsumer(base, token string) string {
	if safeToken.MatchString(token) {
		return base + "-" + token
	}
	sum := sha256.Sum256([]byte(token))
	return base + "-x" + hex.EncodeToString(sum[:8])
}

// safeToken is a subject token that can be part of a consumer name as it is.
var safeToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// labelOf is how metrics name a tenant: its name in the tenants file, else its id; every
// tenant not listed is "unlisted", so that stray subjects cannot add series without bound.
func labelOf(token string, listed *listing) string {
	switch {
	case token == "":
		return ""
	case listed == nil:
		return unlistedLabel
	}
	return listed.tenant.Label()
}

// unlistedLabel is the tenant label of the figures of events for tenants not listed.
const unlistedLabel = "unlisted"

// failingCreator stands in for a tenant whose Graph client could not be made (a credential
// file that cannot be read): its events wait, like those of a worker that cannot sign in,
// and nothing is sent.
type failingCreator struct{ err error }

func (f failingCreator) Create(context.Context, graph.Request) (graph.Response, error) {
	return graph.Response{}, fmt.Errorf("%w: %w", graph.ErrNoToken, f.err)
}

// consumerConfig is the durable consumer of a lane.
func (w *Worker) consumerConfig(l *lane) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:       l.consumerName,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    -1, // handing a message back must never make JetStream drop it
		MaxAckPending: maxAckPending,
		FilterSubject: l.subject,
		Replicas:      w.cfg.Replicas,
	}
	if l.tenant != "" {
		// A tenant's consumer that no replica pulls from for this long is removed by the
		// server: tenants come and go, and stray subjects must not leave consumers behind.
		// The input stream is a work queue, so its events stay until a new consumer takes them.
		cc.InactiveThreshold = tenantConsumerInactive
	}
	return cc
}

// tenantConsumerInactive is how long a tenant's consumer lives with no one pulling from it.
const tenantConsumerInactive = time.Hour

// lanes are the worker's lanes by subject. Lanes added while the worker runs (a tenant added
// to the file, an unlisted subject found with events) start at once.
type lanes struct {
	mu        sync.Mutex
	bySubject map[string]*lane
	// ctx and start are what starts a lane, set once Run starts them; start is nil again
	// once Run stops.
	ctx     context.Context
	start   func(context.Context, *lane)
	running sync.WaitGroup
}

// getOrAdd returns the lane of a subject, adding (and starting) the one mk makes when there
// is none; added says which.
func (ls *lanes) getOrAdd(subject string, mk func() *lane) (l *lane, added bool) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l := ls.bySubject[subject]; l != nil {
		return l, false
	}
	l = mk()
	ls.bySubject[subject] = l
	if ls.start != nil {
		ls.launchLocked(l)
	}
	return l, true
}

func (ls *lanes) launchLocked(l *lane) {
	ctx, stop := context.WithCancel(ls.ctx)
	l.stop = stop
	ls.running.Add(1)
	start := ls.start // read under the lock: wait clears it while lanes run
	go func() {
		defer ls.running.Done()
		defer stop()
		start(ctx, l)
	}()
}

func (ls *lanes) get(subject string) *lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.bySubject[subject]
}

// remove forgets a lane and stops its pulling.
func (ls *lanes) remove(l *lane) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.bySubject[l.subject] == l {
		delete(ls.bySubject, l.subject)
	}
	if l.stop != nil {
		l.stop()
	}
}

func (ls *lanes) all() []*lane {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	out := make([]*lane, 0, len(ls.bySubject))
	for _, l := range ls.bySubject {
		out = append(out, l)
	}
	return out
}

func (ls *lanes) count() int {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return len(ls.bySubject)
}

// bound says every lane of a listed tenant is bound to its consumer.
func (ls *lanes) bound() bool {
	for _, l := range ls.all() {
		if l.listed.Load() != nil && !l.isBound() {
			return false
		}
	}
	return true
}

// run starts every lane, and those added later, with w.runLane until ctx is done.
func (ls *lanes) run(ctx, hard context.Context, wg *sync.WaitGroup, w *Worker) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	ls.ctx = ctx
	ls.start = func(ctx context.Context, l *lane) { w.runLane(ctx, hard, wg, l) }
	for _, l := range ls.bySubject {
		ls.launchLocked(l)
	}
}

// wait stops starting lanes and waits for every lane's pulling to end.
func (ls *lanes) wait() {
	ls.mu.Lock()
	ls.start = nil
	ls.mu.Unlock()
	ls.running.Wait()
}

// runLane binds a lane started while the worker runs and starts it at its learned level (Run
// does both before it is ready for the lanes it starts with), then pulls for it until ctx is
// done or the lane is stopped.
func (w *Worker) runLane(ctx, hard context.Context, wg *sync.WaitGroup, l *lane) {
	for !l.isBound() {
		if err := w.bindLane(ctx, l); err == nil {
			break
		} else if w.repairIfGone(l, err); sleep(ctx, time.Second) != nil {
			return
		}
	}
	if !l.paced {
		w.startPacer(ctx, hard, l)
	}
	w.pull(ctx, hard, wg, l)
}

// bindLane makes (or updates) the lane's durable consumer and binds the lane to it.
func (w *Worker) bindLane(ctx context.Context, l *lane) error {
	cons, err := w.js.CreateOrUpdateConsumer(ctx, w.cfg.Stream, w.consumerConfig(l))
	if err != nil {
		return fmt.Errorf("create consumer %s on %s: %w", l.consumerName, w.cfg.Stream, err)
	}
	if aw := cons.CachedInfo().Config.AckWait; aw > 0 {
		l.ackWait.Store(int64(aw))
		w.refreshAckWait()
	}
	l.setConsumer(cons)
	return nil
}

// refreshAckWait sets the worker's ack wait, which keep-alives follow, to the shortest of
// its consumers' as the server holds them.
func (w *Worker) refreshAckWait() {
	shortest := time.Duration(0)
	for _, l := range w.lanes.all() {
		if aw := l.serverAckWait(); shortest == 0 || aw < shortest {
			shortest = aw
		}
	}
	if shortest > 0 {
		w.ackWait.Store(int64(shortest))
	}
}
