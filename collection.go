package runmerge

import "strings"

// The collections of event data.
const (
	CollectionEvents     = "events"
	CollectionPeople     = "people"
	CollectionSessions   = "sessions"
	CollectionExhibitors = "exhibitors"
	CollectionSponsors   = "sponsors"
	CollectionTickets    = "tickets"
	CollectionResources  = "resources"
)

// CollectionNames lists the collections in the order the API documents them.
var CollectionNames = []string{
	CollectionEvents,
	CollectionPeople,
	CollectionSessions,
	CollectionExhibitors,
	CollectionSponsors,
	CollectionTickets,
	CollectionResources,
}

// FieldType is the JSON type of a field's value.
type FieldType string

// Field types. A datetime is a JSON string holding an RFC 3339 date-time; an
// integer is a JSON number without a fractional part.
const (
	TypeString   FieldType = "string"
	TypeInteger  FieldType = "integer"
	TypeNumber   FieldType = "number"
	TypeBoolean  FieldType = "boolean"
	TypeDatetime FieldType = "datetime"
	TypeObject   FieldType = "object"
	TypeArray    FieldType = "array"
	TypeAny      FieldType = "any" // any JSON value: customFields fieldValue
)

// Formats a string field may be held to.
const (
	FormatEmail    = "email"    // an e-mail address such as ada@example.com
	FormatURL      = "url"      // an absolute http or https URL
	FormatTimeZone = "timezone" // an IANA time zone name such as Europe/Berlin
	FormatCurrency = "currency" // an ISO 4217 currency code such as EUR
	FormatDatetime = "datetime" // an RFC 3339 date-time
)

// DefaultMaxLength is the most characters a string field may hold when its
// MaxLength is zero.
const DefaultMaxLength = 1000

// Field describes one member of a record or of an object inside a record.
// Validation, storage, list filters and the API description all read it.
type Field struct {
	Name       string     // JSON name, camelCase
	Type       FieldType  // the JSON type of its value
	Required   bool       // required on create, and on every later version
	Enum       []string   // for strings: the allowed values (nil: any)
	Format     string     // for strings: one of the Format constants ("" none)
	Min        *float64   // for integers and numbers: the minimum (nil: none)
	MaxLength  int        // for strings: the most characters (0: DefaultMaxLength)
	Fields     []Field    // for objects: the members (nil: any object)
	Items      *Field     // for arrays: what each element is
	Filterable bool       // a list parameter of the same name filters on it
	Searchable bool       // the q list parameter searches its text
	Default    func() any // the value set on create when the field is absent
}

// maxLength is the most characters a string value of f may hold.
func (f *Field) maxLength() int {
	if f.MaxLength > 0 {
		return f.MaxLength
	}
	return DefaultMaxLength
}

// Range is a rule between two datetime fields of a record: End may not be
// before Start. Errors point at End.
type Range struct {
	Start, End string
}

// Collection describes one collection of event data.
type Collection struct {
	Name   string  // the collection's name in URLs, such as "events"
	Kind   string  // the singular in change event types, such as "event"
	Fields []Field // the fields of this collection; CommonFields come on top
	Ranges []Range // pairs of datetime fields that must be in order
}

// Field returns the description of the top-level field name of c's records,
// looking at c's own fields and the common fields. Server-set fields are not
// fields in this sense.
func (c *Collection) Field(name string) (*Field, bool) {
	for i := range c.Fields {
		if c.Fields[i].Name == name {
			return &c.Fields[i], true
		}
	}
	for i := range commonFields {
		if commonFields[i].Name == name {
			return &commonFields[i], true
		}
	}
	return nil, false
}

// AllFields returns every field a client may set on c's records: c's own
// fields, then the common fields.
func (c *Collection) AllFields() []Field {
	all := make([]Field, 0, len(c.Fields)+len(commonFields))
	all = append(all, c.Fields...)
	return append(all, commonFields...)
}

// Collections returns the collections in the order the API documents them.
func Collections() []*Collection {
	return append([]*Collection(nil), collections...)
}

// CollectionByName returns the collection called name, such as "people".
func CollectionByName(name string) (*Collection, bool) {
	for _, c := range collections {
		if c.Name == name {
			return c, true
		}
	}
	return nil, false
}

// CollectionByKind returns the collection whose records are of kind, the
// singular used in change event types, such as "person".
func CollectionByKind(kind string) (*Collection, bool) {
	for _, c := range collections {
		if c.Kind == kind {
			return c, true
		}
	}
	return nil, false
}

// CommonFields returns the fields a client may set on a record of every
// collection: sourceId, remoteId, customFields, sourceCustomFields,
// relationships and sourceRawData.
func CommonFields() []Field {
	return append([]Field(nil), commonFields...)
}

