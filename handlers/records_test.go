package handlers_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/runmerge/runmerge"
)

// serverTime matches the times the server writes: UTC, milliseconds.
var serverTime = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// validBody returns a body that creates a record of coll, made distinct by n.
func validBody(coll string, n int) jsonObj {
	switch coll {
	case "events":
		return jsonObj{"name": fmt.Sprintf("Expo %d", n), "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-02T18:00:00Z", "status": "Upcoming", "timeZone": "Europe/Berlin",
			"capacity": 500, "venue": []any{jsonObj{"name": "Hall A",
				"address": jsonObj{"city": "Berlin", "country": "DE"}, "capacity": 200}},
			"socialMedia": []any{jsonObj{"platform": "mastodon", "url": "https://social.example/@expo"}}}
	case "people":
		return jsonObj{"firstName": "Ada", "lastName": fmt.Sprintf("Lovelace%d", n),
			"email": fmt.Sprintf("ada%d@example.com", n), "type": "Speaker", "status": "Active",
			"jobTitle": "Analyst", "address": jsonObj{"city": "London", "country": "UK"}}
	case "sessions":
		return jsonObj{"name": fmt.Sprintf("Keynote %d", n), "startDate": "2026-05-01T09:00:00Z",
			"endDate": "2026-05-01T10:00:00Z", "status": "Upcoming", "capacity": 80}
	case "exhibitors":
		return jsonObj{"name": fmt.Sprintf("Acme %d", n), "website": "https://acme.example",
			"contactPeople": []any{jsonObj{"name": "Bob", "email": "bob@acme.example"}},
			"booths":        []any{jsonObj{"boothId": "B1", "capacity": 4}}}
	case "sponsors":
		return jsonObj{"name": fmt.Sprintf("Globex %d", n), "tier": "Gold",
			"website": "https://globex.example", "logoUrl": "https://globex.example/logo.png"}
	case "tickets":
		return jsonObj{"ticketType": fmt.Sprintf("VIP %d", n), "price": 99.5, "currency": "EUR",
			"status": "valid", "validFrom": "2026-05-01T00:00:00Z", "validUntil": "2026-05-03T00:00:00Z"}
	case "resources":
		return jsonObj{"name": fmt.Sprintf("Slides %d", n), "resourceType": "Presentation",
			"url": "https://files.example/slides.pdf", "fileSize": 2048}
	}
	panic("no collection " + coll)
}

// with returns a copy of body with the members of change set, or removed
// where change holds nil.
func with(body, change jsonObj) jsonObj {
	return runmerge.MergePatch(body, change)
}

// TestRecordLifecycle creates, reads, changes and deletes a record of every
// collection, checking each answer as a client would read it.
func TestRecordLifecycle(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")

	for _, c := range runmerge.Collections() {
		t.Run(c.Name, func(t *testing.T) {
			base := "/v1/" + c.Name
			body := with(validBody(c.Name, 1), jsonObj{"sourceId": "crm", "remoteId": c.Name + "-1",
				"sourceRawData": jsonObj{"raw": true}})
			r := a.post(t, base+"?tenantId=acme", mustJSON(t, body))
			rec := r.object(t)
			r.want(t, http.StatusCreated)
			id, _ := rec["id"].(string)
			if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
				t.Errorf("id %q is not a UUID v7", id)
			}
			if rec["tenantId"] != "acme" || rec["version"] != json.Number("1") {
				t.Errorf("created record: %v", rec)
			}
			for _, f := range []string{"createdAt", "updatedAt"} {
				if s, _ := rec[f].(string); !serverTime.MatchString(s) {
					t.Errorf("%s %q is not in the server's time format", f, rec[f])
				}
			}
			if _, ok := rec["sourceRawData"]; ok {
				t.Error("the create answer shows sourceRawData")
			}
			for k, v := range body {
				if k != "sourceRawData" && mustJSON(t, rec[k]) != mustJSON(t, normalizeTimes(c, k, v)) {
					t.Errorf("%s: sent %v, got back %v", k, v, rec[k])
				}
			}
			if got := r.Header.Get("ETag"); got != `"1"` {
				t.Errorf("ETag %q, want \"1\"", got)
			}
			loc := r.Header.Get("Location")
			if !strings.HasPrefix(loc, base+"/"+id) {
				t.Fatalf("Location %q", loc)
			}

			g := a.get(t, loc)
			if got := g.object(t); mustJSON(t, got) != mustJSON(t, rec) {
				t.Errorf("GET Location: %s, created %s", g.Body, r.Body)
			}
			if g.Header.Get("ETag") != `"1"` {
				t.Errorf("GET ETag %q", g.Header.Get("ETag"))
			}
			one := base + "/" + id + "?tenantId=acme"
			withRaw := a.get(t, one+"&sourceRawData=true").object(t)
			if mustJSON(t, withRaw["sourceRawData"]) != `{"raw":true}` {
				t.Errorf("sourceRawData=true: %v", withRaw["sourceRawData"])
			}

			// A merge patch: null removes, other members replace.
			p := a.patch(t, one, `{"remoteId":null,"customFields":[{"key":"k","fieldName":"K",`+
				`"fieldType":"number","fieldValue":3}]}`)
			patched := p.object(t)
			p.want(t, http.StatusOK)
			if _, ok := patched["remoteId"]; ok || patched["sourceId"] != "crm" ||
				patched["version"] != json.Number("2") || p.Header.Get("ETag") != `"2"` {
				t.Errorf("after patch: %s, ETag %s", p.Body, p.Header.Get("ETag"))
			}
			// createdAt stays; updatedAt moves on (or stays, within the
			// same millisecond), never back.
			if up := fmt.Sprint(patched["updatedAt"]); patched["createdAt"] != rec["createdAt"] ||
				!serverTime.MatchString(up) || up < fmt.Sprint(rec["updatedAt"]) {
				t.Errorf("times after patch: %v, created %v", patched, rec)
			}
			if got := a.get(t, one+"&sourceRawData=true").object(t); mustJSON(t, got["sourceRawData"]) != `{"raw":true}` {
				t.Errorf("the patch lost sourceRawData: %v", got)
			}

			// If-Match: a stale ETag changes nothing; the current one works.
			a.patch(t, one, `{"sourceId":"stale"}`, "If-Match", `"1"`).problem(t, 412, "precondition_failed")
			a.patch(t, one, `{"sourceId":"bad"}`, "If-Match", `W/"x"`).problem(t, 412, "precondition_failed")
			a.delete(t, one, "If-Match", `"1"`).problem(t, 412, "precondition_failed")
			if got := a.get(t, one).object(t); got["sourceId"] != "crm" || got["version"] != json.Number("2") {
				t.Errorf("a stale If-Match changed the record: %v", got)
			}
			p = a.patch(t, one, `{"sourceId":"erp"}`, "If-Match", `"2"`)
			if got := p.object(t); got["sourceId"] != "erp" || p.Header.Get("ETag") != `"3"` {
				t.Errorf("patch with the current ETag: %s", p.Body)
			}

			// Delete: gone from reads and lists, a tombstone for sync clients.
			d := a.delete(t, one, "If-Match", `"3"`)
			d.want(t, http.StatusNoContent)
			if len(d.Body) != 0 {
				t.Errorf("204 with a body: %s", d.Body)
			}
			a.get(t, one).problem(t, 404, "not_found")
			a.patch(t, one, `{"sourceId":"x"}`).problem(t, 404, "not_found")
			a.delete(t, one).problem(t, 404, "not_found")
			if got := a.list(t, base+"?tenantId=acme", 50); len(got) != 0 {
				t.Errorf("list after delete: %v", got)
			}
			tombs := a.list(t, base+"?tenantId=acme&includeDeleted=true", 50)
			if len(tombs) != 1 {
				t.Fatalf("includeDeleted: %v", tombs)
			}
			if got := keys(tombs[0]); !slices.Equal(got, []string{"deleted", "deletedAt", "id", "tenantId", "updatedAt"}) {
				t.Errorf("tombstone members %v", got)
			}
			if tombs[0]["id"] != id || tombs[0]["deleted"] != true || tombs[0]["tenantId"] != "acme" ||
				!serverTime.MatchString(fmt.Sprint(tombs[0]["deletedAt"])) {
				t.Errorf("tombstone %v", tombs[0])
			}
		})
	}
}

// normalizeTimes returns what the server should show for value of field
// name: date-times in UTC with milliseconds.
func normalizeTimes(c *runmerge.Collection, name string, value any) any {
	if f, ok := c.Field(name); ok && f.Type == runmerge.TypeDatetime {
		t, err := time.Parse(time.RFC3339Nano, value.(string))
		if err == nil {
			return runmerge.FormatTime(t)
		}
	}
	return value
}

