package graph

import (
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

const (
	// refreshMargin is how long before expiry a token is replaced, at most: a request
	// sent with it must still be valid when Graph reads it. MSAL, under azidentity, also
	// treats a token as expired 5 minutes early, so the two agree.
	refreshMargin = 5 * time.Minute
	// forceInterval coalesces forced refreshes: the 401s of every request in flight
	// with a revoked token arrive together, and one new token answers them all.
	forceInterval = time.Second
)

// ErrCredentials is wrapped by NewCredentialTokens' errors: the client credentials are
// missing, half-given or unreadable. Its messages never contain the secret.
var ErrCredentials = errors.New("graph: client credentials")

// ClientCredentials are an app registration's OAuth 2.0 client credentials in one national
// cloud: its tenant, its client id, and exactly one of a client secret, a certificate or a
// federated token file.
type ClientCredentials struct {
	Cloud    Cloud
	TenantID string
	ClientID string
	Secret   string
	// Certificate is PEM holding the certificate (chain) and its unencrypted private key.
	Certificate []byte
	// FederatedTokenFile is Azure Workload Identity's: a file holding a token of another
	// issuer (a Kubernetes service account token, which the kubelet keeps current) that the
	// app registration or managed identity trusts through a federated credential. It is read
	// anew as it ages, and no secret is held.
	FederatedTokenFile string
}

// SignInOption changes how CredentialTokens reach the sign-in authority.
type SignInOption func(*signInOptions)

type signInOptions struct {
	transport   policy.Transporter
	noDiscovery bool
	now         func() time.Time
	failed      func(error)
}

// WithSignInTransport sends sign-in requests through t instead of azcore's default HTTP
// client (which honours HTTPS_PROXY and NO_PROXY).
func WithSignInTransport(t policy.Transporter) SignInOption {
	return func(o *signInOptions) { o.transport = t }
}

// WithoutInstanceDiscovery skips asking Microsoft Entra whether the cloud's authority is
// one it knows, for private authorities (a test's local token endpoint): the caller vouches
// for the authority instead.
func WithoutInstanceDiscovery() SignInOption {
	return func(o *signInOptions) { o.noDiscovery = true }
}

// WithClock makes CredentialTokens take the time from now instead of time.Now, wherever
// time decides: whether the token held is due for refresh, whether a forced refresh comes
// right after a sign-in, and whether a failed sign-in is the one a caller waited for. A
// test can then let a token age without waiting. The token's expiry itself is azidentity's,
// computed from the real clock and the lifetime the authority grants.
func WithClock(now func() time.Time) SignInOption {
	return func(o *signInOptions) { o.now = now }
}

// OnSignInFailure has f called with the error of every sign-in that fails (one per request
// to the authority, not one per caller waiting for it), so a process can count them. f runs
// with the token source locked: it must return quickly and not ask for a token.
func OnSignInFailure(f func(error)) SignInOption {
	return func(o *signInOptions) { o.failed = f }
}

// CredentialTokens is a TokenSource that signs in with client credentials through
// azidentity, for the scope {Graph root}/.default of the cloud. It holds the token it got
// until shortly before it expires (at most 5 minutes before, at half its lifetime for
// short-lived ones), so one sign-in serves many creates; a forced refresh signs in anew,
// bypassing every cache. It is safe for concurrent use; callers waiting for a token share
// one sign-in.
type CredentialTokens struct {
	scope         string
	newCredential func() (azcore.TokenCredential, error)
	secret        string // only to keep it out of errors
	now           func() time.Time
	failed        func(error)

	mu        sync.Mutex
	cred      azcore.TokenCredential
	token     string
	fetchedAt time.Time
	refreshAt time.Time
	failedAt  time.Time // when the last sign-in failed, with failure
	failure   error
}

// NewCredentialTokens checks creds and returns their TokenSource; it signs in on the first
// Token call. An error wraps ErrCredentials.
func NewCredentialTokens(creds ClientCredentials, opts ...SignInOption) (*CredentialTokens, error) {
	o := signInOptions{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	var missing []string
	for _, f := range []struct{ name, value string }{
		{"a tenant id", creds.TenantID}, {"a client id", creds.ClientID}, {"the cloud's sign-in authority", creds.Cloud.SignIn.ActiveDirectoryAuthorityHost},
	} {
		if strings.TrimSpace(f.value) == "" {
			missing = append(missing, f.name)
		}
	}
	given := 0
	for _, set := range []bool{creds.Secret != "", len(creds.Certificate) > 0, creds.FederatedTokenFile != ""} {
		if set {
			given++
		}
	}
	switch {
	case given > 1:
		return nil, fmt.Errorf("%w: more than one of a client secret, a certificate and a federated token file were given; give one", ErrCredentials)
	case given == 0:
		missing = append(missing, "a client secret, a certificate or a federated token file")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing %s", ErrCredentials, strings.Join(missing, ", "))
	}
	client := azcore.ClientOptions{Cloud: creds.Cloud.SignIn, Transport: o.transport}
	tokens := &CredentialTokens{scope: creds.Cloud.Scope(), secret: creds.Secret, now: o.now, failed: o.failed}
	switch {
	case creds.Secret != "":
		tokens.newCredential = func() (azcore.TokenCredential, error) {
			return azidentity.NewClientSecretCredential(creds.TenantID, creds.ClientID, creds.Secret,
				&azidentity.ClientSecretCredentialOptions{ClientOptions: client, DisableInstanceDiscovery: o.noDiscovery})
		}
	case creds.FederatedTokenFile != "":
		// Read now only to fail at start-up when it is missing; azidentity reads it as it ages.
		if _, err := os.ReadFile(creds.FederatedTokenFile); err != nil {
			return nil, fmt.Errorf("%w: the federated token file: %w", ErrCredentials, err)
		}
		tokens.newCredential = func() (azcore.TokenCredential, error) {
			return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
				ClientOptions: client, TenantID: creds.TenantID, ClientID: creds.ClientID,
				TokenFilePath: creds.FederatedTokenFile, DisableInstanceDiscovery: o.noDiscovery})
		}
	default:
		certs, key, err := parseCertificate(creds.Certificate)
		if err != nil {
			return nil, err
		}
		tokens.newCredential = func() (azcore.TokenCredential, error) {
			return azidentity.NewClientCertificateCredential(creds.TenantID, creds.ClientID, certs, key,
				&azidentity.ClientCertificateCredentialOptions{ClientOptions: client, DisableInstanceDiscovery: o.noDiscovery})
		}
	}
	// Built now, so a malformed tenant id fails at start-up, not at the first create.
	cred, err := tokens.newCredential()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	tokens.cred = cred
	return tokens, nil
}

