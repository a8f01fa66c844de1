package emulator

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

const (
	// defaultPageSize is a page's size without $top; maxTop is the largest $top served,
	// as Graph commonly allows.
	defaultPageSize = 100
	maxTop          = 999
)

// listPage is the JSON of one page of a list.
type listPage struct {
	Context  string            `json:"@odata.context"`
	Value    []json.RawMessage `json:"value"`
	NextLink string            `json:"@odata.nextLink,omitempty"`
}

// list answers GET {prefix}/deviceManagement/hardwareConfigurations/{id}/userRunStates,
// as the Emulator's documentation says, once the request has passed admit.
func (tn *Tenant) list(st *state, r *http.Request, base, configIDText string) subResponse {
	if _, _, refused := tn.arrive(st, r.Header); refused != nil {
		return *refused
	}
	configID, refused := configuration(st, configIDText)
	if refused != nil {
		return *refused
	}
	q, msg := parseListQuery(r.URL.RawQuery, &st.cfg)
	if msg != "" {
		return failure(http.StatusBadRequest, "BadRequest", msg)
	}
	if q.hasFilter && st.cfg.RefuseFilter != 0 {
		if st.cfg.RefuseFilter == http.StatusNotImplemented {
			return failure(http.StatusNotImplemented, "NotImplemented", "Filtering is not implemented for userRunStates (emulated).")
		}
		return failure(http.StatusBadRequest, "BadRequest", "Invalid filter clause: filtering is not supported on userRunStates (emulated).")
	}

	matches := tn.userStates(configID, q)
	if q.skip > len(matches) {
		return failure(http.StatusBadRequest, "BadRequest", "The $skiptoken is not valid.")
	}
	end := min(q.skip+q.size, len(matches))
	collection := base + "/deviceManagement/hardwareConfigurations/" + configIDText + "/userRunStates"
	page := listPage{
		Context: base + "/$metadata#deviceManagement/hardwareConfigurations('" + configIDText + "')/userRunStates",
		Value:   matches[q.skip:end],
	}
	if end < len(matches) {
		page.NextLink = collection + "?" + q.next(end)
	}
	body, err := json.Marshal(page)
	if err != nil { // entities are the emulator's own JSON: cannot fail
		return failure(http.StatusInternalServerError, "InternalServerError", err.Error())
	}
	return subResponse{status: http.StatusOK, body: body}
}

// userStates returns the entities of a configuration that q's filter keeps.
func (tn *Tenant) userStates(configID uuid.UUID, q listQuery) []json.RawMessage {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	all := tn.entities[configID]
	out := make([]json.RawMessage, 0, len(all))
	for _, s := range all {
		if !q.hasFilter || strings.EqualFold(s.upn, q.upn) {
			out = append(out, s.entity)
		}
	}
	return out
}

// listQuery is a list's query, read.
type listQuery struct {
	filter    string // as sent, for the next link
	hasFilter bool
	upn       string
	top       string // as sent, for the next link; "" without $top
	size      int    // the page size
	skip      int    // the offset $skiptoken stands for
}

// parseListQuery reads a list's query; msg says what Graph would refuse. A filter is read
// even when RefuseFilter will refuse it: a malformed one is 400 either way.
func parseListQuery(raw string, cfg *Config) (q listQuery, msg string) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return q, "The query is malformed: " + err.Error()
	}
	for name, v := range values {
		switch {
		case len(v) > 1:
			return q, "The query option " + name + " is given more than once."
		case name == "$filter", name == "$top", name == "$skiptoken":
		case strings.HasPrefix(name, "$"):
			return q, "The query option " + name + " is not supported on userRunStates (emulated)."
		}
	}
	q.size = defaultPageSize
	if f, ok := values["$filter"]; ok {
		q.filter, q.hasFilter = f[0], true
		if q.upn, ok = parseUPNFilter(q.filter); !ok {
			return q, "Invalid filter clause: only upn eq '...' is supported (emulated)."
		}
	}
	if t, ok := values["$top"]; ok {
		n, err := strconv.Atoi(t[0])
		if err != nil || n < 1 || n > maxTop {
			return q, "The $top query option must be an integer from 1 to " + strconv.Itoa(maxTop) + "."
		}
		q.top, q.size = t[0], n
	}
	if cfg.PageSize > 0 {
		q.size = min(q.size, cfg.PageSize)
	}
	if s, ok := values["$skiptoken"]; ok {
		if q.skip, ok = parseSkipToken(s[0]); !ok {
			return q, "The $skiptoken is not valid."
		}
	}
	return q, ""
}

// parseUPNFilter reads the one filter served, upn eq 'value' (keywords in any case, a '
// inside the value doubled), and returns the value.
func parseUPNFilter(filter string) (string, bool) {
	fields := strings.Fields(filter)
	if len(fields) < 3 || !strings.EqualFold(fields[0], "upn") || !strings.EqualFold(fields[1], "eq") {
		return "", false
	}
	// The literal is everything after "eq", spaces inside it included.
	_, literal, _ := strings.Cut(filter, fields[1])
	literal = strings.TrimSpace(literal)
	if len(literal) < 2 || literal[0] != '\'' || literal[len(literal)-1] != '\'' {
		return "", false
	}
	inner := literal[1 : len(literal)-1]
	var b strings.Builder
	for i := 0; i < len(inner); i++ {
		if inner[i] == '\'' {
			if i+1 == len(inner) || inner[i+1] != '\'' {
				return "", false // a lone quote ends the literal early: more follows it
			}
			i++
		}
		b.WriteByte(inner[i])
	}
	return b.String(), true
}

// next is the query of the page starting at offset, keeping the filter and $top.
func (q listQuery) next(offset int) string {
	var parts []string
	if q.hasFilter {
		parts = append(parts, "$filter="+queryEscape(q.filter))
	}
	if q.top != "" {
		parts = append(parts, "$top="+q.top)
	}
	return strings.Join(append(parts, "$skiptoken="+skipToken(offset)), "&")
}

// queryEscape escapes a query value with %20 for a space, as Graph writes its links.
func queryEscape(s string) string {
	return strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
}

// skipToken is opaque to clients, as Graph's are: they follow nextLink, never make one.
func skipToken(offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("offset:" + strconv.Itoa(offset)))
}

func parseSkipToken(token string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimPrefix(string(b), "offset:"))
	if err != nil || n < 0 || !strings.HasPrefix(string(b), "offset:") {
		return 0, false
	}
	return n, true
}
