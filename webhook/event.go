package webhook

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runmerge/runmerge"
)

// Event is one change event as deliveries and the stream send it: its
// position in the change log, what filters look at, and Body, the JSON
// {"id","eventType","tenantId","timestamp","data"}.
type Event struct {
	Position   int64
	ID         string
	Type       string // "person.created", "tenant.updated"
	TenantID   string
	Collection string // the record's collection; "" for tenant.* events
	EventIDs   []string
	At         time.Time
	Body       []byte
}

// eventBody writes the change event JSON of c.
func eventBody(c *runmerge.Change) []byte {
	b := make([]byte, 0, len(c.Data)+160)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, c.ID)
	b = append(b, `,"eventType":`...)
	b = strconv.AppendQuote(b, c.Type)
	b = append(b, `,"tenantId":`...)
	b = strconv.AppendQuote(b, c.TenantID)
	b = append(b, `,"timestamp":"`...)
	b = append(b, runmerge.FormatTime(c.Timestamp)...)
	b = append(b, `","data":`...)
	if len(c.Data) == 0 || !json.Valid(c.Data) {
		b = append(b, `null`...)
	} else {
		b = append(b, c.Data...)
	}
	return append(b, '}')
}

// WildcardEventType subscribes to every event type.
const WildcardEventType = "*"

// tenantKind is the kind of the tenant.* events.
const tenantKind = "tenant"

// EventTypes returns every change event type, sorted.
func EventTypes() []string {
	var out []string
	kinds := []string{tenantKind}
	for _, c := range runmerge.Collections() {
		kinds = append(kinds, c.Kind)
	}
	for _, k := range kinds {
		for _, op := range []string{runmerge.ChangeCreated, runmerge.ChangeUpdated, runmerge.ChangeDeleted} {
			out = append(out, k+"."+op)
		}
	}
	slices.Sort(out)
	return out
}

var knownEventTypes = func() map[string]bool {
	m := make(map[string]bool)
	for _, t := range EventTypes() {
		m[t] = true
	}
	return m
}()

// ValidEventType reports whether t is an event type or the wildcard.
func ValidEventType(t string) bool {
	return t == WildcardEventType || knownEventTypes[t]
}

// collectionOf returns the collection of an event type's records, "" for
// tenant.* events and types it does not know.
func collectionOf(eventType string) string {
	kind, _, _ := strings.Cut(eventType, ".")
	if c, ok := runmerge.CollectionByKind(kind); ok {
		return c.Name
	}
	return ""
}

// Visible reports whether p may read the change event e: a record change
// when p may read the record as it was after the change, a tenant.* event
// when p may read the tenant. The policy decides both.
func Visible(p *runmerge.Principal, e *Event) bool {
	if strings.HasPrefix(e.Type, tenantKind+".") {
		return runmerge.Authorize(p, runmerge.ActionTenantRead, runmerge.Target{TenantID: e.TenantID}) == nil
	}
	if e.Collection == "" {
		return false
	}
	return runmerge.Authorize(p, runmerge.ActionRecordRead,
		runmerge.Target{TenantID: e.TenantID, Collection: e.Collection, EventIDs: e.EventIDs}) == nil
}

// matchesTypes reports whether a subscription to types hears eventType.
func matchesTypes(types []string, eventType string) bool {
	for _, t := range types {
		if t == WildcardEventType || t == eventType {
			return true
		}
	}
	return false
}