// serverFields are set by the server alone. deleted and deletedAt appear on
// tombstones.
var serverFields = []string{
	"id", "tenantId", "createdAt", "updatedAt", "version", "deleted", "deletedAt",
}

// ServerFields returns the names of the fields the server sets on records:
// id, tenantId, createdAt, updatedAt, version, and deleted and deletedAt on
// tombstones. A body that names one is refused.
func ServerFields() []string {
	return append([]string(nil), serverFields...)
}

// IsServerField reports whether name is a field the server sets on records.
func IsServerField(name string) bool {
	for _, s := range serverFields {
		if s == name {
			return true
		}
	}
	return false
}

// relationships pairs each key of a record's relationships object with the
// collection its ids belong to.
var relationships = []struct{ key, collection string }{
	{"linkedEventIds", CollectionEvents},
	{"linkedSessionIds", CollectionSessions},
	{"linkedPersonIds", CollectionPeople},
	{"linkedExhibitorIds", CollectionExhibitors},
	{"linkedSponsorIds", CollectionSponsors},
	{"linkedTicketIds", CollectionTickets},
	{"linkedResourceIds", CollectionResources},
}

// RelationshipKeys returns the keys of a record's relationships object, in
// the order API.md lists them: linkedEventIds, linkedSessionIds,
// linkedPersonIds, linkedExhibitorIds, linkedSponsorIds, linkedTicketIds and
// linkedResourceIds.
func RelationshipKeys() []string {
	keys := make([]string, len(relationships))
	for i, r := range relationships {
		keys[i] = r.key
	}
	return keys
}

// RelationshipCollection returns the collection whose ids the relationships
// key holds, such as "people" for "linkedPersonIds", or "" for any other key.
func RelationshipCollection(key string) string {
	for _, r := range relationships {
		if r.key == key {
			return r.collection
		}
	}
	return ""
}

// minimum returns a pointer to m, for Field.Min.
func minimum(m float64) *float64 { return &m }

// Lengths of strings that are not names.
const (
	descriptionLength = 100_000
	urlLength         = 2048
	emailLength       = 254
	customValueLength = 10_000
)

// Shapes that several collections share.
var (
	addressField = Field{Name: "address", Type: TypeObject, Fields: []Field{
		{Name: "addressLine1", Type: TypeString},
		{Name: "addressLine2", Type: TypeString},
		{Name: "city", Type: TypeString},
		{Name: "state", Type: TypeString},
		{Name: "zipCode", Type: TypeString},
		{Name: "country", Type: TypeString},
	}}
	socialLink = Field{Type: TypeObject, Fields: []Field{
		{Name: "platform", Type: TypeString, Required: true},
		{Name: "url", Type: TypeString, Required: true, Format: FormatURL, MaxLength: urlLength},
		{Name: "userId", Type: TypeString},
	}}
	contactPeopleField = Field{Name: "contactPeople", Type: TypeArray, Items: &Field{
		Type: TypeObject, Fields: []Field{
			{Name: "name", Type: TypeString, Required: true},
			{Name: "email", Type: TypeString, Required: true, Format: FormatEmail,
				MaxLength: emailLength},
			{Name: "phone", Type: TypeString},
			{Name: "role", Type: TypeString},
		}}}
	websiteField     = urlField("website", false)
	descriptionField = Field{Name: "description", Type: TypeString, MaxLength: descriptionLength}
)

func urlField(name string, required bool) Field {
	return Field{Name: name, Type: TypeString, Required: required, Format: FormatURL,
		MaxLength: urlLength}
}

func socialField(name string) Field {
	return Field{Name: name, Type: TypeArray, Items: &socialLink}
}

// commonFields are the client-set fields of every record.
var commonFields = []Field{
	{Name: "sourceId", Type: TypeString},
	{Name: "remoteId", Type: TypeString},
	{Name: "customFields", Type: TypeArray, Items: &Field{Type: TypeObject, Fields: []Field{
		{Name: "key", Type: TypeString},
		{Name: "fieldName", Type: TypeString},
		{Name: "fieldType", Type: TypeString, Enum: customFieldTypes},
		{Name: "fieldValue", Type: TypeAny},
	}}},
	{Name: "sourceCustomFields", Type: TypeArray, Items: &Field{Type: TypeObject}},
	{Name: "relationships", Type: TypeObject, Fields: relationshipFields()},
	{Name: "sourceRawData", Type: TypeObject},
}

// customFieldTypes are the values of a custom field's fieldType.
var customFieldTypes = []string{"string", "number", "boolean", "date", "enum", "object"}

func relationshipFields() []Field {
	fields := make([]Field, len(relationships))
	for i, r := range relationships {
		fields[i] = Field{Name: r.key, Type: TypeArray, Items: &Field{Type: TypeString}}
	}
	return fields
}

