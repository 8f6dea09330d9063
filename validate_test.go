package runmerge_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
)

// validRecords are complete, valid records of each collection, using every
// field. Bad cases below are merge patches onto them.
var validRecords = map[string]string{
	runmerge.CollectionEvents: `{
		"name": "GopherCon EU", "startDate": "2026-05-01T09:00:00Z",
		"endDate": "2026-05-03T18:00:00.000Z", "description": "Three days of Go",
		"timeZone": "Europe/Berlin", "location": "Berlin",
		"venue": [{"name": "Hall A", "address": {"city": "Berlin", "country": "DE"},
			"capacity": 500}],
		"category": "Tech", "capacity": 1000, "status": "Upcoming", "organizerId": "org-1",
		"socialMedia": [{"platform": "mastodon", "url": "https://go.example/@go", "userId": "go"}],
		"sourceId": "crm", "remoteId": "e-1",
		"customFields": [{"key": "k", "fieldName": "K", "fieldType": "string", "fieldValue": "v"}],
		"sourceCustomFields": [{"anything": [1, 2]}],
		"relationships": {"linkedPersonIds": ["p1", "p2"]},
		"sourceRawData": {"raw": true}
	}`,
	runmerge.CollectionPeople: `{
		"firstName": "Ada", "lastName": "Lovelace", "email": "ada@example.com",
		"phone": "+44 20 7946 0000", "status": "Active", "type": "Speaker",
		"industry": "Computing", "jobTitle": "Analyst", "company": "Engines Ltd",
		"department": "R&D", "team": "Core",
		"address": {"addressLine1": "1 Main St", "addressLine2": "Flat 2", "city": "London",
			"state": "", "zipCode": "N1 9GU", "country": "GB"},
		"socialMedia": [{"platform": "web", "url": "http://ada.example/"}]
	}`,
	runmerge.CollectionSessions: `{
		"name": "Keynote", "startDate": "2026-05-01T09:00:00+02:00",
		"endDate": "2026-05-01T10:00:00+02:00", "eventId": "e1", "description": "Opening",
		"location": "Hall A", "timeZone": "Europe/Paris", "category": "Talk", "capacity": 200,
		"status": "Ongoing", "organizerId": "org-1"
	}`,
	runmerge.CollectionExhibitors: `{
		"name": "Gopher Inc", "description": "Gophers", "industry": "Software",
		"website": "https://gopher.example",
		"contactPeople": [{"name": "Rob", "email": "rob@gopher.example", "phone": "1",
			"role": "Sales"}],
		"booths": [{"boothId": "B1", "location": "Hall A", "boothName": "Gophers",
			"capacity": 10}],
		"socialMediaLinks": [{"platform": "web", "url": "http://gopher.example/social"}],
		"address": {"city": "Zurich"}
	}`,
	runmerge.CollectionSponsors: `{
		"name": "Acme", "description": "Widgets", "tier": "Gold", "industry": "Widgets",
		"website": "https://acme.example", "logoUrl": "https://cdn.acme.example/logo.png",
		"contactPeople": [{"name": "Wile", "email": "wile@acme.example"}],
		"socialMediaLinks": [{"platform": "x", "url": "https://x.example/acme", "userId": "1"}],
		"address": {"country": "US"}
	}`,
	runmerge.CollectionTickets: `{
		"ticketType": "VIP", "price": 199.5, "currency": "EUR", "status": "Paid",
		"purchaseDate": "2026-04-01T10:00:00Z", "seatNumber": "A12", "barcode": "0123",
		"validFrom": "2026-05-01T00:00:00Z", "validUntil": "2026-05-03T23:59:59Z",
		"accessLevel": "All"
	}`,
	runmerge.CollectionResources: `{
		"name": "Slides", "resourceType": "Presentation",
		"url": "https://files.example/slides.pdf", "uploadDate": "2026-05-01T09:00:00.123Z",
		"description": "Keynote slides", "fileType": "application/pdf", "fileSize": 1048576,
		"accessLevel": "Public"
	}`,
}

// minimalRecords hold only the required fields.
var minimalRecords = map[string]string{
	"events": `{"name": "E", "startDate": "2026-05-01T09:00:00Z",
		"endDate": "2026-05-01T09:00:00Z"}`,
	"people": `{"firstName": "A", "lastName": "L", "email": "a@l.example"}`,
	"sessions": `{"name": "S", "startDate": "2026-05-01T09:00:00Z",
		"endDate": "2026-05-01T10:00:00Z"}`,
	"exhibitors": `{"name": "X"}`,
	"sponsors":   `{"name": "Y"}`,
	"tickets":    `{"ticketType": "T", "price": 0, "currency": "USD", "status": "s"}`,
	"resources":  `{"name": "R", "resourceType": "Link", "url": "https://r.example"}`,
}

// decode decodes s as the server does: one JSON object, numbers as json.Number.
func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

func mustCollection(t testing.TB, name string) *runmerge.Collection {
	t.Helper()
	c, ok := runmerge.CollectionByName(name)
	if !ok {
		t.Fatalf("no collection %q", name)
	}
	return c
}