// TestRecordTimesNormalized checks that date-times a client sends come back
// in the server's own format, on create, patch, bulk, reads and lists.
func TestRecordTimesNormalized(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")

	ev := a.create(t, "acme", "events", jsonObj{"name": "E", "startDate": "2026-05-01T11:00:00+02:00",
		"endDate": "2026-05-01T09:00:00.123456789-05:00"})
	if ev["startDate"] != "2026-05-01T09:00:00.000Z" || ev["endDate"] != "2026-05-01T14:00:00.123Z" {
		t.Errorf("event times %v %v", ev["startDate"], ev["endDate"])
	}
	tk := a.create(t, "acme", "tickets", jsonObj{"ticketType": "Day", "price": 0, "currency": "USD",
		"status": "valid", "purchaseDate": "2026-04-30T23:30:00Z", "validFrom": "2026-05-01T00:00:00+00:00",
		"validUntil": "2026-05-01T23:59:59.9999Z"})
	if tk["purchaseDate"] != "2026-04-30T23:30:00.000Z" || tk["validFrom"] != "2026-05-01T00:00:00.000Z" ||
		tk["validUntil"] != "2026-05-01T23:59:59.999Z" {
		t.Errorf("ticket times %v %v %v", tk["purchaseDate"], tk["validFrom"], tk["validUntil"])
	}
	res := a.create(t, "acme", "resources", jsonObj{"name": "R", "resourceType": "Link", "url": "https://x.example"})
	if s, _ := res["uploadDate"].(string); !serverTime.MatchString(s) {
		t.Errorf("default uploadDate %q", res["uploadDate"])
	}
	res2 := a.create(t, "acme", "resources", jsonObj{"name": "R2", "resourceType": "Link",
		"url": "https://x.example", "uploadDate": "2026-01-02T03:04:05+01:00"})
	if res2["uploadDate"] != "2026-01-02T02:04:05.000Z" {
		t.Errorf("uploadDate %v", res2["uploadDate"])
	}

	p := a.patch(t, "/v1/events/"+ev["id"].(string)+"?tenantId=acme", `{"endDate":"2026-05-03T00:00:00+01:00"}`).object(t)
	if p["endDate"] != "2026-05-02T23:00:00.000Z" {
		t.Errorf("patched endDate %v", p["endDate"])
	}
	var bulk recPage
	a.post(t, "/v1/sessions/bulk?tenantId=acme", `{"records":[{"name":"S","startDate":"2026-05-01T09:00:00.5+00:00",`+
		`"endDate":"2026-05-01T10:00:00-00:30"}]}`).decode(t, 200, &bulk)
	if len(bulk.Data) != 1 || bulk.Data[0]["startDate"] != "2026-05-01T09:00:00.500Z" ||
		bulk.Data[0]["endDate"] != "2026-05-01T10:30:00.000Z" {
		t.Errorf("bulk session times %v", bulk.Data)
	}

	// What was stored is what reads and lists show.
	for _, coll := range []string{"events", "tickets", "resources", "sessions"} {
		for _, r := range a.list(t, "/v1/"+coll+"?tenantId=acme", 10) {
			c, _ := runmerge.CollectionByName(coll)
			for _, f := range c.Fields {
				if v, ok := r[f.Name]; ok && f.Type == runmerge.TypeDatetime && !serverTime.MatchString(fmt.Sprint(v)) {
					t.Errorf("%s %s: %s %v is not in the server's format", coll, r["id"], f.Name, v)
				}
			}
		}
	}
}

// TestRecordMergePatch checks RFC 7396 on nested objects and arrays, and that
// a patch that would break a rule is refused whole.
func TestRecordMergePatch(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	p := a.create(t, "acme", "people", jsonObj{"firstName": "Ada", "lastName": "L", "email": "ada@example.com",
		"address": jsonObj{"city": "London", "zipCode": "N1"}, "socialMedia": []any{
			jsonObj{"platform": "a", "url": "https://a.example"}, jsonObj{"platform": "b", "url": "https://b.example"}}})
	one := "/v1/people/" + p["id"].(string) + "?tenantId=acme"

	got := a.patch(t, one, `{"address":{"city":null,"country":"UK"},"socialMedia":[{"platform":"c",`+
		`"url":"https://c.example"}],"phone":"+44 1"}`).object(t)
	if mustJSON(t, got["address"]) != `{"country":"UK","zipCode":"N1"}` {
		t.Errorf("address after merge: %v", got["address"])
	}
	if mustJSON(t, got["socialMedia"]) != `[{"platform":"c","url":"https://c.example"}]` {
		t.Errorf("an array is replaced, not merged: %v", got["socialMedia"])
	}
	if got["phone"] != "+44 1" || got["firstName"] != "Ada" {
		t.Errorf("after patch: %v", got)
	}

	before := a.get(t, one)
	for _, tc := range []struct {
		body, status, code, pointer string
	}{
		{`{"email":null}`, "422", "validation_failed", "/email"},
		{`{"email":"not-an-address"}`, "422", "validation_failed", "/email"},
		{`{"firstName":"  "}`, "422", "validation_failed", "/firstName"},
		{`{"address":{"city":5}}`, "422", "validation_failed", "/address/city"},
		{`{"address":{"planet":"Mars"}}`, "422", "unknown_field", "/address/planet"},
		{`{"nickname":"A"}`, "422", "unknown_field", "/nickname"},
		{`{"version":9}`, "422", "read_only_field", "/version"},
		{`{"id":null}`, "422", "read_only_field", "/id"},
		{`{"relationships":{"linkedEventIds":["` + newUUID() + `"]}}`, "422", "validation_failed",
			"/relationships/linkedEventIds/0"},
		{`{"firstName":`, "400", "invalid_json", ""},
		{`[]`, "400", "invalid_json", ""},
	} {
		r := a.patch(t, one, tc.body)
		status := map[string]int{"400": 400, "422": 422}[tc.status]
		pr := r.problem(t, status, tc.code)
		if tc.pointer != "" && !pr.hasError(tc.pointer, "") {
			t.Errorf("patch %s: errors %v, want one at %s", tc.body, pr.Errors, tc.pointer)
		}
	}
	ev := a.create(t, "acme", "events", validBody("events", 1))
	a.patch(t, "/v1/events/"+ev["id"].(string)+"?tenantId=acme", `{"endDate":"2026-04-01T00:00:00Z"}`).
		problem(t, 422, "validation_failed")
	if after := a.get(t, one); string(after.Body) != string(before.Body) {
		t.Errorf("refused patches changed the record:\n%s\n%s", before.Body, after.Body)
	}
}

// TestRecordBulk checks bulk upsert: input order, create or update by
// sourceId and remoteId, the 1,000 limit, and all or nothing with errors
// that point at the record.
func TestRecordBulk(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	people := func(n int, change func(i int, p jsonObj)) string {
		var recs []any
		for i := range n {
			p := with(validBody("people", i), jsonObj{"sourceId": "crm", "remoteId": fmt.Sprint(i)})
			if change != nil {
				change(i, p)
			}
			recs = append(recs, p)
		}
		return mustJSON(t, jsonObj{"records": recs})
	}

	var first recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", people(3, nil)).decode(t, 200, &first)
	if len(first.Data) != 3 {
		t.Fatalf("bulk of 3: %v", first.Data)
	}
	for i, r := range first.Data {
		if r["remoteId"] != fmt.Sprint(i) || r["version"] != json.Number("1") {
			t.Errorf("record %d: %v", i, r)
		}
	}

	// The same pairs again, with changes, and one new record: updates in
	// place and one insert, in input order.
	var second recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", people(4, func(i int, p jsonObj) {
		p["jobTitle"] = "Engineer"
	})).decode(t, 200, &second)
	for i, r := range second.Data {
		wantVersion := "2"
		if i == 3 {
			wantVersion = "1"
		} else if r["id"] != first.Data[i]["id"] {
			t.Errorf("record %d: id %v, was %v", i, r["id"], first.Data[i]["id"])
		}
		if r["version"] != json.Number(wantVersion) || r["jobTitle"] != "Engineer" {
			t.Errorf("record %d after upsert: %v", i, r)
		}
	}
	if got := a.list(t, "/v1/people?tenantId=acme", 500); len(got) != 4 {
		t.Errorf("%d people after two bulks, want 4", len(got))
	}
	before := a.get(t, "/v1/people?tenantId=acme&includeDeleted=true&limit=500")

	// All or nothing: one bad record, and none of the others is written,
	// updates included. Every bad record is reported.
	r := a.post(t, "/v1/people/bulk?tenantId=acme", people(6, func(i int, p jsonObj) {
		p["jobTitle"] = "Changed"
		if i == 3 {
			p["email"] = "not-an-address"
		}
		if i == 5 {
			delete(p, "lastName")
		}
	}))
	pr := r.problem(t, 422, "validation_failed")
	if !pr.hasError("/records/3/email", "invalid_format") || !pr.hasError("/records/5/lastName", "required") {
		t.Errorf("errors %v, want /records/3/email and /records/5/lastName", pr.Errors)
	}
	for _, tc := range []struct {
		name, body    string
		status        int
		code, pointer string
	}{
		{"unknown field in a record", people(3, func(i int, p jsonObj) {
			if i == 2 {
				p["nickname"] = "x"
			}
		}), 422, "unknown_field", "/records/2/nickname"},
		{"server field in a record", people(2, func(i int, p jsonObj) {
			if i == 1 {
				p["createdAt"] = "2026-01-01T00:00:00Z"
			}
		}), 422, "read_only_field", "/records/1/createdAt"},
		{"link to nothing", people(2, func(i int, p jsonObj) {
			if i == 1 {
				p["relationships"] = jsonObj{"linkedSessionIds": []any{newUUID()}}
			}
		}), 422, "validation_failed", "/records/1/relationships/linkedSessionIds/0"},
		{"a record that is not an object", `{"records":[{"firstName":"A","lastName":"B",` +
			`"email":"a@b.example"},"x"]}`, 422, "validation_failed", "/records/1"},
		{"no records", `{"records":[]}`, 422, "validation_failed", "/records"},
		{"records not an array", `{"records":{}}`, 422, "validation_failed", "/records"},
		{"records missing", `{}`, 422, "validation_failed", "/records"},
		{"another member", `{"records":[],"upsert":true}`, 422, "unknown_field", "/upsert"},
		{"1,001 records", people(1001, nil), 422, "validation_failed", "/records"},
		{"malformed", `{"records":[`, 400, "invalid_json", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := a.post(t, "/v1/people/bulk?tenantId=acme", tc.body).problem(t, tc.status, tc.code)
			if tc.pointer != "" && !pr.hasError(tc.pointer, "") {
				t.Errorf("errors %v, want one at %s", pr.Errors, tc.pointer)
			}
		})
	}
	if after := a.get(t, "/v1/people?tenantId=acme&includeDeleted=true&limit=500"); string(after.Body) != string(before.Body) {
		t.Errorf("refused bulks wrote something")
	}

	// A pair taken by a record of another collection is a conflict.
	a.create(t, "acme", "sponsors", with(validBody("sponsors", 1), jsonObj{"sourceId": "crm", "remoteId": "s1"}))
	pr = a.post(t, "/v1/people/bulk?tenantId=acme", people(2, func(i int, p jsonObj) {
		if i == 1 {
			p["remoteId"] = "s1"
		}
	})).problem(t, 409, "conflict")
	if !pr.hasError("/records/1/remoteId", "") {
		t.Errorf("errors %v, want one at /records/1/remoteId", pr.Errors)
	}

	// A pair that comes twice in one bulk: the second updates the record
	// the first created.
	var twice recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", people(3, func(i int, p jsonObj) {
		p["remoteId"] = "twice"
		p["jobTitle"] = fmt.Sprint("Title ", i)
	})).decode(t, 200, &twice)
	for i, r := range twice.Data {
		if r["id"] != twice.Data[0]["id"] || r["version"] != json.Number(fmt.Sprint(i+1)) ||
			r["jobTitle"] != fmt.Sprint("Title ", i) {
			t.Errorf("record %d of a pair thrice: %v", i, r)
		}
	}
	got := a.list(t, "/v1/people?tenantId=acme&remoteId=twice", 50)
	if len(got) != 1 || got[0]["jobTitle"] != "Title 2" || got[0]["version"] != json.Number("3") {
		t.Errorf("after a pair thrice: %v", got)
	}

	// 1,000 is allowed, in one go.
	var big recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", people(1000, nil)).decode(t, 200, &big)
	if len(big.Data) != 1000 || big.Data[999]["remoteId"] != "999" {
		t.Errorf("bulk of 1,000: %d records", len(big.Data))
	}
	if got := a.list(t, "/v1/people?tenantId=acme", 500); len(got) != 1001 {
		t.Errorf("%d people after a bulk of 1,000 over 5, want 1001", len(got))
	}
}