// collections are the seven collections, in the order the API documents them.
var collections = []*Collection{
	{Name: CollectionEvents, Kind: "event", Fields: []Field{
		{Name: "name", Type: TypeString, Required: true, Searchable: true},
		{Name: "startDate", Type: TypeDatetime, Required: true},
		{Name: "endDate", Type: TypeDatetime, Required: true},
		descriptionField,
		{Name: "timeZone", Type: TypeString, Format: FormatTimeZone},
		{Name: "location", Type: TypeString},
		{Name: "venue", Type: TypeArray, Items: &Field{Type: TypeObject, Fields: []Field{
			{Name: "name", Type: TypeString, Required: true},
			addressField,
			{Name: "capacity", Type: TypeInteger, Min: minimum(0)},
		}}},
		{Name: "category", Type: TypeString},
		{Name: "capacity", Type: TypeInteger, Min: minimum(0)},
		{Name: "status", Type: TypeString, Filterable: true,
			Enum: []string{"Upcoming", "Ongoing", "Completed", "Cancelled", "Postponed"}},
		{Name: "organizerId", Type: TypeString},
		socialField("socialMedia"),
	}, Ranges: []Range{{"startDate", "endDate"}}},

	{Name: CollectionPeople, Kind: "person", Fields: []Field{
		{Name: "firstName", Type: TypeString, Required: true, Searchable: true},
		{Name: "lastName", Type: TypeString, Required: true, Searchable: true},
		{Name: "email", Type: TypeString, Required: true, Format: FormatEmail,
			MaxLength: emailLength, Searchable: true},
		{Name: "phone", Type: TypeString},
		{Name: "status", Type: TypeString, Filterable: true,
			Enum: []string{"Active", "Inactive"}},
		{Name: "type", Type: TypeString, Filterable: true,
			Enum: []string{"Organizer", "Attendee", "Speaker", "Exhibitor", "Sponsor"}},
		{Name: "industry", Type: TypeString},
		{Name: "jobTitle", Type: TypeString},
		{Name: "company", Type: TypeString},
		{Name: "department", Type: TypeString},
		{Name: "team", Type: TypeString},
		addressField,
		socialField("socialMedia"),
	}},

	{Name: CollectionSessions, Kind: "session", Fields: []Field{
		{Name: "name", Type: TypeString, Required: true, Searchable: true},
		{Name: "startDate", Type: TypeDatetime, Required: true},
		{Name: "endDate", Type: TypeDatetime, Required: true},
		{Name: "eventId", Type: TypeString},
		descriptionField,
		{Name: "location", Type: TypeString},
		{Name: "timeZone", Type: TypeString, Format: FormatTimeZone},
		{Name: "category", Type: TypeString},
		{Name: "capacity", Type: TypeInteger, Min: minimum(0)},
		{Name: "status", Type: TypeString, Filterable: true,
			Enum: []string{"Upcoming", "Ongoing", "Completed", "Cancelled"}},
		{Name: "organizerId", Type: TypeString},
	}, Ranges: []Range{{"startDate", "endDate"}}},

	{Name: CollectionExhibitors, Kind: "exhibitor", Fields: []Field{
		{Name: "name", Type: TypeString, Required: true, Searchable: true},
		descriptionField,
		{Name: "industry", Type: TypeString},
		websiteField,
		contactPeopleField,
		{Name: "booths", Type: TypeArray, Items: &Field{Type: TypeObject, Fields: []Field{
			{Name: "boothId", Type: TypeString, Required: true},
			{Name: "location", Type: TypeString},
			{Name: "boothName", Type: TypeString},
			{Name: "capacity", Type: TypeInteger, Min: minimum(0)},
		}}},
		socialField("socialMediaLinks"),
		addressField,
	}},

	{Name: CollectionSponsors, Kind: "sponsor", Fields: []Field{
		{Name: "name", Type: TypeString, Required: true, Searchable: true},
		descriptionField,
		{Name: "tier", Type: TypeString},
		{Name: "industry", Type: TypeString},
		websiteField,
		urlField("logoUrl", false),
		contactPeopleField,
		socialField("socialMediaLinks"),
		addressField,
	}},

	{Name: CollectionTickets, Kind: "ticket", Fields: []Field{
		{Name: "ticketType", Type: TypeString, Required: true, Searchable: true},
		{Name: "price", Type: TypeNumber, Required: true, Min: minimum(0)},
		{Name: "currency", Type: TypeString, Required: true, Format: FormatCurrency},
		{Name: "status", Type: TypeString, Required: true, Filterable: true},
		{Name: "purchaseDate", Type: TypeDatetime},
		{Name: "seatNumber", Type: TypeString},
		{Name: "barcode", Type: TypeString},
		{Name: "validFrom", Type: TypeDatetime},
		{Name: "validUntil", Type: TypeDatetime},
		{Name: "accessLevel", Type: TypeString},
	}, Ranges: []Range{{"validFrom", "validUntil"}}},

	{Name: CollectionResources, Kind: "resource", Fields: []Field{
		{Name: "name", Type: TypeString, Required: true, Searchable: true},
		{Name: "resourceType", Type: TypeString, Required: true, Enum: []string{
			"Document", "Presentation", "Video", "Image", "Audio", "Link", "Other"}},
		urlField("url", true),
		{Name: "uploadDate", Type: TypeDatetime, Default: func() any { return FormatTime(Now()) }},
		descriptionField,
		{Name: "fileType", Type: TypeString},
		{Name: "fileSize", Type: TypeInteger, Min: minimum(0)},
		{Name: "accessLevel", Type: TypeString},
	}},
}