// str returns a JSON string of n characters.
func str(n int) string { return `"` + strings.Repeat("é", n) + `"` }

// fieldErrs describes field errors as "pointer code" lines, for comparison.
func fieldErrs(err error) string {
	var lines []string
	for _, f := range runmerge.ErrorFields(err) {
		lines = append(lines, f.Pointer+" "+f.Code)
	}
	return strings.Join(lines, "\n")
}

type badCase struct {
	patch string // a merge patch onto the valid record
	want  string // "pointer code" lines, in order
}

// commonBad are bad values of the fields every record has.
var commonBad = []badCase{
	{`{"sourceId": 1}`, "/sourceId invalid_type"},
	{`{"remoteId": {}}`, "/remoteId invalid_type"},
	{`{"remoteId": ` + str(1001) + `}`, "/remoteId too_long"},
	{`{"customFields": "x"}`, "/customFields invalid_type"},
	{`{"customFields": {"key": "k"}}`, "/customFields invalid_type"},
	{`{"customFields": [1]}`, "/customFields/0 invalid_type"},
	{`{"customFields": [null]}`, "/customFields/0 invalid_type"},
	{`{"customFields": [{"fieldType": "color"}]}`, "/customFields/0/fieldType invalid_enum"},
	{`{"customFields": [{"fieldType": "String"}]}`, "/customFields/0/fieldType invalid_enum"},
	{`{"customFields": [{"key": 1}]}`, "/customFields/0/key invalid_type"},
	{`{"customFields": [{"fieldName": []}]}`, "/customFields/0/fieldName invalid_type"},
	{`{"customFields": [{"fieldType": "number", "fieldValue": "12"}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "boolean", "fieldValue": "yes"}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "string", "fieldValue": 3}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "date", "fieldValue": "01/05/2026"}]}`,
		"/customFields/0/fieldValue invalid_format"},
	{`{"customFields": [{"fieldType": "date", "fieldValue": 20260501}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "object", "fieldValue": []}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "enum", "fieldValue": [1]}]}`,
		"/customFields/0/fieldValue invalid_type"},
	{`{"customFields": [{"fieldType": "string", "fieldValue": ` + str(10_001) + `}]}`,
		"/customFields/0/fieldValue too_long"},
	{`{"customFields": [{"key": "a"}, {"key": "b", "fieldType": "x"}, {"key": 3}]}`,
		"/customFields/1/fieldType invalid_enum\n/customFields/2/key invalid_type"},
	{`{"sourceCustomFields": {}}`, "/sourceCustomFields invalid_type"},
	{`{"sourceCustomFields": [1, {}]}`, "/sourceCustomFields/0 invalid_type"},
	{`{"relationships": []}`, "/relationships invalid_type"},
	{`{"relationships": {"linkedPersonIds": "p1"}}`, "/relationships/linkedPersonIds invalid_type"},
	{`{"relationships": {"linkedEventIds": ["e1", 2]}}`,
		"/relationships/linkedEventIds/1 invalid_type"},
	{`{"relationships": {"linkedTicketIds": [null]}}`,
		"/relationships/linkedTicketIds/0 invalid_type"},
	{`{"sourceRawData": []}`, "/sourceRawData invalid_type"},
	{`{"sourceRawData": "raw"}`, "/sourceRawData invalid_type"},
	{`{"sourceRawData": 1}`, "/sourceRawData invalid_type"},
}