// TestRecordIdempotency checks Idempotency-Key on create and bulk: a repeat
// gets the first answer and writes nothing; another body is 422; a repeat
// while the first still runs is 409; keys are per API key.
func TestRecordIdempotency(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	body := mustJSON(t, validBody("people", 1))

	first := a.post(t, "/v1/people?tenantId=acme", body, "Idempotency-Key", "k1")
	first.want(t, 201)
	again := a.post(t, "/v1/people?tenantId=acme", body, "Idempotency-Key", "k1")
	again.want(t, 201)
	if string(again.Body) != string(first.Body) || again.Header.Get("Location") != first.Header.Get("Location") ||
		again.Header.Get("ETag") != first.Header.Get("ETag") {
		t.Errorf("replay differs:\n%s %v\n%s %v", first.Body, first.Header, again.Body, again.Header)
	}
	if n := len(a.list(t, "/v1/people?tenantId=acme", 50)); n != 1 {
		t.Errorf("%d people after a replay, want 1", n)
	}
	a.post(t, "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 2)), "Idempotency-Key", "k1").
		problem(t, 422, "validation_failed")
	// The same key on another route is another request.
	a.post(t, "/v1/sponsors?tenantId=acme", mustJSON(t, validBody("sponsors", 1)), "Idempotency-Key", "k1").
		problem(t, 422, "validation_failed")
	a.post(t, "/v1/people?tenantId=acme", body, "Idempotency-Key", strings.Repeat("k", 256)).
		problem(t, 400, "invalid_parameter")

	// Keys belong to the API key that sent them.
	other := tenantAdminKey(t, a, "acme")
	r := a.post(t, "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 3)), "Idempotency-Key", "k1",
		"X-Api-Key", other)
	if r.Status != 201 || r.object(t)["id"] == first.object(t)["id"] {
		t.Errorf("another API key with the same Idempotency-Key: %d %s", r.Status, r.Body)
	}

	// Bulk.
	bulk := `{"records":[{"name":"S1"},{"name":"S2"}]}`
	b1 := a.post(t, "/v1/sponsors/bulk?tenantId=acme", bulk, "Idempotency-Key", "b1")
	b2 := a.post(t, "/v1/sponsors/bulk?tenantId=acme", bulk, "Idempotency-Key", "b1")
	b1.want(t, 200)
	if string(b1.Body) != string(b2.Body) || b2.Status != 200 {
		t.Errorf("bulk replay: %d %s", b2.Status, b2.Body)
	}
	if n := len(a.list(t, "/v1/sponsors?tenantId=acme", 50)); n != 2 {
		t.Errorf("%d sponsors after a bulk replay, want 2", n)
	}

	// While the first request waits for the tenant's file, which another
	// process holds locked, a repeat is 409; after, it is a replay.
	unlock := lockTenantFile(t, a, "acme")
	slow := make(chan *recResp, 1)
	go func() {
		r, err := a.send(http.MethodPost, "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 9)),
			"Idempotency-Key", "slow")
		if err != nil {
			t.Error(err)
		}
		slow <- r
	}()
	// Time for the first to reach the locked file, well inside the server's
	// 5 s busy timeout, even on a loaded machine.
	time.Sleep(time.Second)
	a.post(t, "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 9)), "Idempotency-Key", "slow").
		problem(t, 409, "request_in_progress")
	unlock()
	s := <-slow
	if s == nil {
		t.FailNow()
	}
	s.want(t, 201)
	replay := a.post(t, "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 9)), "Idempotency-Key", "slow")
	if replay.Status != 201 || string(replay.Body) != string(s.Body) {
		t.Errorf("after the first finished: %d %s", replay.Status, replay.Body)
	}
	if n := len(a.list(t, "/v1/people?tenantId=acme", 50)); n != 3 {
		t.Errorf("%d people, want 3", n)
	}
}

// lockTenantFile takes the write lock of a tenant's file from a connection
// of its own, as another process would, until unlock is called.
func lockTenantFile(t *testing.T, a *recAPI, tenant string) (unlock func()) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(a.DataDir, "tenants", tenant+".db")+
		"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	unlock = func() {
		once.Do(func() {
			conn.ExecContext(context.Background(), "ROLLBACK")
			conn.Close()
			db.Close()
		})
	}
	t.Cleanup(unlock)
	return unlock
}

// tenantAdminKey stores an admin key of tenant in the catalog and returns
// its secret.
func tenantAdminKey(t *testing.T, a *recAPI, tenant string) string {
	t.Helper()
	secret := runmerge.NewKeySecret()
	k := &runmerge.Key{ID: uuid.NewString(), Name: "test", TenantID: tenant, Role: runmerge.RoleAdmin,
		Hash: runmerge.HashKeySecret(secret), CreatedAt: runmerge.Now()}
	if err := a.Store.Catalog.CreateKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return secret
}

// TestRecordSourceRawData checks that sourceRawData is shown only to a
// request that says sourceRawData=true.
func TestRecordSourceRawData(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	raw := jsonObj{"crm": jsonObj{"id": 7, "tags": []any{"a"}}}
	rec := a.create(t, "acme", "sponsors", with(validBody("sponsors", 1), jsonObj{"sourceRawData": raw}))
	var bulk recPage
	a.post(t, "/v1/sponsors/bulk?tenantId=acme", mustJSON(t, jsonObj{"records": []any{
		with(validBody("sponsors", 2), jsonObj{"sourceRawData": raw})}})).decode(t, 200, &bulk)
	one := "/v1/sponsors/" + rec["id"].(string) + "?tenantId=acme"
	for _, tc := range []struct {
		path string
		show bool
	}{
		{one, false}, {one + "&sourceRawData=false", false}, {one + "&sourceRawData=true", true},
	} {
		got := a.get(t, tc.path).object(t)
		if _, ok := got["sourceRawData"]; ok != tc.show {
			t.Errorf("%s: sourceRawData shown %v", tc.path, ok)
		}
	}
	for _, tc := range []struct {
		query string
		show  bool
	}{{"", false}, {"&sourceRawData=false", false}, {"&sourceRawData=true", true}} {
		for _, r := range a.list(t, "/v1/sponsors?tenantId=acme"+tc.query, 10) {
			if _, ok := r["sourceRawData"]; ok != tc.show {
				t.Errorf("list%s: sourceRawData shown %v", tc.query, ok)
			} else if ok && mustJSON(t, r["sourceRawData"]) != mustJSON(t, raw) {
				t.Errorf("list%s: sourceRawData %v", tc.query, r["sourceRawData"])
			}
		}
	}
	if _, ok := rec["sourceRawData"]; ok {
		t.Error("create answer shows sourceRawData")
	}
	if _, ok := bulk.Data[0]["sourceRawData"]; ok {
		t.Error("bulk answer shows sourceRawData")
	}
}

// filterData is a tenant with records linked to each other, for the filter
// tests. Names are the records' ids.
type filterData map[string]string

func makeFilterData(t *testing.T, a *recAPI) filterData {
	t.Helper()
	d := filterData{}
	add := func(name, coll string, body jsonObj) {
		t.Helper()
		d[name] = a.create(t, "acme", coll, body)["id"].(string)
		time.Sleep(2 * time.Millisecond) // distinct updatedAt for updatedAfter
	}
	add("e1", "events", with(validBody("events", 1), jsonObj{"name": "Spring Summit", "status": "Upcoming"}))
	add("e2", "events", with(validBody("events", 2), jsonObj{"name": "Autumn Fair", "status": "Completed"}))
	add("e3", "events", with(validBody("events", 3), jsonObj{"name": "Gophercon Berlin", "status": "Upcoming"}))
	add("p1", "people", jsonObj{"firstName": "Ada", "lastName": "Lovelace", "email": "ada@analytical.example",
		"type": "Speaker", "status": "Active", "relationships": jsonObj{"linkedEventIds": []any{d["e1"]}}})
	add("p2", "people", jsonObj{"firstName": "Grace", "lastName": "Hopper", "email": "grace@navy.example",
		"type": "Attendee", "status": "Inactive", "relationships": jsonObj{"linkedEventIds": []any{d["e1"], d["e2"]}}})
	add("p3", "people", jsonObj{"firstName": "Linus", "lastName": "Torvalds", "email": "linus@kernel.example",
		"type": "Attendee", "status": "Active", "sourceId": "crm", "remoteId": "1"})
	add("p4", "people", jsonObj{"firstName": "Zoë", "lastName": "Ünal", "email": "zoe@example.com",
		"type": "Organizer", "sourceId": "crm", "remoteId": "2"})
	add("s1", "sessions", with(validBody("sessions", 1), jsonObj{"eventId": d["e1"], "status": "Ongoing"}))
	add("s2", "sessions", with(validBody("sessions", 2), jsonObj{"eventId": d["e2"],
		"relationships": jsonObj{"linkedPersonIds": []any{d["p1"]}}}))
	add("s3", "sessions", validBody("sessions", 3))
	add("t1", "tickets", with(validBody("tickets", 1), jsonObj{"status": "valid",
		"relationships": jsonObj{"linkedPersonIds": []any{d["p2"]}, "linkedEventIds": []any{d["e1"]}}}))
	add("t2", "tickets", with(validBody("tickets", 2), jsonObj{"status": "void"}))
	add("x1", "exhibitors", with(validBody("exhibitors", 1), jsonObj{"relationships": jsonObj{"linkedEventIds": []any{d["e3"]}}}))
	add("x2", "exhibitors", validBody("exhibitors", 2))
	add("sp1", "sponsors", with(validBody("sponsors", 1), jsonObj{"relationships": jsonObj{"linkedExhibitorIds": []any{d["x1"]}}}))
	add("r1", "resources", with(validBody("resources", 1), jsonObj{"relationships": jsonObj{
		"linkedSessionIds": []any{d["s1"]}, "linkedSponsorIds": []any{d["sp1"]}, "linkedTicketIds": []any{d["t1"]}}}))
	return d
}

// names maps ids back to the names of filterData.
func (d filterData) names(list []jsonObj) []string {
	byID := map[string]string{}
	for n, id := range d {
		byID[id] = n
	}
	out := []string{}
	for _, r := range list {
		out = append(out, byID[r["id"].(string)])
	}
	return out
}

// TestRecordFilters checks every documented list filter, each linked*Id
// from both sides of a link, and the combination of filters.
func TestRecordFilters(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	d := makeFilterData(t, a)

	tests := []struct {
		path string
		want []string // in change order
	}{
		{"/v1/events?", []string{"e1", "e2", "e3"}},
		{"/v1/events?status=Upcoming", []string{"e1", "e3"}},
		{"/v1/events?status=Cancelled", []string{}},
		{"/v1/people?status=Inactive", []string{"p2"}},
		{"/v1/people?type=Attendee", []string{"p2", "p3"}},
		{"/v1/people?type=Attendee&status=Active", []string{"p3"}},
		{"/v1/sessions?status=Ongoing", []string{"s1"}},
		{"/v1/tickets?status=void", []string{"t2"}},
		{"/v1/tickets?status=Void", []string{}},
		{"/v1/people?sourceId=crm", []string{"p3", "p4"}},
		{"/v1/people?remoteId=2", []string{"p4"}},
		{"/v1/people?sourceId=crm&remoteId=1", []string{"p3"}},
		{"/v1/people?sourceId=erp", []string{}},
		// Links, from the side that declared them and from the other.
		{"/v1/people?linkedEventId=" + d["e1"], []string{"p1", "p2"}},
		{"/v1/events?linkedPersonId=" + d["p2"], []string{"e1", "e2"}},
		{"/v1/sessions?linkedEventId=" + d["e1"], []string{"s1"}},
		{"/v1/events?linkedSessionId=" + d["s2"], []string{"e2"}},
		{"/v1/people?linkedSessionId=" + d["s2"], []string{"p1"}},
		{"/v1/sessions?linkedPersonId=" + d["p1"], []string{"s2"}},
		{"/v1/tickets?linkedPersonId=" + d["p2"], []string{"t1"}},
		{"/v1/people?linkedTicketId=" + d["t1"], []string{"p2"}},
		{"/v1/tickets?linkedEventId=" + d["e1"], []string{"t1"}},
		{"/v1/exhibitors?linkedEventId=" + d["e3"], []string{"x1"}},
		{"/v1/events?linkedExhibitorId=" + d["x1"], []string{"e3"}},
		{"/v1/exhibitors?linkedSponsorId=" + d["sp1"], []string{"x1"}},
		{"/v1/sponsors?linkedExhibitorId=" + d["x1"], []string{"sp1"}},
		{"/v1/resources?linkedSessionId=" + d["s1"], []string{"r1"}},
		{"/v1/sessions?linkedResourceId=" + d["r1"], []string{"s1"}},
		{"/v1/sponsors?linkedResourceId=" + d["r1"], []string{"sp1"}},
		{"/v1/tickets?linkedResourceId=" + d["r1"], []string{"t1"}},
		{"/v1/resources?linkedTicketId=" + d["t1"], []string{"r1"}},
		{"/v1/people?linkedEventId=" + d["e1"] + "&linkedSessionId=" + d["s2"], []string{"p1"}},
		{"/v1/people?linkedEventId=" + d["e1"] + "&status=Inactive", []string{"p2"}},
		{"/v1/people?linkedEventId=" + d["e3"], []string{}},
		{"/v1/people?linkedEventId=" + newUUID(), []string{}},
		// Search over names and e-mail: words, prefixes, any case, accents.
		{"/v1/people?q=ada", []string{"p1"}},
		{"/v1/people?q=LOVE", []string{"p1"}},
		{"/v1/people?q=grace+hopper", []string{"p2"}},
		{"/v1/people?q=hopper+ada", []string{}},
		{"/v1/people?q=kernel.example", []string{"p3"}},
		{"/v1/people?q=linus%40kernel.example", []string{"p3"}},
		{"/v1/people?q=zoe", []string{"p4"}},
		{"/v1/people?q=%C3%BCnal", []string{"p4"}},
		{"/v1/people?q=Analyst", []string{}}, // jobTitle is not searched
		{"/v1/people?q=a%22+OR+%22", []string{}},
		{"/v1/people?q=%C2%AB+grace+%E2%80%94+%F0%9F%98%80+hopper+%C2%BB", []string{"p2"}},
		// A long search is cut at 200 bytes, between characters.
		{"/v1/people?q=zo%C3%AB+" + strings.Repeat("x", 195) + "%C3%BC", []string{}},
		{"/v1/people?q=zo%C3%AB+" + strings.Repeat("%C3%BC", 97) + "+ignored", []string{}},
		// Words without a letter or digit do not count among the eight.
		{"/v1/people?q=" + strings.Repeat("%C2%AB+", 10) + "zo%C3%AB", []string{"p4"}},
		{"/v1/events?q=gopher", []string{"e3"}},
		{"/v1/events?q=berlin&status=Upcoming", []string{"e3"}},
		{"/v1/exhibitors?q=acme", []string{"x1", "x2"}},
		{"/v1/tickets?q=vip", []string{"t1", "t2"}},
		{"/v1/resources?q=slides", []string{"r1"}},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			path := tc.path + "&tenantId=acme"
			for _, limit := range []int{1, 50} {
				if got := d.names(a.list(t, path, limit)); !slices.Equal(got, tc.want) {
					t.Errorf("limit %d: got %v, want %v", limit, got, tc.want)
				}
			}
		})
	}

	// updatedAfter: records changed at or after the time, so that a client
	// that resumes from the last time it saw misses nothing.
	all := a.list(t, "/v1/people?tenantId=acme", 50)
	since := all[2]["updatedAt"].(string) // p3
	after := d.names(a.list(t, "/v1/people?tenantId=acme&updatedAfter="+url.QueryEscape(since), 50))
	if !slices.Equal(after, []string{"p3", "p4"}) {
		t.Errorf("updatedAfter=%s: %v, want [p3 p4]", since, after)
	}
	a.patch(t, "/v1/people/"+d["p1"]+"?tenantId=acme", `{"phone":"1"}`).want(t, 200)
	after = d.names(a.list(t, "/v1/people?tenantId=acme&updatedAfter="+url.QueryEscape(since), 50))
	if !slices.Equal(after, []string{"p3", "p4", "p1"}) {
		t.Errorf("after p1 changed: %v, want [p3 p4 p1]", after)
	}
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	if got := a.list(t, "/v1/people?tenantId=acme&updatedAfter="+future, 50); len(got) != 0 {
		t.Errorf("updatedAfter in the future: %v", d.names(got))
	}
	old := "2000-01-01T00:00:00%2B02:00"
	if got := d.names(a.list(t, "/v1/people?tenantId=acme&updatedAfter="+old, 50)); len(got) != 4 {
		t.Errorf("updatedAfter long ago: %v", got)
	}

	// includeDeleted: tombstones in change order, selected by every filter
	// their record matched but q.
	a.delete(t, "/v1/people/"+d["p2"]+"?tenantId=acme").want(t, 204)
	if got := d.names(a.list(t, "/v1/people?tenantId=acme", 50)); !slices.Equal(got, []string{"p3", "p4", "p1"}) {
		t.Errorf("after delete: %v", got)
	}
	for _, q := range []string{"&includeDeleted=false", ""} {
		if got := d.names(a.list(t, "/v1/people?tenantId=acme"+q, 50)); slices.Contains(got, "p2") {
			t.Errorf("%q shows the deleted record", q)
		}
	}
	withDeleted := a.list(t, "/v1/people?tenantId=acme&includeDeleted=true", 50)
	if got := d.names(withDeleted); !slices.Equal(got, []string{"p3", "p4", "p1", "p2"}) {
		t.Errorf("includeDeleted: %v", got)
	}
	if withDeleted[3]["deleted"] != true {
		t.Errorf("tombstone %v", withDeleted[3])
	}
	if got := d.names(a.list(t, "/v1/people?tenantId=acme&includeDeleted=true&updatedAfter="+
		url.QueryEscape(withDeleted[3]["updatedAt"].(string)), 50)); !slices.Equal(got, []string{"p2"}) {
		t.Errorf("includeDeleted with updatedAfter the delete: %v", got)
	}
	for _, q := range []string{"linkedEventId=" + d["e1"], "linkedEventId=" + d["e2"],
		"linkedTicketId=" + d["t1"], "status=Inactive", "type=Attendee"} {
		got := d.names(a.list(t, "/v1/people?tenantId=acme&includeDeleted=true&"+q, 50))
		if !slices.Contains(got, "p2") {
			t.Errorf("includeDeleted=true&%s does not show the tombstone: %v", q, got)
		}
		got = d.names(a.list(t, "/v1/people?tenantId=acme&"+q, 50))
		if slices.Contains(got, "p2") {
			t.Errorf("%s shows the deleted record: %v", q, got)
		}
	}
	// A tombstone holds no names to search.
	if got := d.names(a.list(t, "/v1/people?tenantId=acme&includeDeleted=true&q=grace", 50)); len(got) != 0 {
		t.Errorf("q=grace with includeDeleted: %v", got)
	}
	// The links the deleted record declared no longer select the records it
	// named; links others declared to it still select those others.
	for _, q := range []string{"", "&includeDeleted=true"} {
		if got := d.names(a.list(t, "/v1/events?tenantId=acme&linkedPersonId="+d["p2"]+q, 50)); len(got) != 0 {
			t.Errorf("events linked to a deleted person%s: %v", q, got)
		}
		if got := d.names(a.list(t, "/v1/tickets?tenantId=acme&linkedPersonId="+d["p2"]+q, 50)); !slices.Equal(got, []string{"t1"}) {
			t.Errorf("tickets that link to a deleted person%s: %v, want [t1]", q, got)
		}
	}
}

