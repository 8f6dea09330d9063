package handlers_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/internal/testserver"
)

// exportReq and importReq build the requests of the export routes.
func exportReq(id string) testserver.Request {
	return testserver.Request{Method: http.MethodGet, Path: "/v1/tenants/" + id + "/export"}
}

func importReq(id string, file []byte) testserver.Request {
	return testserver.Request{Method: http.MethodPut, Path: "/v1/tenants/" + id + "/import",
		Body: string(file), Header: map[string]string{"Content-Type": "application/vnd.sqlite3"}}
}

// mustExportAPI exports tenant id over the API and returns the file.
func mustExportAPI(t *testing.T, c *testserver.Client, id string) []byte {
	t.Helper()
	r := c.Do(t, exportReq(id))
	r.WantStatus(t, http.StatusOK)
	if ct := r.Header.Get("Content-Type"); ct != "application/vnd.sqlite3" {
		t.Fatalf("export Content-Type %q", ct)
	}
	if cd := r.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, `attachment; filename=`+id+`-`) {
		t.Errorf("export Content-Disposition %q", cd)
	}
	if !strings.HasPrefix(string(r.Body), "SQLite format 3\x00") {
		t.Fatalf("export is not a SQLite file: %.40q", r.Body)
	}
	return r.Body
}

// mustCreateRecord creates a record over the API and returns it.
func mustCreateRecord(t *testing.T, c *testserver.Client, tenant, coll string, body map[string]any) map[string]any {
	t.Helper()
	b, _ := json.Marshal(body)
	r := c.Post(t, "/v1/"+coll+"?tenantId="+tenant, string(b))
	r.WantStatus(t, http.StatusCreated)
	var rec map[string]any
	json.Unmarshal(r.Body, &rec)
	return rec
}