// badRecords are bad values of each collection's own fields.
var badRecords = map[string][]badCase{
	runmerge.CollectionEvents: {
		{`{"name": null}`, "/name required"},
		{`{"name": ""}`, "/name required"},
		{`{"name": "  \t"}`, "/name required"},
		{`{"name": 42}`, "/name invalid_type"},
		{`{"name": ` + str(1001) + `}`, "/name too_long"},
		{`{"startDate": null}`, "/startDate required"},
		{`{"startDate": "2026-05-01"}`, "/startDate invalid_format"},
		{`{"startDate": 1777626000}`, "/startDate invalid_type"},
		{`{"startDate": "2026-05-01T09:00:00+24:00"}`, "/startDate invalid_format"},
		{`{"endDate": null}`, "/endDate required"},
		{`{"endDate": "2026-04-30T23:59:59Z"}`, "/endDate invalid_range"},
		{`{"endDate": "2026-05-01T08:59:59.999Z"}`, "/endDate invalid_range"},
		{`{"endDate": "tomorrow"}`, "/endDate invalid_format"},
		{`{"description": ` + str(100_001) + `}`, "/description too_long"},
		{`{"timeZone": "Local"}`, "/timeZone invalid_format"},
		{`{"timeZone": ""}`, "/timeZone invalid_format"},
		{`{"timeZone": "Mars/Olympus_Mons"}`, "/timeZone invalid_format"},
		{`{"timeZone": "europe/berlin"}`, "/timeZone invalid_format"},
		{`{"timeZone": 1}`, "/timeZone invalid_type"},
		{`{"location": ["Berlin"]}`, "/location invalid_type"},
		{`{"venue": "Hall A"}`, "/venue invalid_type"},
		{`{"venue": [null]}`, "/venue/0 invalid_type"},
		{`{"venue": [{"capacity": 10}]}`, "/venue/0/name required"},
		{`{"venue": [{"name": "A", "capacity": -1}]}`, "/venue/0/capacity out_of_range"},
		{`{"venue": [{"name": "A", "capacity": 2.5}]}`, "/venue/0/capacity invalid_type"},
		{`{"venue": [{"name": "A", "address": "Main St"}]}`, "/venue/0/address invalid_type"},
		{`{"venue": [{"name": "A", "address": {"city": 7}}]}`,
			"/venue/0/address/city invalid_type"},
		{`{"capacity": -1}`, "/capacity out_of_range"},
		{`{"capacity": "100"}`, "/capacity invalid_type"},
		{`{"capacity": 1e30}`, "/capacity out_of_range"},
		{`{"capacity": 10.5}`, "/capacity invalid_type"},
		{`{"status": "upcoming"}`, "/status invalid_enum"},
		{`{"status": "Draft"}`, "/status invalid_enum"},
		{`{"category": false}`, "/category invalid_type"},
		{`{"organizerId": 12}`, "/organizerId invalid_type"},
		{`{"socialMedia": [{"platform": "x"}]}`, "/socialMedia/0/url required"},
		{`{"socialMedia": [{"platform": "x", "url": "ftp://x.example"}]}`,
			"/socialMedia/0/url invalid_format"},
		{`{"name": null, "capacity": -1, "status": "x", "endDate": "2020-01-01T00:00:00Z"}`,
			"/capacity out_of_range\n/endDate invalid_range\n/name required\n/status invalid_enum"},
		{`{"venue": [{}, {"name": "b"}, {}, {}, {}, {}, {}, {}, {}, {}, {}]}`,
			"/venue/0/name required\n/venue/2/name required\n/venue/3/name required\n" +
				"/venue/4/name required\n/venue/5/name required\n/venue/6/name required\n" +
				"/venue/7/name required\n/venue/8/name required\n/venue/9/name required\n" +
				"/venue/10/name required"},
	},
	runmerge.CollectionPeople: {
		{`{"firstName": null}`, "/firstName required"},
		{`{"firstName": true}`, "/firstName invalid_type"},
		{`{"lastName": null}`, "/lastName required"},
		{`{"lastName": ""}`, "/lastName required"},
		{`{"email": null}`, "/email required"},
		{`{"email": ""}`, "/email required"},
		{`{"email": "ada"}`, "/email invalid_format"},
		{`{"email": "ada@example"}`, "/email invalid_format"},
		{`{"email": "Ada <ada@example.com>"}`, "/email invalid_format"},
		{`{"email": "ada@@example.com"}`, "/email invalid_format"},
		{`{"email": "ada@example..com"}`, "/email invalid_format"},
		{`{"email": "ada lovelace@example.com"}`, "/email invalid_format"},
		{`{"email": "ada@-example.com"}`, "/email invalid_format"},
		{`{"email": "ada@[192.0.2.1]"}`, "/email invalid_format"},
		{`{"email": " ada@example.com"}`, "/email invalid_format"},
		{`{"email": "\"ada l\"@example.com"}`, "/email invalid_format"},
		{`{"email": 7}`, "/email invalid_type"},
		{`{"status": "active"}`, "/status invalid_enum"},
		{`{"type": "Guest"}`, "/type invalid_enum"},
		{`{"type": ["Speaker"]}`, "/type invalid_type"},
		{`{"phone": 1234567}`, "/phone invalid_type"},
		{`{"address": "London"}`, "/address invalid_type"},
		{`{"address": {"city": 1}}`, "/address/city invalid_type"},
		{`{"address": {"zipCode": ` + str(1001) + `}}`, "/address/zipCode too_long"},
		{`{"socialMedia": {}}`, "/socialMedia invalid_type"},
		{`{"socialMedia": [{"url": "https://x.example"}]}`, "/socialMedia/0/platform required"},
		{`{"socialMedia": [{"platform": "x", "url": "x.example/ada"}]}`,
			"/socialMedia/0/url invalid_format"},
		{`{"jobTitle": ` + str(1001) + `}`, "/jobTitle too_long"},
		{`{"company": 1, "department": 2, "team": 3, "industry": 4}`,
			"/company invalid_type\n/department invalid_type\n/industry invalid_type\n" +
				"/team invalid_type"},
		{`{"firstName": "", "email": "nope"}`, "/email invalid_format\n/firstName required"},
	},
	runmerge.CollectionSessions: {
		{`{"name": null}`, "/name required"},
		{`{"startDate": null}`, "/startDate required"},
		{`{"endDate": null}`, "/endDate required"},
		{`{"endDate": "2026-05-01T07:30:00+02:00"}`, "/endDate invalid_range"},
		{`{"endDate": "2026-05-01T06:59:59Z"}`, "/endDate invalid_range"},
		{`{"startDate": "2026-13-01T09:00:00Z"}`, "/startDate invalid_format"},
		{`{"startDate": "2026-05-01 09:00:00Z"}`, "/startDate invalid_format"},
		{`{"startDate": "2026-05-01T9:00:00Z"}`, "/startDate invalid_format"},
		{`{"startDate": "2026-05-01T09:00:00"}`, "/startDate invalid_format"},
		{`{"startDate": "2026-05-01T09:00:00,5Z"}`, "/startDate invalid_format"},
		{`{"startDate": "2026-02-30T09:00:00Z"}`, "/startDate invalid_format"},
		{`{"startDate": "x", "endDate": "y"}`,
			"/endDate invalid_format\n/startDate invalid_format"},
		{`{"eventId": 12}`, "/eventId invalid_type"},
		{`{"eventId": ["e1"]}`, "/eventId invalid_type"},
		{`{"status": "Postponed"}`, "/status invalid_enum"},
		{`{"capacity": -5}`, "/capacity out_of_range"},
		{`{"capacity": 3.14}`, "/capacity invalid_type"},
		{`{"capacity": true}`, "/capacity invalid_type"},
		{`{"timeZone": "Europe/Atlantis"}`, "/timeZone invalid_format"},
		{`{"timeZone": "../../etc/passwd"}`, "/timeZone invalid_format"},
		{`{"timeZone": "/etc/localtime"}`, "/timeZone invalid_format"},
		{`{"description": 5}`, "/description invalid_type"},
		{`{"location": {}}`, "/location invalid_type"},
		{`{"category": ` + str(1001) + `}`, "/category too_long"},
		{`{"organizerId": false}`, "/organizerId invalid_type"},
	},
	runmerge.CollectionExhibitors: {
		{`{"name": null}`, "/name required"},
		{`{"name": ""}`, "/name required"},
		{`{"website": "gopher.example"}`, "/website invalid_format"},
		{`{"website": "mailto:rob@gopher.example"}`, "/website invalid_format"},
		{`{"website": "https://"}`, "/website invalid_format"},
		{`{"website": "javascript:alert(1)"}`, "/website invalid_format"},
		{`{"website": ""}`, "/website invalid_format"},
		{`{"website": 1}`, "/website invalid_type"},
		{`{"contactPeople": [{"email": "rob@gopher.example"}]}`, "/contactPeople/0/name required"},
		{`{"contactPeople": [{"name": "Rob"}]}`, "/contactPeople/0/email required"},
		{`{"contactPeople": [{"name": "Rob", "email": "rob"}]}`,
			"/contactPeople/0/email invalid_format"},
		{`{"contactPeople": {"name": "Rob"}}`, "/contactPeople invalid_type"},
		{`{"contactPeople": [{"name": "Rob", "email": "r@x.example", "phone": 5}]}`,
			"/contactPeople/0/phone invalid_type"},
		{`{"contactPeople": [{"name": "A", "email": "a"}, {"email": "b@x.example"}]}`,
			"/contactPeople/0/email invalid_format\n/contactPeople/1/name required"},
		{`{"booths": [{"location": "A"}]}`, "/booths/0/boothId required"},
		{`{"booths": [{"boothId": "B1", "capacity": -1}]}`, "/booths/0/capacity out_of_range"},
		{`{"booths": [{"boothId": "B1", "capacity": "10"}]}`, "/booths/0/capacity invalid_type"},
		{`{"booths": [{"boothId": "B1"}, {"boothId": ""}]}`, "/booths/1/boothId required"},
		{`{"booths": "B1"}`, "/booths invalid_type"},
		{`{"socialMediaLinks": [{"platform": "web"}]}`, "/socialMediaLinks/0/url required"},
		{`{"socialMediaLinks": [{"platform": "web", "url": "https://x.example/a b"}]}`,
			"/socialMediaLinks/0/url invalid_format"},
		{`{"address": []}`, "/address invalid_type"},
		{`{"industry": 1}`, "/industry invalid_type"},
		{`{"description": ` + str(100_001) + `}`, "/description too_long"},
	},
	runmerge.CollectionSponsors: {
		{`{"name": null}`, "/name required"},
		{`{"name": 1}`, "/name invalid_type"},
		{`{"name": "\t\n"}`, "/name required"},
		{`{"tier": 1}`, "/tier invalid_type"},
		{`{"tier": {}}`, "/tier invalid_type"},
		{`{"logoUrl": "logo.png"}`, "/logoUrl invalid_format"},
		{`{"logoUrl": "data:image/png;base64,AAAA"}`, "/logoUrl invalid_format"},
		{`{"logoUrl": "//cdn.example/logo.png"}`, "/logoUrl invalid_format"},
		{`{"logoUrl": "https://exa mple.com/logo.png"}`, "/logoUrl invalid_format"},
		{`{"website": "http//acme.example"}`, "/website invalid_format"},
		{`{"website": "ftp://acme.example"}`, "/website invalid_format"},
		{`{"website": "https://acme.example/` + strings.Repeat("a", 2048) + `"}`,
			"/website too_long"},
		{`{"contactPeople": [{"name": "A", "email": "a@b"}]}`,
			"/contactPeople/0/email invalid_format"},
		{`{"contactPeople": [1]}`, "/contactPeople/0 invalid_type"},
		{`{"contactPeople": [{"name": null, "email": "a@b.example"}]}`,
			"/contactPeople/0/name required"},
		{`{"socialMediaLinks": [{"platform": 1, "url": "https://x.example"}]}`,
			"/socialMediaLinks/0/platform invalid_type"},
		{`{"socialMediaLinks": [{"platform": "x", "url": "https://x.example", "userId": 7}]}`,
			"/socialMediaLinks/0/userId invalid_type"},
		{`{"address": {"zipCode": 12345}}`, "/address/zipCode invalid_type"},
		{`{"address": {"addressLine1": ` + str(1001) + `}}`, "/address/addressLine1 too_long"},
		{`{"description": ` + str(100_001) + `}`, "/description too_long"},
		{`{"industry": []}`, "/industry invalid_type"},
	},
	runmerge.CollectionTickets: {
		{`{"ticketType": null}`, "/ticketType required"},
		{`{"price": null}`, "/price required"},
		{`{"currency": null}`, "/currency required"},
		{`{"status": null}`, "/status required"},
		{`{"status": ""}`, "/status required"},
		{`{"status": 1}`, "/status invalid_type"},
		{`{"price": -1}`, "/price out_of_range"},
		{`{"price": -0.01}`, "/price out_of_range"},
		{`{"price": "199"}`, "/price invalid_type"},
		{`{"price": 1e400}`, "/price out_of_range"},
		{`{"currency": "eur"}`, "/currency invalid_format"},
		{`{"currency": "EURO"}`, "/currency invalid_format"},
		{`{"currency": "ABC"}`, "/currency invalid_format"},
		{`{"currency": "XXX"}`, "/currency invalid_format"},
		{`{"currency": 978}`, "/currency invalid_type"},
		{`{"purchaseDate": "yesterday"}`, "/purchaseDate invalid_format"},
		{`{"purchaseDate": "2026-04-01T10:00:00"}`, "/purchaseDate invalid_format"},
		{`{"validUntil": "2026-04-30T23:59:59Z"}`, "/validUntil invalid_range"},
		{`{"validFrom": 1}`, "/validFrom invalid_type"},
		{`{"seatNumber": 12}`, "/seatNumber invalid_type"},
		{`{"barcode": ` + str(1001) + `}`, "/barcode too_long"},
		{`{"accessLevel": true}`, "/accessLevel invalid_type"},
		{`{"ticketType": null, "price": null, "currency": null, "status": null}`,
			"/currency required\n/price required\n/status required\n/ticketType required"},
	},
	runmerge.CollectionResources: {
		{`{"name": null}`, "/name required"},
		{`{"resourceType": null}`, "/resourceType required"},
		{`{"url": null}`, "/url required"},
		{`{"resourceType": "Slides"}`, "/resourceType invalid_enum"},
		{`{"resourceType": "document"}`, "/resourceType invalid_enum"},
		{`{"resourceType": 1}`, "/resourceType invalid_type"},
		{`{"url": ""}`, "/url required"},
		{`{"url": "files.example/slides.pdf"}`, "/url invalid_format"},
		{`{"url": "file:///etc/passwd"}`, "/url invalid_format"},
		{`{"url": "http://:80/x"}`, "/url invalid_format"},
		{`{"url": 1}`, "/url invalid_type"},
		{`{"uploadDate": "2026-05-01"}`, "/uploadDate invalid_format"},
		{`{"uploadDate": 1}`, "/uploadDate invalid_type"},
		{`{"uploadDate": "0000-01-01T00:00:00+01:00"}`, "/uploadDate invalid_format"},
		{`{"uploadDate": "9999-12-31T23:00:00-01:00"}`, "/uploadDate invalid_format"},
		{`{"fileSize": -1}`, "/fileSize out_of_range"},
		{`{"fileSize": 1.5}`, "/fileSize invalid_type"},
		{`{"fileSize": "10"}`, "/fileSize invalid_type"},
		{`{"fileSize": 1e19}`, "/fileSize out_of_range"},
		{`{"fileSize": 99999999999999999999}`, "/fileSize out_of_range"},
		{`{"fileType": 1}`, "/fileType invalid_type"},
		{`{"accessLevel": []}`, "/accessLevel invalid_type"},
		{`{"description": 1}`, "/description invalid_type"},
		{`{"name": ` + str(1001) + `}`, "/name too_long"},
	},
}