// TestRecordTombstonesInFilteredLists checks that a sync client that lists
// a collection with a filter and includeDeleted=true learns of every
// deletion of a record it saw there, and that a deleted record's sourceId
// and remoteId pair is free for a new record.
func TestRecordTombstonesInFilteredLists(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	e1 := a.create(t, "acme", "events", validBody("events", 1))["id"].(string)
	e2 := a.create(t, "acme", "events", validBody("events", 2))["id"].(string)
	person := func(n int, event string, change jsonObj) string {
		body := with(validBody("people", n), jsonObj{"sourceId": "crm", "remoteId": fmt.Sprint(n),
			"relationships": jsonObj{"linkedEventIds": []any{event}}})
		return a.create(t, "acme", "people", with(body, change))["id"].(string)
	}
	gone := person(1, e1, jsonObj{"status": "Inactive", "type": "Sponsor"})
	kept := person(2, e1, nil)
	other := person(3, e2, nil)
	session := a.create(t, "acme", "sessions", with(validBody("sessions", 1),
		jsonObj{"eventId": e1, "status": "Cancelled"}))["id"].(string)
	ticket := a.create(t, "acme", "tickets", with(validBody("tickets", 1),
		jsonObj{"status": "refunded", "sourceId": "shop", "remoteId": "t1"}))["id"].(string)
	time.Sleep(2 * time.Millisecond)
	var all recPage
	a.get(t, "/v1/people?tenantId=acme").decode(t, 200, &all)
	since := url.QueryEscape(all.Data[len(all.Data)-1]["updatedAt"].(string))

	for _, p := range []string{"people/" + gone, "people/" + other, "sessions/" + session, "tickets/" + ticket} {
		a.delete(t, "/v1/"+p+"?tenantId=acme").want(t, 204)
	}

	isTombstone := func(r jsonObj, id string) bool {
		return r["id"] == id && r["deleted"] == true && r["tenantId"] == "acme" &&
			slices.Equal(keys(r), []string{"deleted", "deletedAt", "id", "tenantId", "updatedAt"})
	}
	for _, tc := range []struct {
		path string
		want string // the tombstone the filter selects
	}{
		{"/v1/people?sourceId=crm", gone},
		{"/v1/people?remoteId=1", gone},
		{"/v1/people?sourceId=crm&remoteId=1", gone},
		{"/v1/people?status=Inactive", gone},
		{"/v1/people?type=Sponsor", gone},
		{"/v1/people?linkedEventId=" + e1, gone},
		{"/v1/people?linkedEventId=" + e1 + "&status=Inactive&type=Sponsor", gone},
		{"/v1/sessions?linkedEventId=" + e1, session},
		{"/v1/sessions?status=Cancelled", session},
		{"/v1/tickets?status=refunded", ticket},
		{"/v1/tickets?sourceId=shop", ticket},
	} {
		t.Run(tc.path, func(t *testing.T) {
			for _, sync := range []string{"", "&updatedAfter=" + since} {
				got := a.list(t, tc.path+"&tenantId=acme&includeDeleted=true"+sync, 1)
				if !slices.ContainsFunc(got, func(r jsonObj) bool { return isTombstone(r, tc.want) }) {
					t.Errorf("includeDeleted=true%s: no tombstone of %s in %v", sync, tc.want, got)
				}
				for _, q := range []string{"", "&includeDeleted=false"} {
					got := a.list(t, tc.path+"&tenantId=acme"+q+sync, 50)
					if slices.Contains(ids(got), tc.want) {
						t.Errorf("%s%s shows the deleted record: %v", q, sync, got)
					}
				}
			}
		})
	}
	withDeleted := ids(a.list(t, "/v1/people?tenantId=acme&includeDeleted=true&linkedEventId="+e1, 50))
	if !slices.Equal(withDeleted, []string{kept, gone}) {
		t.Errorf("people of e1 with includeDeleted: %v, want [%s %s]", withDeleted, kept, gone)
	}

	// An event manager sees the tombstones of the records it could see.
	var key jsonObj
	a.post(t, "/v1/keys", mustJSON(t, jsonObj{"name": "em", "tenantId": "acme", "role": "event_manager",
		"eventIds": []any{e1}})).decode(t, 201, &key)
	emList := func(path string) []string {
		t.Helper()
		var pg recPage
		a.do(t, "GET", path, "", "X-Api-Key", key["key"].(string)).decode(t, 200, &pg)
		return ids(pg.Data)
	}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/v1/people?includeDeleted=true", []string{kept, gone}},
		{"/v1/people?includeDeleted=true&sourceId=crm", []string{kept, gone}},
		{"/v1/people?includeDeleted=true&linkedEventId=" + e2, []string{}},
		{"/v1/people?sourceId=crm", []string{kept}},
		{"/v1/sessions?includeDeleted=true", []string{session}},
		{"/v1/sessions?includeDeleted=false", []string{}},
		{"/v1/tickets?includeDeleted=true", []string{}},
	} {
		if got := emList(tc.path + "&limit=500"); !slices.Equal(got, tc.want) {
			t.Errorf("event manager %s: %v, want %v", tc.path, got, tc.want)
		}
	}

	// The pair of a deleted record is free: a create takes it, and a bulk
	// upsert updates the new record, not the tombstone.
	again := a.create(t, "acme", "people", with(validBody("people", 11),
		jsonObj{"sourceId": "crm", "remoteId": "1"}))["id"].(string)
	var bulk recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", mustJSON(t, jsonObj{"records": []any{
		with(validBody("people", 12), jsonObj{"sourceId": "crm", "remoteId": "1"}),
		with(validBody("people", 13), jsonObj{"sourceId": "crm", "remoteId": "3"}),
	}})).decode(t, 200, &bulk)
	if bulk.Data[0]["id"] != again || bulk.Data[0]["version"] != json.Number("2") {
		t.Errorf("bulk over a reused pair: %v, want version 2 of %s", bulk.Data[0], again)
	}
	if bulk.Data[1]["id"] == other || bulk.Data[1]["version"] != json.Number("1") {
		t.Errorf("bulk over the pair of a tombstone: %v, want a new record", bulk.Data[1])
	}
	a.post(t, "/v1/people?tenantId=acme", mustJSON(t, with(validBody("people", 14),
		jsonObj{"sourceId": "crm", "remoteId": "1"}))).problem(t, 409, "conflict")
	got := a.list(t, "/v1/people?tenantId=acme&includeDeleted=true&remoteId=1", 50)
	if len(got) != 2 || !isTombstone(got[0], gone) || got[1]["id"] != again {
		t.Errorf("remoteId=1 with includeDeleted: %v, want the tombstone then the new record", got)
	}
}

