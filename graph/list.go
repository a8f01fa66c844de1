package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hwstate/hwstate/schema"
)

// ErrListUnavailable is wrapped by ListUserStates' error when a configuration's user
// states cannot be listed, so that looking before creating is impossible and the caller
// creates anyway (at least once, CONTRACT section 3): Graph answered 403, 404, 405 or
// another 4xx that retrying cannot change (401, 408, 429 excepted), refused the unfiltered
// list too (400 or 501), or sent a 200 that is not a user state collection, a page over
// 8 MiB, a nextLink to another host, or more than 1,000 pages. The Response of the
// answer that said so, if there was one, comes with it.
var ErrListUnavailable = errors.New("graph: user states cannot be listed")

const (
	// maxListPages bounds a listing: 1,000 pages of 999 are more user states than a
	// configuration has, and a nextLink that loops ends here.
	maxListPages = 1000
	// maxListPage bounds a page's body: 999 entities with long names are about 3 MiB.
	maxListPage = 8 << 20
	// unfilteredTop is the page size asked for when Graph refuses $filter: the most
	// Graph commonly allows, so that the fewest requests go to the listing.
	unfilteredTop = "999"
)

// ListRequest is one lookup of a user's states in a configuration.
type ListRequest struct {
	// ConfigurationID is the hardwareConfiguration's id; anything but a GUID is refused
	// without sending, as by Create.
	ConfigurationID string
	// UPN is the user whose states are wanted.
	UPN string
	// ClientRequestID is the client-request-id header of every page's request; "" means
	// a fresh random one for the listing.
	ClientRequestID string
	// Pace, when set, is called before each request of the listing, the first included;
	// its error ends the listing and is returned. Each page is a Graph request that
	// counts against the tenant's limits: the caller's rate limiter goes here.
	Pace func(ctx context.Context) error
}

// UserState is a hardwareConfigurationUserState as Graph lists it.
type UserState struct {
	ID        string `json:"id"`
	UPN       string `json:"upn"`
	UserEmail string `json:"userEmail"`
	UserName  string `json:"userName"`
	// LastStateUpdateDateTime is as Graph sent it, which may be another writing of
	// the instant that was created (Graph may answer in UTC what was sent as -08:00).
	LastStateUpdateDateTime string `json:"lastStateUpdateDateTime"`

	SuccessfulDeviceCount    int32 `json:"successfulDeviceCount"`
	FailedDeviceCount        int32 `json:"failedDeviceCount"`
	PendingDeviceCount       int32 `json:"pendingDeviceCount"`
	ErrorDeviceCount         int32 `json:"errorDeviceCount"`
	NotApplicableDeviceCount int32 `json:"notApplicableDeviceCount"`
	UnknownDeviceCount       int32 `json:"unknownDeviceCount"`
}

// Matches reports whether s is what a create of want would have made (CONTRACT section
// 3): upn, userEmail and userName equal byte for byte, the six counts equal, and
// lastStateUpdateDateTime the same instant (both read as RFC 3339, compared with
// time.Equal; a value that does not parse matches nothing). The UPN is compared exactly
// here, though ListUserStates selects UPNs ignoring case as Graph does: an entity that
// differs from the create in any way, case included, is another state report.
func (s *UserState) Matches(want *schema.UserState) bool {
	if s.UPN != want.UPN || s.UserEmail != want.UserEmail || s.UserName != want.UserName ||
		s.SuccessfulDeviceCount != want.SuccessfulDeviceCount || s.FailedDeviceCount != want.FailedDeviceCount ||
		s.PendingDeviceCount != want.PendingDeviceCount || s.ErrorDeviceCount != want.ErrorDeviceCount ||
		s.NotApplicableDeviceCount != want.NotApplicableDeviceCount || s.UnknownDeviceCount != want.UnknownDeviceCount {
		return false
	}
	got, err := parseDateTime(s.LastStateUpdateDateTime)
	if err != nil {
		return false
	}
	sent, err := parseDateTime(want.LastStateUpdateDateTime)
	return err == nil && got.Equal(sent)
}

// parseDateTime reads an RFC 3339 date-time as schema accepts it: the fraction has up to
// 7 digits (Graph's .NET ticks), and RFC 3339 allows a lower-case t and z, which
// time.Parse does not.
func parseDateTime(s string) (time.Time, error) {
	return time.Parse(time.RFC3339Nano, strings.ToUpper(s))
}