func parseCertificate(pemData []byte) ([]*x509.Certificate, crypto.PrivateKey, error) {
	certs, key, err := azidentity.ParseCertificates(pemData, nil)
	if err != nil {
		// The parser's message names what is wrong, never the key's bytes.
		return nil, nil, fmt.Errorf("%w: reading the certificate: %w", ErrCredentials, err)
	}
	if key == nil {
		return nil, nil, fmt.Errorf("%w: the certificate PEM holds no private key", ErrCredentials)
	}
	return certs, key, nil
}

// Token returns the token held, or signs in for a new one when it is due for refresh or
// force is set. A forced refresh within a second of the last sign-in returns that token:
// it is already the new one the caller asks for.
func (c *CredentialTokens) Token(ctx context.Context, force bool) (string, error) {
	asked := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failedAt.After(asked) {
		// The sign-in this caller waited for failed: signing in again, each waiter in turn,
		// would hold every create (and shutdown) for minutes while the authority is down.
		return "", c.failure
	}
	now := c.now()
	switch {
	case c.token == "":
	case !force && now.Before(c.refreshAt):
		return c.token, nil
	case force && now.Sub(c.fetchedAt) < forceInterval:
		return c.token, nil
	}
	if force {
		// azidentity keeps its own cache and offers no way around it but a new credential.
		cred, err := c.newCredential()
		if err != nil {
			return "", c.signInError(err)
		}
		c.cred = cred
	}
	at, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{c.scope}})
	if err != nil {
		c.failedAt, c.failure = c.now(), c.signInError(err)
		return "", c.failure
	}
	c.token, c.fetchedAt = at.Token, now
	c.refreshAt = at.ExpiresOn.Add(-min(refreshMargin, at.ExpiresOn.Sub(now)/2))
	if !at.RefreshOn.IsZero() && at.RefreshOn.Before(c.refreshAt) {
		c.refreshAt = at.RefreshOn
	}
	return c.token, nil
}

// signInError wraps a sign-in failure and reports it to OnSignInFailure's f.
func (c *CredentialTokens) signInError(err error) error {
	err = c.redact(err)
	if c.failed != nil {
		c.failed(err)
	}
	return err
}

// redact wraps err. azidentity's messages carry the authority's answer, which should never
// echo the secret; should one do so anyway (a proxy's error page), the message is kept
// without it and the cause is not wrapped.
func (c *CredentialTokens) redact(err error) error {
	if c.secret != "" && strings.Contains(err.Error(), c.secret) {
		return fmt.Errorf("graph: signing in: %s", strings.ReplaceAll(err.Error(), c.secret, "[secret]"))
	}
	return fmt.Errorf("graph: signing in: %w", err)
}
