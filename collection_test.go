package runmerge_test

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
)

// documented are the fields of each collection as API.md lists them, in its
// order; a trailing * marks a field required on create.
var documented = map[string]string{
	"events": "name* startDate* endDate* description timeZone location venue category " +
		"capacity status organizerId socialMedia",
	"people": "firstName* lastName* email* phone status type industry jobTitle company " +
		"department team address socialMedia",
	"sessions": "name* startDate* endDate* eventId description location timeZone category " +
		"capacity status organizerId",
	"exhibitors": "name* description industry website contactPeople booths " +
		"socialMediaLinks address",
	"sponsors": "name* description tier industry website logoUrl contactPeople " +
		"socialMediaLinks address",
	"tickets": "ticketType* price* currency* status* purchaseDate seatNumber barcode " +
		"validFrom validUntil accessLevel",
	"resources": "name* resourceType* url* uploadDate description fileType fileSize accessLevel",
}

func describe(fields []runmerge.Field) string {
	var names []string
	for _, f := range fields {
		if f.Required {
			names = append(names, f.Name+"*")
		} else {
			names = append(names, f.Name)
		}
	}
	return strings.Join(names, " ")
}

func TestCollectionsAsDocumented(t *testing.T) {
	var names []string
	for _, c := range runmerge.Collections() {
		names = append(names, c.Name)
		if got := describe(c.Fields); got != documented[c.Name] {
			t.Errorf("%s fields:\ngot  %s\nwant %s", c.Name, got, documented[c.Name])
		}
	}
	if !slices.Equal(names, runmerge.CollectionNames) {
		t.Errorf("Collections() = %v, want %v", names, runmerge.CollectionNames)
	}
	got := describe(runmerge.CommonFields())
	want := "sourceId remoteId customFields sourceCustomFields relationships sourceRawData"
	if got != want {
		t.Errorf("CommonFields: got %s, want %s", got, want)
	}
}

func TestCollectionLookup(t *testing.T) {
	kinds := map[string]string{
		"events": "event", "people": "person", "sessions": "session",
		"exhibitors": "exhibitor", "sponsors": "sponsor", "tickets": "ticket",
		"resources": "resource",
	}
	for name, kind := range kinds {
		c, ok := runmerge.CollectionByName(name)
		if !ok || c.Kind != kind {
			t.Errorf("CollectionByName(%q) = %v, %v", name, c, ok)
			continue
		}
		if k, ok := runmerge.CollectionByKind(kind); !ok || k != c {
			t.Errorf("CollectionByKind(%q) = %v, %v", kind, k, ok)
		}
	}
	for _, bad := range []string{"", "event", "Events", "persons", "tenants"} {
		if _, ok := runmerge.CollectionByName(bad); ok {
			t.Errorf("CollectionByName(%q) found a collection", bad)
		}
	}
	if _, ok := runmerge.CollectionByKind("people"); ok {
		t.Error("CollectionByKind(people) found a collection")
	}

	// The slices handed out are copies.
	cs := runmerge.Collections()
	cs[0] = nil
	if runmerge.Collections()[0] == nil {
		t.Error("Collections() hands out its own slice")
	}
	common := runmerge.CommonFields()
	common[0].Name = "changed"
	if runmerge.CommonFields()[0].Name != "sourceId" {
		t.Error("CommonFields() hands out its own slice")
	}
}

var camelCase = regexp.MustCompile(`^[a-z][a-zA-Z0-9]*$`)