func TestValidateRejects(t *testing.T) {
	for _, c := range runmerge.Collections() {
		cases := append(badRecords[c.Name], commonBad...)
		if n := len(badRecords[c.Name]); n < 20 {
			t.Errorf("%s: %d bad cases of its own, want at least 20", c.Name, n)
		}
		valid := decode(t, validRecords[c.Name])
		for _, tc := range cases {
			doc := runmerge.MergePatch(valid, decode(t, tc.patch))
			err := c.Validate(doc, "")
			if got := fieldErrs(err); got != tc.want {
				t.Errorf("%s %.200s:\ngot  %q\nwant %q", c.Name, tc.patch, got, tc.want)
				continue
			}
			if code := runmerge.ErrorCode(err); code != runmerge.EINVALID {
				t.Errorf("%s %.200s: code %q, want %q", c.Name, tc.patch, code, runmerge.EINVALID)
			}
			for _, f := range runmerge.ErrorFields(err) {
				if f.Detail == "" {
					t.Errorf("%s %.200s: %s has no detail", c.Name, tc.patch, f.Pointer)
				}
			}
		}
	}
}

// goodPatches are valid variations of every record.
var goodPatches = []string{
	`{}`,
	`{"sourceId": null, "remoteId": null, "customFields": null, "sourceCustomFields": null,
		"relationships": null, "sourceRawData": null}`,
	`{"customFields": [], "sourceCustomFields": [], "relationships": {}, "sourceRawData": {}}`,
	`{"customFields": [{"key": "a", "fieldType": "number", "fieldValue": -1.5},
		{"key": "b", "fieldType": "boolean", "fieldValue": false},
		{"key": "c", "fieldType": "date", "fieldValue": "2026-05-01"},
		{"key": "d", "fieldType": "date", "fieldValue": "2026-05-01T09:00:00Z"},
		{"key": "e", "fieldType": "enum", "fieldValue": "red"},
		{"key": "f", "fieldType": "enum", "fieldValue": ["red", "blue"]},
		{"key": "g", "fieldType": "object", "fieldValue": {"a": [1]}},
		{"key": "h", "fieldType": "string", "fieldValue": null},
		{"key": "i", "fieldValue": [1, "two"]}]}`,
	`{"relationships": {"linkedEventIds": ["e1"], "linkedSessionIds": [],
		"linkedPersonIds": ["p1", "p1"], "linkedExhibitorIds": ["x"],
		"linkedSponsorIds": ["s"], "linkedTicketIds": ["t"], "linkedResourceIds": ["r"]}}`,
	`{"relationships": {"linkedEventIds": null}}`,
	`{"sourceRawData": {"id": 1, "nested": {"deep": [null, {"x": "y"}]}}}`,
	`{"sourceId": "", "remoteId": "` + strings.Repeat("r", 1000) + `"}`,
}