// TestRecordListParameters checks that every unknown parameter and every
// bad value is 400 invalid_parameter naming the parameter, so that a
// misspelt filter never returns unfiltered data.
func TestRecordListParameters(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	a.create(t, "acme", "people", validBody("people", 1))
	neg := "eyJzIjotMX0" // {"s":-1}
	tests := []struct{ path, param string }{
		{"/v1/people?limt=5", "limt"},
		{"/v1/people?stauts=Active", "stauts"},
		{"/v1/people?linkedEventIds=x", "linkedEventIds"},
		{"/v1/people?Status=Active", "Status"},
		{"/v1/people?email=ada1@example.com", "email"},
		{"/v1/exhibitors?status=Active", "status"},
		{"/v1/events?type=Speaker", "type"},
		{"/v1/people?status=Away", "status"},
		{"/v1/people?status=active", "status"},
		{"/v1/people?type=Guest", "type"},
		{"/v1/events?status=", "status"},
		{"/v1/tickets?status=", "status"},
		{"/v1/people?limit=0", "limit"},
		{"/v1/people?limit=501", "limit"},
		{"/v1/people?limit=-1", "limit"},
		{"/v1/people?limit=ten", "limit"},
		{"/v1/people?limit=1.5", "limit"},
		{"/v1/people?limit=", "limit"},
		{"/v1/people?limit=1&limit=2", "limit"},
		{"/v1/people?cursor=!!!", "cursor"},
		{"/v1/people?cursor=bm90LWpzb24", "cursor"},
		{"/v1/people?cursor=" + neg, "cursor"},
		{"/v1/people?cursor=", "cursor"},
		{"/v1/people?updatedAfter=yesterday", "updatedAfter"},
		{"/v1/people?updatedAfter=2026-13-01T00:00:00Z", "updatedAfter"},
		{"/v1/people?updatedAfter=2026-05-01", "updatedAfter"},
		{"/v1/people?sourceRawData=yes", "sourceRawData"},
		{"/v1/people?includeDeleted=1", "includeDeleted"},
		{"/v1/people?sourceId=", "sourceId"},
		{"/v1/people?remoteId=", "remoteId"},
		{"/v1/people?linkedEventId=", "linkedEventId"},
		{"/v1/people?q=", "q"},
		{"/v1/people?q=%21%21%21", "q"},
		{"/v1/people?q=%FF%FE", "q"},                  // not UTF-8
		{"/v1/people?q=ada%FF", "q"},                  // a word, then a byte that is not UTF-8
		{"/v1/people?q=Zo%C3", "q"},                   // a character cut short
		{"/v1/people?q=%ED%A0%80", "q"},               // a surrogate, which UTF-8 never holds
		{"/v1/people?q=%C2%AB+%E2%80%94+%C2%BB", "q"}, // « — »: no letter or digit
		{"/v1/people?q=%F0%9F%98%80", "q"},            // an emoji alone
		{"/v1/people/" + newUUID() + "?expand=x", "expand"},
		{"/v1/people/" + newUUID() + "?sourceRawData=1", "sourceRawData"},
		{"/v1/people/" + newUUID() + "?limit=5", "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			p := a.get(t, tc.path+"&tenantId=acme").problem(t, 400, "invalid_parameter")
			if len(p.Errors) != 1 || p.Errors[0].Pointer != tc.param {
				t.Errorf("errors %v, want one naming %q", p.Errors, tc.param)
			}
		})
	}
	a.get(t, "/v1/people?tenantId=acme&limit=%zz").problem(t, 400, "invalid_parameter")

	// Writes refuse unknown parameters too, and write nothing.
	before := a.get(t, "/v1/people?tenantId=acme")
	a.post(t, "/v1/people?tenantId=acme&dryRun=true", mustJSON(t, validBody("people", 2))).
		problem(t, 400, "invalid_parameter")
	a.post(t, "/v1/people/bulk?tenantId=acme&mode=upsert", `{"records":[{"firstName":"A","lastName":"B",`+
		`"email":"a@b.example"}]}`).problem(t, 400, "invalid_parameter")
	if after := a.get(t, "/v1/people?tenantId=acme"); string(after.Body) != string(before.Body) {
		t.Error("a refused request wrote something")
	}

	// The limits that are allowed.
	for i := range 4 {
		a.create(t, "acme", "people", validBody("people", 10+i))
	}
	for _, tc := range []struct {
		q    string
		want int
	}{{"", 5}, {"&limit=1", 1}, {"&limit=500", 5}, {"&limit=3", 3}} {
		var pg recPage
		a.get(t, "/v1/people?tenantId=acme"+tc.q).decode(t, 200, &pg)
		if len(pg.Data) != tc.want {
			t.Errorf("%q: %d records, want %d", tc.q, len(pg.Data), tc.want)
		}
		if (tc.want == 5) != (pg.NextCursor == nil) {
			t.Errorf("%q: nextCursor %v", tc.q, pg.NextCursor)
		}
	}
}