// ListUserStates lists the user states of req.ConfigurationID whose upn is req.UPN,
// ignoring case as Graph does for UPNs, in Graph's order:
//
//	GET {BaseURL}/deviceManagement/hardwareConfigurations/{id}/userRunStates?$filter=upn%20eq%20'{upn}'
//
// following @odata.nextLink to the last page, as long as it stays on the host of the page
// that gave it: the token goes to no other host. If Graph refuses the filter (400 or 501)
// the collection is listed again without it ($top=999, every page), and the UPNs are
// selected here; they are checked here in any case, so a Graph that ignores $filter
// does no harm. Tokens, the forced refresh after a 401 or 403 and Timeout (per page) work
// as for Create.
//
// The Response is the last answer read: a 200 (Class Listed) when the listing is
// complete, else the first answer that was not a 200, with its Class, Retry-After and
// error as for a create, and nil states: the caller paces, retries (the whole listing)
// and feeds its breaker with it as with a create's. The error is that of Create for a
// request without an answer (never ErrAmbiguous: a list runs nothing), Pace's, or
// ErrListUnavailable with the Response that said so. Errors never hold the UPN.
func (c *Client) ListUserStates(ctx context.Context, req ListRequest) ([]UserState, Response, error) {
	if !schema.IsGUID(req.ConfigurationID) {
		return nil, Response{}, fmt.Errorf("%w: %q", ErrInvalidConfigurationID, req.ConfigurationID)
	}
	if req.ClientRequestID == "" {
		req.ClientRequestID = uuid.NewString()
	}
	collection := c.url("/" + userRunStatesPath(req.ConfigurationID))
	states, resp, err := c.listPages(ctx, req, collection+"?"+upnFilter(req.UPN))
	if err == nil && refusesQuery(resp.Status) {
		// This collection does not take $filter here: read it all.
		states, resp, err = c.listPages(ctx, req, collection+"?$top="+unfilteredTop)
		if err == nil && refusesQuery(resp.Status) {
			return nil, resp, fmt.Errorf("%w: Graph answered %d to the unfiltered list", ErrListUnavailable, resp.Status)
		}
	}
	if err == nil && listUnavailable(resp.Status, resp.Class) {
		return nil, resp, fmt.Errorf("%w: Graph answered %d", ErrListUnavailable, resp.Status)
	}
	return states, resp, err
}

// refusesQuery reports whether Graph refused a list's query ($filter or $top).
func refusesQuery(status int) bool {
	return status == http.StatusBadRequest || status == http.StatusNotImplemented
}

// listUnavailable reports whether a list's answer says the listing cannot work,
// whatever the caller waits for: 403 (no read permission, after the forced refresh), 404,
// 405, and every 4xx that Classify calls Rejected.
func listUnavailable(status int, class Class) bool {
	return status == http.StatusForbidden || status == http.StatusMethodNotAllowed || class == Rejected
}

// upnFilter is the $filter query parameter selecting upn, URL-encoded with spaces as %20.
func upnFilter(upn string) string {
	// OData writes a ' inside a string literal as ''.
	expr := "upn eq '" + strings.ReplaceAll(upn, "'", "''") + "'"
	// QueryEscape writes a space as + and a + as %2B, so every + left is a space.
	return "$filter=" + strings.ReplaceAll(url.QueryEscape(expr), "+", "%20")
}

// listPage is one page of a collection.
type listPage struct {
	Value    []UserState `json:"value"`
	NextLink string      `json:"@odata.nextLink"`
}

// listPages reads the collection from first to its last page, keeping the states of
// req.UPN. It stops at the first answer that is not a 200 and returns it, with nil
// states and no error.
func (c *Client) listPages(ctx context.Context, req ListRequest, first string) ([]UserState, Response, error) {
	var (
		states []UserState
		resp   Response
	)
	link := first
	for page := 1; page <= maxListPages; page++ {
		if req.Pace != nil {
			if err := req.Pace(ctx); err != nil {
				return nil, Response{}, err
			}
		}
		a, err := c.do(ctx, call{
			what: "list", method: http.MethodGet, url: link,
			clientRequestID: req.ClientRequestID, limit: maxListPage,
		})
		if errors.Is(err, errTooLarge) {
			return nil, Response{}, fmt.Errorf("%w: page %d: %w", ErrListUnavailable, page, err)
		}
		if err != nil {
			return nil, Response{}, err
		}
		resp = newResponse(a.status, a.header, a.body, time.Now())
		if a.status != http.StatusOK {
			return nil, resp, nil
		}
		resp.Class = Listed
		var p listPage
		if err := json.Unmarshal(a.body, &p); err != nil {
			return nil, resp, fmt.Errorf("%w: page %d is not a user state collection: %w", ErrListUnavailable, page, err)
		}
		if p.Value == nil {
			return nil, resp, fmt.Errorf("%w: page %d has no value array", ErrListUnavailable, page)
		}
		for _, s := range p.Value {
			if strings.EqualFold(s.UPN, req.UPN) {
				states = append(states, s)
			}
		}
		if p.NextLink == "" {
			return states, resp, nil
		}
		if link, err = nextPage(link, p.NextLink); err != nil {
			return nil, resp, fmt.Errorf("%w: page %d: %w", ErrListUnavailable, page, err)
		}
	}
	return nil, resp, fmt.Errorf("%w: more than %d pages", ErrListUnavailable, maxListPages)
}

// nextPage is the URL of the page after current, given current's @odata.nextLink, or an
// error if that leads to another scheme or host: the token is for Graph alone.
func nextPage(current, next string) (string, error) {
	cur, err := url.Parse(current)
	if err != nil {
		return "", fmt.Errorf("the page's URL: %w", redactQuery(err))
	}
	n, err := cur.Parse(next) // Graph's nextLink is absolute; a relative one is resolved
	if err != nil {
		return "", errors.New("@odata.nextLink is not a URL")
	}
	if n.Scheme != cur.Scheme || !strings.EqualFold(n.Host, cur.Host) {
		return "", fmt.Errorf("@odata.nextLink leads to %s://%s, not %s://%s", n.Scheme, n.Host, cur.Scheme, cur.Host)
	}
	return n.String(), nil
}
