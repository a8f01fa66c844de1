package worker_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"

	"github.com/hwstate/hwstate/internal/natstest"
	"github.com/hwstate/hwstate/worker"
)

// syncClock is a fake time that the replicas' goroutines read while the test moves it.
type syncClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *syncClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *syncClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// tenantBucket is a ledger bucket on a test server, and a fake clock for its replicas.
func tenantBucket(t *testing.T) (jetstream.KeyValue, *syncClock) {
	t.Helper()
	ns := natstest.Start(t)
	_, js := natstest.Connect(t, ns.ClientURL())
	kv, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "LEDGER"})
	if err != nil {
		t.Fatal(err)
	}
	return kv, &syncClock{t: time.Unix(1e9, 0)}
}

// replica joins the replicas with a pacer for each tenant; killing it is a crash (its
// heartbeat stays in the bucket), its Stop a shutdown.
func replica(t *testing.T, kv jetstream.KeyValue, c *syncClock, owner string, tenants ...string) (r *worker.Replica, kill func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r = worker.StartReplica(ctx, kv, c.now, owner, tenants, 10*time.Millisecond, zaptest.NewLogger(t))
	t.Cleanup(r.Stop)
	return r, cancel
}

// eventually waits until cond holds, as replicas hear of each other through the bucket,
// asynchronously; it fails the test after 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	limit := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-limit:
			t.Fatalf("never: %s", what)
		}
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= want/100 }

// Replicas each hold an equal share of a tenant: a new one takes its part at once, a 429 one
// draws lowers the level for all, a replica that stops gives its part back at once, and one
// that dies gives it back when its heartbeat is stale.
func TestReplicasShareTheTenant(t *testing.T) {
	kv, c := tenantBucket(t)
	a, _ := replica(t, kv, c, "a", "")
	if got := a.Share(""); got != 1 {
		t.Fatalf("a replica alone has a share of %v, want 1", got)
	}
	b, killB := replica(t, kv, c, "b", "")
	if got := b.Share(""); got != 0.5 {
		t.Errorf("the second replica starts with a share of %v, want 1/2", got)
	}
	eventually(t, "the first replica halves its share", func() bool { return a.Share("") == 0.5 })

	// b's first 429 ends its slow start just under the rate that drew it, its half of the
	// 100/s both started at: the tenant takes 90/s.
	b.Throttled("", time.Millisecond)
	tenant := b.Level("") / b.Share("")
	if !near(tenant, 90) {
		t.Fatalf("b learned the tenant's level %v, want about 90", tenant)
	}
	eventually(t, "a takes the level b learned", func() bool { return near(a.Level(""), tenant/2) })

	// A third replica starts at its share of the level kept in the bucket.
	d, _ := replica(t, kv, c, "d", "")
	if got, want := d.Level(""), tenant/3; !near(got, want) {
		t.Errorf("a new replica's level %v, want its third of the tenant's, %v", got, want)
	}
	eventually(t, "a and b take a third each", func() bool { return a.Share("") == 1.0/3 && b.Share("") == 1.0/3 })

	d.Stop()
	eventually(t, "a replica that stops gives its part back at once", func() bool { return a.Share("") == 0.5 && b.Share("") == 0.5 })

	killB()
	c.advance(worker.ShareStale / 2)
	// a renews its heartbeat and counts again every 10 ms; b's is not yet stale.
	eventually(t, "a counts at the new time", func() bool { return a.Share("") == 0.5 })
	c.advance(worker.ShareStale)
	eventually(t, "a dead replica's part returns once its heartbeat is stale", func() bool { return a.Share("") == 1 })
	if got := a.Level(""); !near(got, tenant) {
		t.Errorf("a alone holds the level %v, want the tenant's %v", got, tenant)
	}
}

// Every tenant's level is its own: a 429 one replica draws for a tenant lowers that tenant's
// level at the other replicas, and no other tenant's; the share is the same for all tenants.
func TestReplicasShareEachTenantApart(t *testing.T) {
	kv, c := tenantBucket(t)
	a, _ := replica(t, kv, c, "a", "t1", "t2")
	b, _ := replica(t, kv, c, "b", "t1", "t2")
	eventually(t, "a halves its share of every tenant", func() bool { return a.Share("t1") == 0.5 && a.Share("t2") == 0.5 })
	b.Throttled("t1", time.Millisecond)
	eventually(t, "a takes t1's level", func() bool { return near(a.Level("t1"), b.Level("t1")) })
	if got := a.Level("t2"); got != 0 {
		t.Errorf("a learned a level %v for t2 from t1's 429", got)
	}
	for tenant, want := range map[string]string{"": "pacer.level", "t1": "pacer.level.t1"} {
		if got := worker.LevelKey(tenant); got != want {
			t.Errorf("tenant %q's level key %q, want %q", tenant, got, want)
		}
	}
}