// TestRecordRequestErrors checks the statuses of section 3 that are not
// about a body's fields: content type, malformed JSON, unknown ids and
// tenants, a suspended tenant, a taken sourceId and remoteId pair.
func TestRecordRequestErrors(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	a.tenant(t, "globex")
	ev := a.create(t, "acme", "events", with(validBody("events", 1), jsonObj{"sourceId": "crm", "remoteId": "e1"}))
	one := "/v1/events/" + ev["id"].(string) + "?tenantId=acme"
	body := mustJSON(t, validBody("events", 2))

	for _, tc := range []struct {
		name         string
		method, path string
		body         string
		header       []string
		status       int
		code         string
	}{
		{"create as text", "POST", "/v1/events?tenantId=acme", body, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"create as form", "POST", "/v1/events?tenantId=acme", "name=x", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"create without content type", "POST", "/v1/events?tenantId=acme", body, []string{"Content-Type", ""}, 415, "unsupported_media_type"},
		{"patch as text", "PATCH", one, `{"name":"x"}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"bulk as text", "POST", "/v1/events/bulk?tenantId=acme", `{"records":[]}`, []string{"Content-Type", "text/plain"}, 415, "unsupported_media_type"},
		{"truncated", "POST", "/v1/events?tenantId=acme", `{"name":`, nil, 400, "invalid_json"},
		{"syntax", "POST", "/v1/events?tenantId=acme", `{"name" "x"}`, nil, 400, "invalid_json"},
		{"array", "POST", "/v1/events?tenantId=acme", `[` + body + `]`, nil, 400, "invalid_json"},
		{"null", "POST", "/v1/events?tenantId=acme", `null`, nil, 400, "invalid_json"},
		{"two objects", "POST", "/v1/events?tenantId=acme", body + body, nil, 400, "invalid_json"},
		{"empty", "POST", "/v1/events?tenantId=acme", ` `, nil, 400, "invalid_json"},
		{"patch malformed", "PATCH", one, `{"name":}`, nil, 400, "invalid_json"},
		{"bulk malformed", "POST", "/v1/events/bulk?tenantId=acme", `{"records":[}`, nil, 400, "invalid_json"},
		{"get unknown id", "GET", "/v1/events/" + newUUID() + "?tenantId=acme", "", nil, 404, "not_found"},
		{"get not a uuid", "GET", "/v1/events/nope?tenantId=acme", "", nil, 404, "not_found"},
		{"patch unknown id", "PATCH", "/v1/events/" + newUUID() + "?tenantId=acme", `{"name":"x"}`, nil, 404, "not_found"},
		{"delete unknown id", "DELETE", "/v1/events/" + newUUID() + "?tenantId=acme", "", nil, 404, "not_found"},
		{"get from another collection", "GET", "/v1/sessions/" + ev["id"].(string) + "?tenantId=acme", "", nil, 404, "not_found"},
		{"delete from another collection", "DELETE", "/v1/people/" + ev["id"].(string) + "?tenantId=acme", "", nil, 404, "not_found"},
		{"get from another tenant", "GET", "/v1/events/" + ev["id"].(string) + "?tenantId=globex", "", nil, 404, "not_found"},
		{"patch in another tenant", "PATCH", "/v1/events/" + ev["id"].(string) + "?tenantId=globex", `{"name":"x"}`, nil, 404, "not_found"},
		{"unknown tenant list", "GET", "/v1/events?tenantId=initech", "", nil, 404, "not_found"},
		{"unknown tenant create", "POST", "/v1/events?tenantId=initech", body, nil, 404, "not_found"},
		{"bad tenant id", "GET", "/v1/events?tenantId=..%2Fcatalog", "", nil, 404, "not_found"},
		{"taken source pair", "POST", "/v1/events?tenantId=acme", mustJSON(t, with(validBody("events", 3),
			jsonObj{"sourceId": "crm", "remoteId": "e1"})), nil, 409, "conflict"},
		{"unknown collection", "GET", "/v1/widgets?tenantId=acme", "", nil, 404, "not_found"},
		{"put a record", "PUT", one, `{"name":"x"}`, nil, 405, "method_not_allowed"},
		{"no key", "GET", one, "", []string{"X-Api-Key", ""}, 401, "unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.do(t, tc.method, tc.path, tc.body, tc.header...).problem(t, tc.status, tc.code)
		})
	}
	// A second record may not take the pair by a patch either.
	ev2 := a.create(t, "acme", "events", validBody("events", 4))
	a.patch(t, "/v1/events/"+ev2["id"].(string)+"?tenantId=acme", `{"sourceId":"crm","remoteId":"e1"}`).
		problem(t, 409, "conflict")
	a.delete(t, "/v1/events/"+ev2["id"].(string)+"?tenantId=acme").want(t, 204)
	if got := a.list(t, "/v1/events?tenantId=acme", 50); len(got) != 1 || got[0]["id"] != ev["id"] ||
		got[0]["version"] != json.Number("1") {
		t.Errorf("refused requests changed the events: %v", got)
	}

	// A suspended tenant answers 403 tenant_suspended to every data call and
	// keeps its data for when it is resumed.
	a.patch(t, "/v1/tenants/acme", `{"status":"suspended"}`).want(t, 200)
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/v1/events?tenantId=acme", ""},
		{"POST", "/v1/events?tenantId=acme", body},
		{"POST", "/v1/events/bulk?tenantId=acme", `{"records":[` + body + `]}`},
		{"GET", one, ""},
		{"PATCH", one, `{"name":"x"}`},
		{"DELETE", one, ""},
		{"GET", "/v1/people?tenantId=acme&q=ada", ""},
	} {
		a.do(t, r.method, r.path, r.body).problem(t, 403, "tenant_suspended")
	}
	tenantKey := tenantAdminKey(t, a, "acme")
	a.do(t, "GET", "/v1/events", "", "X-Api-Key", tenantKey).problem(t, 403, "tenant_suspended")
	a.patch(t, "/v1/tenants/acme", `{"status":"active"}`).want(t, 200)
	if got := a.get(t, one).object(t); got["version"] != json.Number("1") {
		t.Errorf("after resume: %v", got)
	}
	a.do(t, "GET", "/v1/events", "", "X-Api-Key", tenantKey).want(t, 200)
}

// badInput is a create body that must be refused.
type badInput struct {
	name    string
	change  jsonObj // merged onto a valid body; nil members are removed
	status  int
	code    string // the problem's code
	pointer string // a field error at this pointer
	field   string // with this code, unless ""
}

// commonBadInputs are refused in every collection. missing is the id of no
// record; the pair sourceId "taken", remoteId coll is taken.
func commonBadInputs(coll, missing string) []badInput {
	cf := func(item jsonObj) jsonObj { return jsonObj{"customFields": []any{item}} }
	var out []badInput
	for _, f := range runmerge.ServerFields() {
		out = append(out, badInput{"server field " + f, jsonObj{f: "x"}, 422, "read_only_field", "/" + f, "read_only_field"})
	}
	return append(out, []badInput{
		{"unknown field", jsonObj{"nickname": "x"}, 422, "unknown_field", "/nickname", "unknown_field"},
		{"unknown null field", jsonObj{"legacyId": json.RawMessage("null")}, 422, "unknown_field", "/legacyId", ""},
		{"unknown custom field member", cf(jsonObj{"key": "k", "colour": "red"}), 422, "unknown_field", "/customFields/0/colour", ""},
		{"custom field type", cf(jsonObj{"key": "k", "fieldType": "color"}), 422, "validation_failed", "/customFields/0/fieldType", "invalid_enum"},
		{"custom field value of another type", cf(jsonObj{"key": "k", "fieldType": "number", "fieldValue": "ten"}),
			422, "validation_failed", "/customFields/0/fieldValue", "invalid_type"},
		{"custom field date", cf(jsonObj{"key": "k", "fieldType": "date", "fieldValue": "May 1st"}),
			422, "validation_failed", "/customFields/0/fieldValue", "invalid_format"},
		{"customFields not an array", jsonObj{"customFields": jsonObj{}}, 422, "validation_failed", "/customFields", "invalid_type"},
		{"sourceCustomFields item", jsonObj{"sourceCustomFields": []any{"x"}}, 422, "validation_failed", "/sourceCustomFields/0", "invalid_type"},
		{"unknown relationship", jsonObj{"relationships": jsonObj{"linkedWidgetIds": []any{}}}, 422, "unknown_field",
			"/relationships/linkedWidgetIds", ""},
		{"link to nothing", jsonObj{"relationships": jsonObj{"linkedEventIds": []any{missing}}}, 422,
			"validation_failed", "/relationships/linkedEventIds/0", "unknown_reference"},
		{"links not an array", jsonObj{"relationships": jsonObj{"linkedPersonIds": "x"}}, 422, "validation_failed",
			"/relationships/linkedPersonIds", "invalid_type"},
		{"null link", jsonObj{"relationships": jsonObj{"linkedSessionIds": []any{json.RawMessage("null")}}}, 422,
			"validation_failed", "/relationships/linkedSessionIds/0", "invalid_type"},
		{"relationships not an object", jsonObj{"relationships": []any{}}, 422, "validation_failed", "/relationships", "invalid_type"},
		{"sourceRawData not an object", jsonObj{"sourceRawData": "raw"}, 422, "validation_failed", "/sourceRawData", "invalid_type"},
		{"sourceId a number", jsonObj{"sourceId": 7}, 422, "validation_failed", "/sourceId", "invalid_type"},
		{"remoteId too long", jsonObj{"remoteId": strings.Repeat("r", 1001)}, 422, "validation_failed", "/remoteId", "too_long"},
		{"taken source pair", jsonObj{"sourceId": "taken", "remoteId": coll}, 409, "conflict", "/remoteId", ""},
	}...)
}

// collectionBadInputs are refused in one collection each.
func collectionBadInputs(missing string) map[string][]badInput {
	long := strings.Repeat("x", 1001)
	return map[string][]badInput{
		"events": {
			{"name a number", jsonObj{"name": 5}, 422, "validation_failed", "/name", "invalid_type"},
			{"name blank", jsonObj{"name": "   "}, 422, "validation_failed", "/name", "required"},
			{"name too long", jsonObj{"name": long}, 422, "validation_failed", "/name", "too_long"},
			{"startDate not RFC 3339", jsonObj{"startDate": "2026-05-01 09:00"}, 422, "validation_failed", "/startDate", "invalid_format"},
			{"startDate a date", jsonObj{"startDate": "2026-05-01"}, 422, "validation_failed", "/startDate", "invalid_format"},
			{"endDate before startDate", jsonObj{"endDate": "2026-04-30T09:00:00Z"}, 422, "validation_failed", "/endDate", "invalid_range"},
			{"timeZone", jsonObj{"timeZone": "Mars/Olympus"}, 422, "validation_failed", "/timeZone", "invalid_format"},
			{"capacity negative", jsonObj{"capacity": -1}, 422, "validation_failed", "/capacity", "out_of_range"},
			{"capacity fractional", jsonObj{"capacity": 1.5}, 422, "validation_failed", "/capacity", "invalid_type"},
			{"status", jsonObj{"status": "Postponed!"}, 422, "validation_failed", "/status", "invalid_enum"},
			{"venue without name", jsonObj{"venue": []any{jsonObj{"capacity": 1}}}, 422, "validation_failed", "/venue/0/name", "required"},
			{"venue address member", jsonObj{"venue": []any{jsonObj{"name": "H", "address": jsonObj{"planet": "x"}}}},
				422, "unknown_field", "/venue/0/address/planet", ""},
			{"social media url", jsonObj{"socialMedia": []any{jsonObj{"platform": "x", "url": "not a url"}}},
				422, "validation_failed", "/socialMedia/0/url", "invalid_format"},
		},
		"people": {
			{"email", jsonObj{"email": "ada at example"}, 422, "validation_failed", "/email", "invalid_format"},
			{"email with a name", jsonObj{"email": "Ada <ada@example.com>"}, 422, "validation_failed", "/email", "invalid_format"},
			{"firstName blank", jsonObj{"firstName": ""}, 422, "validation_failed", "/firstName", "required"},
			{"lastName null", jsonObj{"lastName": json.RawMessage("null")}, 422, "validation_failed", "/lastName", "required"},
			{"status", jsonObj{"status": "Away"}, 422, "validation_failed", "/status", "invalid_enum"},
			{"type", jsonObj{"type": "Guest"}, 422, "validation_failed", "/type", "invalid_enum"},
			{"address member type", jsonObj{"address": jsonObj{"zipCode": 12345}}, 422, "validation_failed", "/address/zipCode", "invalid_type"},
			{"address not an object", jsonObj{"address": "Main St"}, 422, "validation_failed", "/address", "invalid_type"},
			{"social media without platform", jsonObj{"socialMedia": []any{jsonObj{"url": "https://x.example"}}},
				422, "validation_failed", "/socialMedia/0/platform", "required"},
			{"phone an array", jsonObj{"phone": []any{"1"}}, 422, "validation_failed", "/phone", "invalid_type"},
		},
		"sessions": {
			{"eventId of nothing", jsonObj{"eventId": missing}, 422, "validation_failed", "/eventId", "unknown_reference"},
			{"eventId a number", jsonObj{"eventId": 1}, 422, "validation_failed", "/eventId", "invalid_type"},
			{"endDate before startDate", jsonObj{"endDate": "2026-05-01T08:59:59.999Z"}, 422, "validation_failed", "/endDate", "invalid_range"},
			{"startDate offset", jsonObj{"startDate": "2026-05-01T09:00:00+25:00"}, 422, "validation_failed", "/startDate", "invalid_format"},
			{"status Postponed", jsonObj{"status": "Postponed"}, 422, "validation_failed", "/status", "invalid_enum"},
			{"capacity a string", jsonObj{"capacity": "10"}, 422, "validation_failed", "/capacity", "invalid_type"},
			{"timeZone Local", jsonObj{"timeZone": "Local"}, 422, "validation_failed", "/timeZone", "invalid_format"},
		},
		"exhibitors": {
			{"website ftp", jsonObj{"website": "ftp://acme.example"}, 422, "validation_failed", "/website", "invalid_format"},
			{"website without scheme", jsonObj{"website": "acme.example"}, 422, "validation_failed", "/website", "invalid_format"},
			{"contact email", jsonObj{"contactPeople": []any{jsonObj{"name": "B", "email": "b@"}}}, 422, "validation_failed",
				"/contactPeople/0/email", "invalid_format"},
			{"contact without email", jsonObj{"contactPeople": []any{jsonObj{"name": "B"}}}, 422, "validation_failed",
				"/contactPeople/0/email", "required"},
			{"booth without boothId", jsonObj{"booths": []any{jsonObj{"boothId": "B1"}, jsonObj{"location": "Hall"}}},
				422, "validation_failed", "/booths/1/boothId", "required"},
			{"booth capacity", jsonObj{"booths": []any{jsonObj{"boothId": "B1", "capacity": -2}}}, 422,
				"validation_failed", "/booths/0/capacity", "out_of_range"},
			{"social links item", jsonObj{"socialMediaLinks": []any{"https://x.example"}}, 422, "validation_failed",
				"/socialMediaLinks/0", "invalid_type"},
			{"name missing and website bad", jsonObj{"name": json.RawMessage("null"), "website": "x"}, 422,
				"validation_failed", "/website", "invalid_format"},
		},
		"sponsors": {
			{"logoUrl", jsonObj{"logoUrl": "javascript:alert(1)"}, 422, "validation_failed", "/logoUrl", "invalid_format"},
			{"website spaces", jsonObj{"website": "https://glo bex.example"}, 422, "validation_failed", "/website", "invalid_format"},
			{"contact without name", jsonObj{"contactPeople": []any{jsonObj{"email": "a@b.example"}}}, 422,
				"validation_failed", "/contactPeople/0/name", "required"},
			{"address member", jsonObj{"address": jsonObj{"region": "x"}}, 422, "unknown_field", "/address/region", ""},
			{"tier an object", jsonObj{"tier": jsonObj{}}, 422, "validation_failed", "/tier", "invalid_type"},
			{"description too long", jsonObj{"description": strings.Repeat("d", 100_001)}, 422, "validation_failed",
				"/description", "too_long"},
		},
		"tickets": {
			{"price negative", jsonObj{"price": -0.01}, 422, "validation_failed", "/price", "out_of_range"},
			{"price a string", jsonObj{"price": "10"}, 422, "validation_failed", "/price", "invalid_type"},
			{"currency lower case", jsonObj{"currency": "eur"}, 422, "validation_failed", "/currency", "invalid_format"},
			{"currency unknown", jsonObj{"currency": "EURO"}, 422, "validation_failed", "/currency", "invalid_format"},
			{"status blank", jsonObj{"status": " "}, 422, "validation_failed", "/status", "required"},
			{"purchaseDate", jsonObj{"purchaseDate": "yesterday"}, 422, "validation_failed", "/purchaseDate", "invalid_format"},
			{"validUntil before validFrom", jsonObj{"validUntil": "2026-04-30T00:00:00Z"}, 422, "validation_failed",
				"/validUntil", "invalid_range"},
			{"seatNumber a number", jsonObj{"seatNumber": 12}, 422, "validation_failed", "/seatNumber", "invalid_type"},
		},
		"resources": {
			{"resourceType", jsonObj{"resourceType": "Spreadsheet"}, 422, "validation_failed", "/resourceType", "invalid_enum"},
			{"url javascript", jsonObj{"url": "javascript:alert(1)"}, 422, "validation_failed", "/url", "invalid_format"},
			{"url relative", jsonObj{"url": "/slides.pdf"}, 422, "validation_failed", "/url", "invalid_format"},
			{"fileSize fractional", jsonObj{"fileSize": 1.5}, 422, "validation_failed", "/fileSize", "invalid_type"},
			{"fileSize negative", jsonObj{"fileSize": -1}, 422, "validation_failed", "/fileSize", "out_of_range"},
			{"fileSize too large", jsonObj{"fileSize": json.Number("1e30")}, 422, "validation_failed", "/fileSize", "out_of_range"},
			{"uploadDate", jsonObj{"uploadDate": "2026-02-30T00:00:00Z"}, 422, "validation_failed", "/uploadDate", "invalid_format"},
		},
	}
}

// TestRecordBadInputs sends, for every collection, at least twenty bodies
// that break a rule, each on its own and as the second record of a bulk,
// and checks the status, code and pointer of each answer and that nothing
// was written.
func TestRecordBadInputs(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	missing := newUUID()
	specific := collectionBadInputs(missing)

	for _, c := range runmerge.Collections() {
		t.Run(c.Name, func(t *testing.T) {
			a.create(t, "acme", c.Name, with(validBody(c.Name, 0), jsonObj{"sourceId": "taken", "remoteId": c.Name}))
			cases := append(commonBadInputs(c.Name, missing), specific[c.Name]...)
			for _, f := range c.Fields {
				if f.Required {
					cases = append(cases, badInput{"without " + f.Name, jsonObj{f.Name: nil}, 422,
						"validation_failed", "/" + f.Name, "required"})
				}
			}
			if len(cases) < 20 {
				t.Fatalf("only %d bad inputs", len(cases))
			}
			list := "/v1/" + c.Name + "?tenantId=acme&includeDeleted=true&sourceRawData=true"
			before := string(a.get(t, list).Body)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					body := with(validBody(c.Name, 1), tc.change)
					for k, v := range body {
						if v, ok := v.(json.RawMessage); ok && string(v) == "null" {
							body[k] = nil
						}
					}
					p := a.post(t, "/v1/"+c.Name+"?tenantId=acme", mustJSON(t, body)).problem(t, tc.status, tc.code)
					if !p.hasError(tc.pointer, tc.field) {
						t.Errorf("errors %v, want %s at %s", p.Errors, tc.field, tc.pointer)
					}
					if tc.status != 409 { // a taken pair is an update in a bulk
						bulk := mustJSON(t, jsonObj{"records": []any{validBody(c.Name, 2), body}})
						p := a.post(t, "/v1/"+c.Name+"/bulk?tenantId=acme", bulk).problem(t, tc.status, tc.code)
						if !p.hasError("/records/1"+tc.pointer, tc.field) {
							t.Errorf("bulk errors %v, want %s at /records/1%s", p.Errors, tc.field, tc.pointer)
						}
					}
					if after := string(a.get(t, list).Body); after != before {
						t.Fatalf("the refused body wrote something:\n%s\n%s", before, after)
					}
				})
			}
		})
	}
}

// TestRecordPaging pages through a collection and checks that each record
// comes exactly once, in change order, with nextCursor null on the last page.
func TestRecordPaging(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	var recs []any
	for i := range 52 {
		recs = append(recs, validBody("tickets", i))
	}
	var created recPage
	a.post(t, "/v1/tickets/bulk?tenantId=acme", mustJSON(t, jsonObj{"records": recs})).decode(t, 200, &created)
	// Changing a record moves it to the end.
	a.patch(t, "/v1/tickets/"+created.Data[0]["id"].(string)+"?tenantId=acme", `{"seatNumber":"1A"}`).want(t, 200)
	want := append(ids(created.Data[1:]), created.Data[0]["id"].(string))
	for _, limit := range []int{1, 7, 50, 52, 53, 500} {
		if got := ids(a.list(t, "/v1/tickets?tenantId=acme", limit)); !slices.Equal(got, want) {
			t.Errorf("limit %d: %d records, out of order or repeated", limit, len(got))
		}
	}
	var pg recPage
	a.get(t, "/v1/tickets?tenantId=acme&limit=53").decode(t, 200, &pg)
	if pg.NextCursor != nil {
		t.Errorf("a last page with nextCursor %q", *pg.NextCursor)
	}
	var empty recPage
	a.get(t, "/v1/sponsors?tenantId=acme").decode(t, 200, &empty)
	if empty.Data == nil || len(empty.Data) != 0 || empty.NextCursor != nil {
		t.Errorf("empty collection: %s", a.get(t, "/v1/sponsors?tenantId=acme").Body)
	}
}

// TestRecordPagingWhileWriting pages through a collection with limit=7
// while another client keeps updating and inserting records: every record
// that existed when paging began must be seen, both with a plain cursor and
// when resuming with updatedAfter and cursor.
func TestRecordPagingWhileWriting(t *testing.T) {
	a := startRecAPI(t)
	a.tenant(t, "acme")
	var recs []any
	for i := range 300 {
		recs = append(recs, validBody("people", i))
	}
	var created recPage
	a.post(t, "/v1/people/bulk?tenantId=acme", mustJSON(t, jsonObj{"records": recs})).decode(t, 200, &created)
	existing := ids(created.Data)

	for _, mode := range []string{"cursor", "updatedAfter"} {
		t.Run(mode, func(t *testing.T) {
			stop := make(chan struct{})
			var writes atomic.Int64
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					// Update an existing record, so that it moves behind the
					// reader, and insert a new one.
					id := existing[(i*37)%len(existing)]
					r, err := a.send("PATCH", "/v1/people/"+id+"?tenantId=acme", fmt.Sprintf(`{"phone":"%d"}`, i))
					if err != nil || r.Status != 200 {
						t.Errorf("update: %v %v", err, r)
						return
					}
					r, err = a.send("POST", "/v1/people?tenantId=acme", mustJSON(t, validBody("people", 10_000+i)))
					if err != nil || r.Status != 201 {
						t.Errorf("insert: %v %v", err, r)
						return
					}
					writes.Add(2)
				}
			})

			seen := map[string]bool{}
			path := "/v1/people?tenantId=acme&limit=7"
			if mode == "updatedAfter" {
				path += "&updatedAfter=2000-01-01T00:00:00Z"
			}
			cursor := ""
			pages := 0
			for ; pages < 10_000; pages++ {
				p := path
				if cursor != "" {
					p += "&cursor=" + cursor
				}
				var pg recPage
				a.get(t, p).decode(t, 200, &pg)
				for _, r := range pg.Data {
					seen[r["id"].(string)] = true
				}
				if pg.NextCursor == nil {
					break
				}
				cursor = *pg.NextCursor
				if mode == "updatedAfter" && pages%10 == 9 {
					// Resume as a sync client does after a pause: from the
					// last time seen, with the cursor.
					last := pg.Data[len(pg.Data)-1]["updatedAt"].(string)
					path = "/v1/people?tenantId=acme&limit=7&updatedAfter=" + url.QueryEscape(last)
				}
				// Keep the writer busy between pages: at least one write for
				// every two pages, however slow the machine.
				for deadline := time.Now().Add(time.Second); writes.Load() < int64(pages/2) &&
					time.Now().Before(deadline); {
					time.Sleep(time.Millisecond)
				}
			}
			close(stop)
			wg.Wait()
			missed := 0
			for _, id := range existing {
				if !seen[id] {
					missed++
				}
			}
			t.Logf("%d pages, %d writes meanwhile, %d records seen", pages, writes.Load(), len(seen))
			if writes.Load() < 20 {
				t.Errorf("only %d writes while paging; the test proves little", writes.Load())
			}
			if missed > 0 {
				t.Errorf("%d of %d records that existed when paging began were never seen", missed, len(existing))
			}
		})
	}
}
