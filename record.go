package runmerge

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
)

// Record is one record of a collection: an event, a person, a session and
// so on. Data holds the fields the client sets (sourceRawData aside, which
// lives in RawData); the server sets the rest.
type Record struct {
	ID         string
	TenantID   string
	Collection string
	Seq        int64 // position in the tenant's change order
	Version    int64
	CreatedAt  time.Time
	UpdatedAt  time.Time
	DeletedAt  *time.Time

	// Data is the client-set fields as a JSON object.
	Data json.RawMessage
	// RawData is sourceRawData, a JSON object, or nil. It is loaded only
	// when asked for.
	RawData json.RawMessage
	// EventIDs are the events the record is linked to, for the policy: its
	// own id for an event, else its eventId and relationships.linkedEventIds.
	EventIDs []string
}

// ETag returns the record's entity tag: its version, quoted.
func (r *Record) ETag() string {
	return `"` + strconv.FormatInt(r.Version, 10) + `"`
}

// Deleted reports whether the record is a tombstone.
func (r *Record) Deleted() bool { return r.DeletedAt != nil }

// AppendJSON appends the record as the API shows it: a tombstone as
// {"id","tenantId","deleted":true,"deletedAt","updatedAt"}, a live record as
// its fields with the server's fields first, sourceRawData only when
// withRaw is set.
func (r *Record) AppendJSON(b []byte, withRaw bool) []byte {
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, r.ID)
	b = append(b, `,"tenantId":`...)
	b = strconv.AppendQuote(b, r.TenantID)
	if r.DeletedAt != nil {
		b = append(b, `,"deleted":true,"deletedAt":"`...)
		b = append(b, FormatTime(*r.DeletedAt)...)
		b = append(b, `","updatedAt":"`...)
		b = append(b, FormatTime(r.UpdatedAt)...)
		return append(b, `"}`...)
	}
	b = append(b, `,"createdAt":"`...)
	b = append(b, FormatTime(r.CreatedAt)...)
	b = append(b, `","updatedAt":"`...)
	b = append(b, FormatTime(r.UpdatedAt)...)
	b = append(b, `","version":`...)
	b = strconv.AppendInt(b, r.Version, 10)
	if inner := objectMembers(r.Data); len(inner) > 0 {
		b = append(b, ',')
		b = append(b, inner...)
	}
	if withRaw && len(r.RawData) > 0 {
		b = append(b, `,"sourceRawData":`...)
		b = append(b, r.RawData...)
	}
	return append(b, '}')
}

// objectMembers returns the inside of a JSON object, without its braces.
func objectMembers(obj json.RawMessage) []byte {
	obj = bytes.TrimSpace(obj)
	if len(obj) < 2 {
		return nil
	}
	return bytes.TrimSpace(obj[1 : len(obj)-1])
}

// MarshalJSON writes the record without sourceRawData.
func (r *Record) MarshalJSON() ([]byte, error) {
	return r.AppendJSON(nil, false), nil
}

// Change event types for tenants; records use "<kind>.created" and so on.
const (
	ChangeCreated = "created"
	ChangeUpdated = "updated"
	ChangeDeleted = "deleted"
)

// Change is one change event: a record (or a tenant) created, updated or
// deleted. It is stored in the same transaction as the change itself.
type Change struct {
	Seq       int64 // position in the tenant's change log
	ID        string
	Type      string // "person.created"
	TenantID  string
	Timestamp time.Time
	Data      json.RawMessage // the record as the API shows it
	EventIDs  []string        // the events the changed record is linked to
}