// TestFieldsWellFormed checks every field description, at every depth, for
// what validation, storage and the API description rely on.
func TestFieldsWellFormed(t *testing.T) {
	var check func(path string, f *runmerge.Field, named bool)
	check = func(path string, f *runmerge.Field, named bool) {
		if named && !camelCase.MatchString(f.Name) {
			t.Errorf("%s: name %q is not camelCase", path, f.Name)
		}
		if named && runmerge.IsServerField(f.Name) {
			t.Errorf("%s: name %q is server-set", path, f.Name)
		}
		switch f.Type {
		case runmerge.TypeString, runmerge.TypeInteger, runmerge.TypeNumber,
			runmerge.TypeBoolean, runmerge.TypeDatetime, runmerge.TypeAny:
		case runmerge.TypeObject:
			seen := map[string]bool{}
			for i := range f.Fields {
				m := &f.Fields[i]
				if seen[m.Name] {
					t.Errorf("%s: %s twice", path, m.Name)
				}
				seen[m.Name] = true
				check(path+"/"+m.Name, m, true)
			}
		case runmerge.TypeArray:
			if f.Items == nil {
				t.Errorf("%s: array without Items", path)
			} else {
				check(path+"/items", f.Items, false)
			}
		default:
			t.Errorf("%s: unknown type %q", path, f.Type)
		}
		if (f.Enum != nil || f.Format != "" || f.MaxLength != 0) && f.Type != runmerge.TypeString {
			t.Errorf("%s: Enum, Format or MaxLength on a %s", path, f.Type)
		}
		if f.Min != nil && f.Type != runmerge.TypeInteger && f.Type != runmerge.TypeNumber {
			t.Errorf("%s: Min on a %s", path, f.Type)
		}
		if (f.Filterable || f.Searchable || f.Default != nil) && !named {
			t.Errorf("%s: Filterable, Searchable or Default on an array item", path)
		}
	}
	for _, c := range runmerge.Collections() {
		all := runmerge.Field{Type: runmerge.TypeObject, Fields: c.AllFields()}
		check(c.Name, &all, false)
		for _, r := range c.Ranges {
			for _, name := range []string{r.Start, r.End} {
				if f, ok := c.Field(name); !ok || f.Type != runmerge.TypeDatetime {
					t.Errorf("%s: range names %s, not a datetime field", c.Name, name)
				}
			}
		}
	}
}

func TestFilterableAndSearchable(t *testing.T) {
	var filterable, searchable []string
	for _, c := range runmerge.Collections() {
		for _, f := range c.AllFields() {
			if f.Filterable {
				filterable = append(filterable, c.Name+"."+f.Name)
			}
			if f.Searchable {
				searchable = append(searchable, c.Name+"."+f.Name)
			}
		}
	}
	want := []string{"events.status", "people.status", "people.type", "sessions.status",
		"tickets.status"}
	if !slices.Equal(filterable, want) {
		t.Errorf("filterable: got %v, want %v", filterable, want)
	}
	want = []string{"events.name", "people.firstName", "people.lastName", "people.email",
		"sessions.name", "exhibitors.name", "sponsors.name", "tickets.ticketType",
		"resources.name"}
	if !slices.Equal(searchable, want) {
		t.Errorf("searchable: got %v, want %v", searchable, want)
	}
}

func TestCollectionField(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionSessions)
	for _, name := range []string{"eventId", "sourceId", "relationships"} {
		if f, ok := c.Field(name); !ok || f.Name != name {
			t.Errorf("Field(%q) = %v, %v", name, f, ok)
		}
	}
	for _, name := range []string{"id", "venue", "", "EventId"} {
		if _, ok := c.Field(name); ok {
			t.Errorf("Field(%q) found a field", name)
		}
	}
}

func TestServerFields(t *testing.T) {
	want := []string{"id", "tenantId", "createdAt", "updatedAt", "version", "deleted", "deletedAt"}
	if got := runmerge.ServerFields(); !slices.Equal(got, want) {
		t.Errorf("ServerFields() = %v, want %v", got, want)
	}
	for _, name := range want {
		if !runmerge.IsServerField(name) {
			t.Errorf("IsServerField(%q) = false", name)
		}
	}
	for _, name := range []string{"", "ID", "Id", "name", "sourceId", "eventId"} {
		if runmerge.IsServerField(name) {
			t.Errorf("IsServerField(%q) = true", name)
		}
	}
}

func TestRelationships(t *testing.T) {
	want := map[string]string{
		"linkedEventIds": "events", "linkedSessionIds": "sessions",
		"linkedPersonIds": "people", "linkedExhibitorIds": "exhibitors",
		"linkedSponsorIds": "sponsors", "linkedTicketIds": "tickets",
		"linkedResourceIds": "resources",
	}
	keys := runmerge.RelationshipKeys()
	var collections []string
	for _, k := range keys {
		collections = append(collections, runmerge.RelationshipCollection(k))
		if runmerge.RelationshipCollection(k) != want[k] {
			t.Errorf("RelationshipCollection(%q) = %q, want %q", k,
				runmerge.RelationshipCollection(k), want[k])
		}
	}
	order := []string{"events", "sessions", "people", "exhibitors", "sponsors", "tickets",
		"resources"}
	if !slices.Equal(collections, order) {
		t.Errorf("RelationshipKeys() = %v", keys)
	}
	for _, k := range []string{"", "linkedEventId", "linkedPeopleIds", "events"} {
		if c := runmerge.RelationshipCollection(k); c != "" {
			t.Errorf("RelationshipCollection(%q) = %q", k, c)
		}
	}
}

