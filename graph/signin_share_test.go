package graph

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hwstate/hwstate/internal/entratest"
)

// slowTransport delays every sign-in request, so that callers queue behind one.
type slowTransport struct {
	next  *entratest.Transport
	delay time.Duration
}

func (s slowTransport) Do(r *http.Request) (*http.Response, error) {
	time.Sleep(s.delay)
	return s.next.Do(r)
}

// Callers that waited for a sign-in that failed get its failure rather than each signing in
// again in turn: with an unreachable authority that took minutes and held shutdown.
func TestFailedSignInIsSharedByItsWaiters(t *testing.T) {
	auth := entratest.Start(t, "the-right-secret", time.Hour)
	creds := ClientCredentials{Cloud: Clouds()[0], TenantID: testTenant, ClientID: testClient, Secret: canarySecret}
	tokens, err := NewCredentialTokens(creds,
		WithSignInTransport(slowTransport{auth.Transport(), 300 * time.Millisecond}), WithoutInstanceDiscovery())
	if err != nil {
		t.Fatal(err)
	}
	const callers = 20
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for range callers {
		wg.Go(func() {
			_, err := tokens.Token(context.Background(), false)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err == nil {
			t.Fatal("signed in with the wrong secret")
		}
	}
	// All asked within the first sign-in's 300 ms; a scheduler slow enough to start one
	// after it failed makes that one sign in anew, hence the tolerance.
	if n := len(auth.Requests()); n > callers/4 {
		t.Errorf("%d sign-in requests for %d callers waiting together, want about 1", n, callers)
	}
	// A caller that asks after the failure signs in again.
	before := len(auth.Requests())
	if _, err := tokens.Token(context.Background(), false); err == nil {
		t.Fatal("signed in with the wrong secret")
	}
	if after := len(auth.Requests()); after != before+1 {
		t.Errorf("%d sign-in requests for a later caller, want 1", after-before)
	}
}