// goodRecords are valid variations of each collection's own fields.
var goodRecords = map[string][]string{
	runmerge.CollectionEvents: {
		`{"description": null, "timeZone": null, "location": null, "venue": null,
			"category": null, "capacity": null, "status": null, "organizerId": null,
			"socialMedia": null}`,
		`{"endDate": "2026-05-01T09:00:00Z"}`,
		`{"endDate": "2026-05-01T10:00:00+01:00"}`,
		`{"capacity": 0, "venue": [], "socialMedia": []}`,
		`{"capacity": 1.0}`,
		`{"capacity": 1e3}`,
		`{"timeZone": "UTC"}`,
		`{"timeZone": "America/Argentina/Buenos_Aires"}`,
		`{"status": "Postponed"}`,
		`{"description": ` + str(100_000) + `}`,
		`{"name": ` + str(1000) + `}`,
		`{"venue": [{"name": "A"}, {"name": "B", "capacity": 0, "address": {}}]}`,
		`{"startDate": "2026-05-01T09:00:00.123456789-07:00",
			"endDate": "2026-05-01T16:00:00.123456789Z"}`,
	},
	runmerge.CollectionPeople: {
		`{"email": "o'neil+tag@sub.example.co.uk"}`,
		`{"email": "jörg@müller.example"}`,
		`{"status": "Inactive", "type": "Organizer"}`,
		`{"phone": "", "industry": "", "address": {"city": null}}`,
		`{"socialMedia": [{"platform": "x", "url": "HTTPS://X.EXAMPLE/ada?x=1#y"}]}`,
	},
	runmerge.CollectionSessions: {
		`{"startDate": "2026-05-01T09:00:00+02:00", "endDate": "2026-05-01T08:30:00+01:00"}`,
		`{"eventId": null, "status": "Cancelled", "capacity": 0}`,
		`{"timeZone": "Asia/Kolkata"}`,
	},
	runmerge.CollectionExhibitors: {
		`{"website": "http://localhost:8080/x"}`,
		`{"booths": [{"boothId": "B2"}], "contactPeople": []}`,
	},
	runmerge.CollectionSponsors: {
		`{"logoUrl": "https://cdn.example/logo.png?v=2", "tier": ""}`,
	},
	runmerge.CollectionTickets: {
		`{"price": 0, "currency": "JPY"}`,
		`{"price": 0.001, "currency": "CHF"}`,
		`{"price": 1e-400}`,
		`{"validFrom": null}`,
		`{"validFrom": "2026-05-01T00:00:00Z", "validUntil": "2026-05-01T00:00:00Z"}`,
	},
	runmerge.CollectionResources: {
		`{"uploadDate": null, "fileSize": 0}`,
		`{"uploadDate": "0000-01-01T00:00:00-01:00"}`,
		`{"uploadDate": "9999-12-31T23:59:59.999+01:00"}`,
		`{"fileSize": 9007199254740993}`,
		`{"resourceType": "Other", "url": "http://r.example:8080"}`,
	},
}

