package graph

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hwstate/hwstate/internal/entratest"
)

// gatedTransport holds the first token request at its gate: a sign-in that callers queue
// behind for as long as the test wants.
type gatedTransport struct {
	next *entratest.Transport
	once *sync.Once
	gate func()
}

func (g gatedTransport) Do(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost {
		g.once.Do(g.gate)
	}
	return g.next.Do(r)
}

// Callers that waited for a sign-in that failed get its failure rather than each signing in
// again in turn: with an unreachable authority that took minutes and held shutdown.
func TestFailedSignInIsSharedByItsWaiters(t *testing.T) {
	auth := entratest.Start(t, "the-right-secret", time.Hour)
	clock := newFakeClock(time.Now())
	signingIn, fail := make(chan struct{}), make(chan struct{})
	transport := gatedTransport{next: auth.Transport(), once: new(sync.Once), gate: func() {
		close(signingIn)
		<-fail
		clock.Advance(time.Second) // the sign-in takes a second
	}}
	creds := ClientCredentials{Cloud: Clouds()[0], TenantID: testTenant, ClientID: testClient, Secret: canarySecret}
	tokens, err := NewCredentialTokens(creds, WithSignInTransport(transport), WithoutInstanceDiscovery(), WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	const callers = 20
	errs := make(chan error, callers)
	ask := func() {
		_, err := tokens.Token(context.Background(), false)
		errs <- err
	}
	go ask()
	<-signingIn
	// The others ask while the first signs in: each reads the clock as it asks, then waits.
	asked := clock.Reads()
	for range callers - 1 {
		go ask()
	}
	if !clock.awaitReads(asked+callers-1, 10*time.Second) {
		close(fail)
		t.Fatalf("%d of the %d other callers read the clock as they asked", clock.Reads()-asked, callers-1)
	}
	close(fail)
	for range callers {
		if err := <-errs; err == nil {
			t.Fatal("signed in with the wrong secret")
		}
	}
	if n := len(auth.Requests()); n != 1 {
		t.Errorf("%d sign-in requests for %d callers waiting together, want 1", n, callers)
	}
	// A caller that asks after the failure signs in again.
	if _, err := tokens.Token(context.Background(), false); err == nil {
		t.Fatal("signed in with the wrong secret")
	}
	if n := len(auth.Requests()); n != 2 {
		t.Errorf("%d sign-in requests after a later caller, want 2", n)
	}
}