func TestIndex(t *testing.T) {
	for _, tc := range []struct {
		collection, doc string
		want            runmerge.Index
	}{
		{"people", validRecords["people"], runmerge.Index{
			Status: "Active", Type: "Speaker",
			SearchText: "Ada Lovelace ada@example.com",
		}},
		{"people", `{"firstName": "", "lastName": "L", "email": 3, "status": 1}`,
			runmerge.Index{SearchText: "L"}},
		{"events", validRecords["events"], runmerge.Index{
			SourceID: "crm", RemoteID: "e-1", Status: "Upcoming", SearchText: "GopherCon EU",
			Links: map[string][]string{"linkedPersonIds": {"p1", "p2"}},
		}},
		{"events", `{"name": "E", "relationships": {"linkedEventIds": ["parent"]}}`,
			runmerge.Index{SearchText: "E",
				Links: map[string][]string{"linkedEventIds": {"parent"}}}},
		{"sessions", `{"name": "S", "eventId": "e1", "status": "Ongoing", "relationships": {
			"linkedEventIds": ["e2", "e1", "e2", "", 4], "linkedSessionIds": [],
			"linkedSponsorIds": ["s1", "s1"], "linkedFooIds": ["x"]}}`,
			runmerge.Index{
				Status: "Ongoing", EventID: "e1", SearchText: "S",
				Links: map[string][]string{
					"linkedEventIds":   {"e2", "e1"},
					"linkedSponsorIds": {"s1"},
				},
				EventIDs: []string{"e1", "e2"},
			}},
		{"tickets", `{"ticketType": "VIP", "status": "Paid", "type": "x", "eventId": "e",
			"sourceId": "s", "remoteId": "r", "relationships": {"linkedEventIds": ["e9"]}}`,
			runmerge.Index{SourceID: "s", RemoteID: "r", Status: "Paid", SearchText: "VIP",
				Links:    map[string][]string{"linkedEventIds": {"e9"}},
				EventIDs: []string{"e9"}}},
		{"resources", `{"name": "R", "status": "x", "relationships": "bad"}`,
			runmerge.Index{SearchText: "R"}},
		{"exhibitors", `{}`, runmerge.Index{}},
	} {
		c := mustCollection(t, tc.collection)
		got := c.Index(decode(t, tc.doc))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %.80s:\ngot  %+v\nwant %+v", tc.collection, tc.doc, got, tc.want)
		}
	}
}

func TestNormalizeTimes(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionEvents)
	doc := decode(t, `{"name": "E", "startDate": "2026-05-01T11:00:00.123456+02:00",
		"endDate": "2026-05-01T10:00:00Z", "description": "2026-05-01T09:00:00Z",
		"sourceRawData": {"startDate": "2026-05-01T09:00:00Z"}}`)
	if err := c.Validate(doc, ""); err != nil {
		t.Fatal(err)
	}
	c.NormalizeTimes(doc)
	want := decode(t, `{"name": "E", "startDate": "2026-05-01T09:00:00.123Z",
		"endDate": "2026-05-01T10:00:00.000Z", "description": "2026-05-01T09:00:00Z",
		"sourceRawData": {"startDate": "2026-05-01T09:00:00Z"}}`)
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("got %s", marshal(t, doc))
	}
	if err := c.Validate(doc, ""); err != nil {
		t.Errorf("normalized record is not valid: %v", err)
	}

	tickets := mustCollection(t, runmerge.CollectionTickets)
	doc = decode(t, `{"validFrom": "2026-05-01T00:00:00-05:00", "validUntil": "soon",
		"purchaseDate": 5}`)
	tickets.NormalizeTimes(doc)
	want = decode(t, `{"validFrom": "2026-05-01T05:00:00.000Z", "validUntil": "soon",
		"purchaseDate": 5}`)
	if !reflect.DeepEqual(doc, want) {
		t.Errorf("got %s", marshal(t, doc))
	}
}