func TestValidateAccepts(t *testing.T) {
	for _, c := range runmerge.Collections() {
		for _, base := range []string{validRecords[c.Name], minimalRecords[c.Name]} {
			doc := decode(t, base)
			for _, p := range append(goodPatches, goodRecords[c.Name]...) {
				patched := runmerge.MergePatch(doc, decode(t, p))
				if err := c.Validate(patched, ""); err != nil {
					t.Errorf("%s %.200s: %v\n%s", c.Name, p, err, fieldErrs(err))
				}
			}
		}
	}
}

// TestValidateFloats checks documents whose numbers are float64, as
// json.Unmarshal makes them without UseNumber.
func TestValidateFloats(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionEvents)
	var doc map[string]any
	if err := json.Unmarshal([]byte(validRecords[c.Name]), &doc); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(doc, ""); err != nil {
		t.Fatalf("valid: %v", err)
	}
	for _, tc := range []struct {
		value any
		want  string
	}{
		{float64(10), ""},
		{int(10), ""},
		{float64(-1), "/capacity out_of_range"},
		{float64(1.5), "/capacity invalid_type"},
		{float64(1e300), "/capacity out_of_range"},
		{json.Number("abc"), "/capacity invalid_type"},
		{json.Number("12"), ""},
		{json.Number("-0"), ""},
	} {
		doc["capacity"] = tc.value
		if got := fieldErrs(c.Validate(doc, "")); got != tc.want {
			t.Errorf("capacity %v: got %q, want %q", tc.value, got, tc.want)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionPeople)
	doc := decode(t, `{"firstName": "A", "email": "x", "address": {"city": 1}}`)
	err := c.Validate(doc, "/records/12")
	want := "/records/12/address/city invalid_type\n/records/12/email invalid_format\n" +
		"/records/12/lastName required"
	if got := fieldErrs(err); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestValidateIgnoresUnknown leaves unknown and server-set members to CheckBody.
func TestValidateIgnoresUnknown(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionSponsors)
	doc := decode(t, `{"name": "A", "id": 1, "version": "x", "bogus": [], "address": {"x": 1}}`)
	if err := c.Validate(doc, ""); err != nil {
		t.Errorf("got %v", err)
	}
}