// tenantRecords lists every record of every collection of tenant, with
// tombstones and sourceRawData, as the API shows them, without tenantId.
func tenantRecords(t *testing.T, c *testserver.Client, tenant string) map[string][]map[string]any {
	t.Helper()
	out := map[string][]map[string]any{}
	for _, coll := range runmerge.CollectionNames {
		cursor := ""
		for {
			path := "/v1/" + coll + "?tenantId=" + tenant + "&includeDeleted=true&sourceRawData=true&limit=500"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := c.Get(t, path)
			r.WantStatus(t, http.StatusOK)
			var page struct {
				Data       []map[string]any `json:"data"`
				NextCursor *string          `json:"nextCursor"`
			}
			json.Unmarshal(r.Body, &page)
			for _, rec := range page.Data {
				if rec["tenantId"] != tenant {
					t.Errorf("record of %s says tenantId %v", tenant, rec["tenantId"])
				}
				delete(rec, "tenantId")
				out[coll] = append(out[coll], rec)
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
	}
	return out
}

// linkedIDs returns the ids of coll's records linked to record id, as the
// linked filters find them.
func linkedIDs(t *testing.T, c *testserver.Client, tenant, coll, filter, id string) []string {
	t.Helper()
	r := c.Get(t, "/v1/"+coll+"?tenantId="+tenant+"&"+filter+"="+id)
	r.WantStatus(t, http.StatusOK)
	var page struct {
		Data []map[string]any `json:"data"`
	}
	json.Unmarshal(r.Body, &page)
	var ids []string
	for _, rec := range page.Data {
		ids = append(ids, rec["id"].(string))
	}
	slices.Sort(ids)
	return ids
}

// TestExportImportRoundTrip exports a tenant over the API, imports it under
// another id on a server with a fresh data directory, and reads every
// record, relationship and tombstone back.
func TestExportImportRoundTrip(t *testing.T) {
	src := testserver.Start(t, testserver.Options{})
	src.CreateTenant(t, "acme")
	ev := mustCreateRecord(t, src.Client, "acme", "events", map[string]any{"name": "Expo",
		"startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-02T18:00:00Z",
		"sourceId": "crm", "remoteId": "e1", "sourceRawData": map[string]any{"legacy": true}})
	se := mustCreateRecord(t, src.Client, "acme", "sessions", map[string]any{"name": "Keynote",
		"startDate": "2026-05-01T09:00:00Z", "endDate": "2026-05-01T10:00:00Z", "eventId": ev["id"]})
	for i := range 3 {
		mustCreateRecord(t, src.Client, "acme", "people", map[string]any{"firstName": "Ada",
			"lastName": fmt.Sprint(i), "email": fmt.Sprintf("ada%d@example.com", i),
			"relationships": map[string]any{"linkedEventIds": []any{ev["id"]},
				"linkedSessionIds": []any{se["id"]}}})
	}
	gone := mustCreateRecord(t, src.Client, "acme", "sponsors", map[string]any{"name": "Gone"})
	src.Delete(t, "/v1/sponsors/"+gone["id"].(string)+"?tenantId=acme").WantStatus(t, http.StatusNoContent)
	file := mustExportAPI(t, src.Client, "acme")

	dst := testserver.Start(t, testserver.Options{})
	r := dst.Do(t, importReq("copy", file))
	r.WantStatus(t, http.StatusCreated)
	if loc := r.Header.Get("Location"); loc != "/v1/tenants/copy" {
		t.Errorf("Location %q", loc)
	}
	var tn testserver.Tenant
	r.JSON(t, &tn)
	if tn.ID != "copy" || tn.Name != "Tenant acme" || tn.Stats == nil || tn.Stats.Records["people"] != 3 {
		t.Errorf("imported tenant %+v", tn)
	}

	want, got := tenantRecords(t, src.Client, "acme"), tenantRecords(t, dst.Client, "copy")
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if string(wb) != string(gb) {
		t.Errorf("records differ after the round trip:\n got %s\nwant %s", gb, wb)
	}
	if len(got["sponsors"]) != 1 || got["sponsors"][0]["deleted"] != true {
		t.Errorf("tombstone lost: %v", got["sponsors"])
	}
	for _, q := range [][4]string{
		{"people", "linkedEventId", ev["id"].(string)},
		{"people", "linkedSessionId", se["id"].(string)},
		{"sessions", "linkedEventId", ev["id"].(string)},
		{"events", "linkedPersonId", got["people"][0]["id"].(string)},
	} {
		w, g := linkedIDs(t, src.Client, "acme", q[0], q[1], q[2]), linkedIDs(t, dst.Client, "copy", q[0], q[1], q[2])
		if !slices.Equal(w, g) || len(g) == 0 {
			t.Errorf("%s?%s: got %v, want %v", q[0], q[1], g, w)
		}
	}
	r = dst.Get(t, "/v1/people?tenantId=copy&q=ada")
	var page struct{ Data []any }
	json.Unmarshal(r.Body, &page)
	if len(page.Data) != 3 {
		t.Errorf("search in the imported tenant found %d people, want 3", len(page.Data))
	}

	// Importing over an existing tenant answers 200 and replaces its data.
	mustCreateRecord(t, dst.Client, "copy", "sponsors", map[string]any{"name": "Extra"})
	dst.Do(t, importReq("copy", file)).WantStatus(t, http.StatusOK)
	if again := tenantRecords(t, dst.Client, "copy"); len(again["sponsors"]) != 1 {
		t.Errorf("re-import kept %d sponsors, want 1", len(again["sponsors"]))
	}
}

// tenantFileHash hashes tenant id's file and WAL in dataDir.
func tenantFileHash(t *testing.T, dataDir, id string) string {
	t.Helper()
	h := sha256.New()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(filepath.Join(dataDir, "tenants", id+".db"+suffix))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// alteredExport copies file, runs script on the copy, and returns it.
func alteredExport(t *testing.T, file []byte, script string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.db")
	os.WriteFile(p, file, 0o600)
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(script); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, _ := os.ReadFile(p)
	return b
}

func TestImportRefusals(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.CreateTenant(t, "acme")
	mustCreateRecord(t, s.Client, "acme", "people", map[string]any{"firstName": "Ada",
		"lastName": "L", "email": "ada@example.com"})
	file := mustExportAPI(t, s.Client, "acme")
	before := tenantFileHash(t, s.DataDir, "acme")
	other := func() []byte {
		p := filepath.Join(t.TempDir(), "other.db")
		db, _ := sql.Open("sqlite", "file:"+p)
		db.Exec(`CREATE TABLE notes (body TEXT)`)
		db.Close()
		b, _ := os.ReadFile(p)
		return b
	}()

	for name, body := range map[string][]byte{
		"random":           []byte(strings.Repeat("\x8f\x13garbage", 1000)),
		"truncated":        file[:len(file)/2],
		"empty":            {},
		"other database":   other,
		"future version":   alteredExport(t, file, fmt.Sprintf("PRAGMA user_version = %d", 1000)),
		"another app's id": alteredExport(t, file, "PRAGMA application_id = 42"),
	} {
		t.Run(name, func(t *testing.T) {
			for _, id := range []string{"acme", "newcomer"} {
				p := s.Do(t, importReq(id, body)).Problem(t, http.StatusUnprocessableEntity, "validation_failed")
				testserver.LeaksNothing(t, p.Detail)
			}
			if after := tenantFileHash(t, s.DataDir, "acme"); after != before {
				t.Errorf("the tenant's file changed")
			}
			s.Get(t, "/v1/tenants/newcomer").Problem(t, http.StatusNotFound, "not_found")
		})
	}
	// The tenant still reads as before.
	r := s.Get(t, "/v1/people?tenantId=acme")
	r.WantStatus(t, http.StatusOK)
	if !strings.Contains(string(r.Body), "ada@example.com") {
		t.Errorf("tenant lost its records: %s", r.Body)
	}
}

func TestExportImportRequests(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.CreateTenant(t, "acme")
	s.CreateTenant(t, "globex")
	file := mustExportAPI(t, s.Client, "acme")
	key := func(body string) *testserver.Client {
		r := s.Post(t, "/v1/keys", body)
		r.WantStatus(t, http.StatusCreated)
		var k struct {
			Key string `json:"key"`
		}
		json.Unmarshal(r.Body, &k)
		return testserver.NewClient(s.URL, k.Key)
	}
	acmeAdmin := key(`{"name":"a","tenantId":"acme","role":"admin"}`)
	acmeReader := key(`{"name":"r","tenantId":"acme","role":"read_only"}`)
	platformReader := key(`{"name":"p","role":"read_only"}`)

	// A tenant admin exports its own tenant and no other; it may not import.
	mustExportAPI(t, acmeAdmin, "acme")
	acmeAdmin.Do(t, exportReq("globex")).Problem(t, http.StatusNotFound, "not_found")
	acmeAdmin.Do(t, importReq("acme", file)).Problem(t, http.StatusForbidden, "forbidden")
	acmeReader.Do(t, exportReq("acme")).Problem(t, http.StatusForbidden, "forbidden")
	platformReader.Do(t, exportReq("acme")).Problem(t, http.StatusForbidden, "forbidden")
	platformReader.Do(t, importReq("acme", file)).Problem(t, http.StatusForbidden, "forbidden")
	s.Do(t, testserver.Request{Method: "GET", Path: "/v1/tenants/acme/export", NoKey: true}).
		Problem(t, http.StatusUnauthorized, "unauthorized")

	s.Do(t, exportReq("nobody")).Problem(t, http.StatusNotFound, "not_found")
	s.Get(t, "/v1/tenants/acme/export?x=1").Problem(t, http.StatusBadRequest, "invalid_parameter")

	// A suspended tenant: its own admin is refused, a platform admin may
	// take its data.
	s.Patch(t, "/v1/tenants/acme", `{"status":"suspended"}`).WantStatus(t, http.StatusOK)
	acmeAdmin.Do(t, exportReq("acme")).Problem(t, http.StatusForbidden, "tenant_suspended")
	mustExportAPI(t, s.Client, "acme")

	// Imports take a SQLite body only, within the import limit.
	json := importReq("acme", file)
	json.Header["Content-Type"] = "application/json"
	s.Do(t, json).Problem(t, http.StatusUnsupportedMediaType, "unsupported_media_type")
	octets := importReq("acme", file)
	octets.Header["Content-Type"] = "application/octet-stream"
	s.Do(t, octets).WantStatus(t, http.StatusOK)
	s.Do(t, importReq("Bad_ID", file)).Problem(t, http.StatusUnprocessableEntity, "validation_failed")
	big := importReq("huge", make([]byte, 17<<20)) // testserver's limit is 16 MiB
	s.Do(t, big).Problem(t, http.StatusRequestEntityTooLarge, "body_too_large")
	s.Get(t, "/v1/tenants/huge").Problem(t, http.StatusNotFound, "not_found")
}