// NormalizeTimes rewrites, in place, every datetime value of doc that c's
// fields describe, at any depth, in the server's time format (UTC,
// milliseconds; see FormatTime), so that a record shows its times as the
// server writes its own. Call it after Validate: values that are not valid
// date-times are left as they are.
func (c *Collection) NormalizeTimes(doc map[string]any) {
	normalizeObject(c.Fields, doc)
	normalizeObject(commonFields, doc)
}

func normalizeObject(fields []Field, obj map[string]any) {
	for i := range fields {
		if v, ok := obj[fields[i].Name]; ok && v != nil {
			obj[fields[i].Name] = normalizeValue(&fields[i], v)
		}
	}
}

// normalizeValue returns value, a value of field f, with its date-times in
// the server's format.
func normalizeValue(f *Field, value any) any {
	switch f.Type {
	case TypeDatetime:
		if s, ok := value.(string); ok {
			if t, ok := parseDatetime(s); ok {
				return FormatTime(t)
			}
		}
	case TypeObject:
		if obj, ok := value.(map[string]any); ok && f.Fields != nil {
			normalizeObject(f.Fields, obj)
		}
	case TypeArray:
		if items, ok := value.([]any); ok && f.Items != nil {
			for i, item := range items {
				if item != nil {
					items[i] = normalizeValue(f.Items, item)
				}
			}
		}
	}
	return value
}

// Index is what storage copies out of a record into columns, so that lists
// filter, search and authorize without reading the record's JSON.
type Index struct {
	SourceID, RemoteID string              // "" when absent
	Status, Type       string              // "" when absent or not a field of the collection
	EventID            string              // a session's eventId; "" otherwise
	SearchText         string              // the searchable fields, joined by spaces
	Links              map[string][]string // relationships: key -> distinct ids; nil when none
	EventIDs           []string            // the events the record is linked to; see Index
}

// Index returns what storage copies out of doc into columns. EventIDs holds
// the record's eventId and relationships.linkedEventIds, without repeats; it
// is empty for an event, whose own id is its link, known only to the caller.
// Values of the wrong type are skipped, so Index is safe on any document.
func (c *Collection) Index(doc map[string]any) Index {
	ix := Index{
		SourceID: stringMember(doc, "sourceId"),
		RemoteID: stringMember(doc, "remoteId"),
	}
	for _, f := range c.Fields {
		switch {
		case f.Name == "status" && f.Filterable:
			ix.Status = stringMember(doc, "status")
		case f.Name == "type" && f.Filterable:
			ix.Type = stringMember(doc, "type")
		case f.Name == "eventId":
			ix.EventID = stringMember(doc, "eventId")
		}
	}
	ix.SearchText = c.searchText(doc)
	ix.Links = links(doc["relationships"])
	if c.Name != CollectionEvents {
		var ids []string
		if ix.EventID != "" {
			ids = append(ids, ix.EventID)
		}
		ix.EventIDs = distinct(append(ids, ix.Links["linkedEventIds"]...))
	}
	return ix
}

func (c *Collection) searchText(doc map[string]any) string {
	var words []string
	for _, f := range c.Fields {
		if s := stringMember(doc, f.Name); f.Searchable && s != "" {
			words = append(words, s)
		}
	}
	return strings.Join(words, " ")
}

// links returns the ids of each relationships key, skipping anything that is
// not a non-empty string, and nil when there are none.
func links(value any) map[string][]string {
	rel, _ := value.(map[string]any)
	var m map[string][]string
	for _, r := range relationships {
		items, _ := rel[r.key].([]any)
		var ids []string
		for _, item := range items {
			if id, ok := item.(string); ok && id != "" {
				ids = append(ids, id)
			}
		}
		if ids = distinct(ids); len(ids) == 0 {
			continue
		}
		if m == nil {
			m = make(map[string][]string)
		}
		m[r.key] = ids
	}
	return m
}

// distinct returns ids without repeats, in the order each first appears.
func distinct(ids []string) []string {
	seen := make(map[string]bool, len(ids))
	out := ids[:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

func stringMember(doc map[string]any, name string) string {
	s, _ := doc[name].(string)
	return s
}