func TestCheckBody(t *testing.T) {
	for _, tc := range []struct {
		collection, body, prefix string
		code                     string // "" for no error
		want                     string
	}{
		{"people", `{"firstName": "A", "address": "not checked here"}`, "", "", ""},
		{"people", `{"id": "x"}`, "", "read_only_field", "/id read_only_field"},
		{"people", `{"version": 3, "nickname": "x"}`, "", "read_only_field",
			"/nickname unknown_field\n/version read_only_field"},
		{"people", `{"nickname": "x"}`, "", "unknown_field", "/nickname unknown_field"},
		{"people", `{"Email": "a@b.example"}`, "", "unknown_field", "/Email unknown_field"},
		{"people", `{"address": {"street": "x", "city": "y"}}`, "", "unknown_field",
			"/address/street unknown_field"},
		{"people", `{"address": {"id": "x"}}`, "", "unknown_field", "/address/id unknown_field"},
		{"people", `{"socialMedia": [{"platform": "x"}, {"handle": "y"}]}`, "", "unknown_field",
			"/socialMedia/1/handle unknown_field"},
		{"events", `{"venue": [{"name": "a", "seats": 1, "address": {"line1": "x"}}]}`, "",
			"unknown_field",
			"/venue/0/address/line1 unknown_field\n/venue/0/seats unknown_field"},
		{"events", `{"eventId": "e1"}`, "", "unknown_field", "/eventId unknown_field"},
		{"sessions", `{"eventId": "e1"}`, "", "", ""},
		{"exhibitors", `{"contactPeople": [{"name": "a", "mail": "x"}]}`, "", "unknown_field",
			"/contactPeople/0/mail unknown_field"},
		{"exhibitors", `{"booths": [{"boothId": "a", "size": 9}]}`, "", "unknown_field",
			"/booths/0/size unknown_field"},
		{"tickets", `{"customFields": [{"key": "a", "value": 1}]}`, "", "unknown_field",
			"/customFields/0/value unknown_field"},
		{"tickets", `{"relationships": {"linkedFooIds": [], "linkedEventIds": []}}`, "",
			"unknown_field", "/relationships/linkedFooIds unknown_field"},
		{"tickets", `{"relationships": {"linkedEventIds": null}}`, "", "", ""},
		{"resources", `{"sourceRawData": {"id": 1, "x": {"y": 1}}}`, "", "", ""},
		{"resources", `{"sourceCustomFields": [{"anything": 1}]}`, "", "", ""},
		{"resources", `{"a/b~c": 1}`, "", "unknown_field", "/a~1b~0c unknown_field"},
		{"resources", `{"": 1}`, "", "unknown_field", "/ unknown_field"},
		{"sponsors", `{"tenantId": "t", "createdAt": "x"}`, "/records/3", "read_only_field",
			"/records/3/createdAt read_only_field\n/records/3/tenantId read_only_field"},
		{"sponsors", `{"deleted": true, "deletedAt": "x", "updatedAt": "x"}`, "",
			"read_only_field", "/deleted read_only_field\n/deletedAt read_only_field\n" +
				"/updatedAt read_only_field"},
	} {
		c := mustCollection(t, tc.collection)
		err := c.CheckBody(decode(t, tc.body), tc.prefix)
		if code := runmerge.ErrorCode(err); code != tc.code {
			t.Errorf("%s %s: code %q, want %q (%v)", tc.collection, tc.body, code, tc.code, err)
		}
		if got := fieldErrs(err); got != tc.want {
			t.Errorf("%s %s:\ngot  %q\nwant %q", tc.collection, tc.body, got, tc.want)
		}
	}
}

// TestCheckBodyEveryField checks that every documented field passes CheckBody
// and every server-set field is refused, in every collection.
func TestCheckBodyEveryField(t *testing.T) {
	for _, c := range runmerge.Collections() {
		body := map[string]any{}
		for _, f := range c.AllFields() {
			body[f.Name] = nil
		}
		if err := c.CheckBody(body, ""); err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		if err := c.CheckBody(decode(t, validRecords[c.Name]), ""); err != nil {
			t.Errorf("%s valid record: %v", c.Name, err)
		}
		for _, name := range runmerge.ServerFields() {
			err := c.CheckBody(map[string]any{name: "x", c.Fields[0].Name: "y"}, "")
			if got, want := fieldErrs(err), "/"+name+" read_only_field"; got != want {
				t.Errorf("%s %s: got %q, want %q", c.Name, name, got, want)
			}
		}
	}
}

// TestErrorJSON checks what a client sees of a validation error.
func TestErrorJSON(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionPeople)
	err := c.Validate(decode(t, `{"firstName": "A", "lastName": "B", "email": "nope"}`), "")
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(runmerge.ErrorFields(err)); err != nil {
		t.Fatal(err)
	}
	want := `[{"pointer":"/email","code":"invalid_format",` +
		`"detail":"must be an e-mail address such as ada@example.com"}]`
	if got := strings.TrimSpace(buf.String()); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if msg := runmerge.ErrorMessage(err); msg == "" {
		t.Error("no message")
	}
}

func TestSortFieldErrors(t *testing.T) {
	errs := []runmerge.FieldError{
		{Pointer: "/venue/10/name", Code: "a"},
		{Pointer: "/venue/2/name", Code: "b"},
		{Pointer: "/name", Code: "c"},
		{Pointer: "/venue/2", Code: "d"},
		{Pointer: "/name", Code: "e"},
		{Pointer: "/records/1/x", Code: "f"},
	}
	runmerge.SortFieldErrors(errs)
	var got []string
	for _, e := range errs {
		got = append(got, e.Pointer+" "+e.Code)
	}
	want := "/name c,/name e,/records/1/x f,/venue/2 d,/venue/2/name b,/venue/10/name a"
	if s := strings.Join(got, ","); s != want {
		t.Errorf("got %s\nwant %s", s, want)
	}
}

func TestApplyDefaults(t *testing.T) {
	c := mustCollection(t, runmerge.CollectionResources)
	before := runmerge.Now()
	for _, body := range []string{`{}`, `{"uploadDate": null}`} {
		doc := decode(t, body)
		c.ApplyDefaults(doc)
		s, _ := doc["uploadDate"].(string)
		record := runmerge.MergePatch(decode(t, minimalRecords[c.Name]), doc)
		if err := c.Validate(record, ""); err != nil {
			t.Errorf("%s: default is not valid: %v", body, err)
		}
		if s < runmerge.FormatTime(before) {
			t.Errorf("%s: uploadDate %q before %s", body, s, runmerge.FormatTime(before))
		}
	}
	doc := decode(t, `{"uploadDate": "2020-01-01T00:00:00Z"}`)
	c.ApplyDefaults(doc)
	if doc["uploadDate"] != "2020-01-01T00:00:00Z" {
		t.Errorf("ApplyDefaults replaced a value: %v", doc["uploadDate"])
	}
	for _, name := range runmerge.CollectionNames[:6] {
		doc := map[string]any{}
		mustCollection(t, name).ApplyDefaults(doc)
		if len(doc) != 0 {
			t.Errorf("%s: defaults %v, want none", name, doc)
		}
	}
}

func ExampleCollection_Validate() {
	people, _ := runmerge.CollectionByName("people")
	doc := map[string]any{"firstName": "Ada", "email": "ada@", "status": "Retired"}
	for _, f := range runmerge.ErrorFields(people.Validate(doc, "")) {
		fmt.Println(f.Pointer, f.Code)
	}
	// Output:
	// /email invalid_format
	// /lastName required
	// /status invalid_enum
}
