package handlers_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/runmerge/runmerge/internal/testserver"
)

func TestCreateTenant(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})

	r := s.Post(t, "/v1/tenants", `{"id":"acme","name":"Acme Events"}`)
	r.WantStatus(t, http.StatusCreated)
	if loc := r.Header.Get("Location"); loc != "/v1/tenants/acme" {
		t.Errorf("Location %q, want /v1/tenants/acme", loc)
	}
	var members map[string]any
	json.Unmarshal(r.Body, &members)
	wantKeys := []string{"createdAt", "id", "name", "status", "updatedAt"}
	if keys := sortedKeys(members); !equal(keys, wantKeys) {
		t.Errorf("body members %v: %s", keys, r.Body)
	}
	var tn testserver.Tenant
	r.JSON(t, &tn)
	if tn.ID != "acme" || tn.Name != "Acme Events" || tn.Status != "active" {
		t.Errorf("created %+v", tn)
	}
	if !testserver.TimeFormat.MatchString(tn.CreatedAt) || tn.UpdatedAt != tn.CreatedAt {
		t.Errorf("createdAt %q, updatedAt %q; want equal UTC times with milliseconds",
			tn.CreatedAt, tn.UpdatedAt)
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"acme.db"}) {
		t.Errorf("tenant files %v, want [acme.db]", got)
	}

	// The Location answers with the same tenant.
	var again testserver.Tenant
	s.Get(t, r.Header.Get("Location")).JSON(t, &again)
	if again.ID != tn.ID || again.Name != tn.Name || again.CreatedAt != tn.CreatedAt {
		t.Errorf("GET Location gave %+v, created %+v", again, tn)
	}

	// A taken id is a conflict and changes nothing.
	s.Post(t, "/v1/tenants", `{"id":"acme","name":"Impostor"}`).Problem(t, http.StatusConflict, "conflict")
	s.Get(t, "/v1/tenants/acme").JSON(t, &again)
	if again.Name != "Acme Events" {
		t.Errorf("a refused create renamed the tenant to %q", again.Name)
	}

	// The longest id and the shortest are fine; a name defaults to the id.
	long := strings.Repeat("a", 63)
	for _, id := range []string{long, "7", "0-0"} {
		var tn testserver.Tenant
		s.Post(t, "/v1/tenants", `{"id":"`+id+`"}`).JSON(t, &tn)
		if tn.ID != id || tn.Name != id {
			t.Errorf("created %+v, want id and name %q", tn, id)
		}
	}
	want := []string{"0-0.db", "7.db", long + ".db", "acme.db"}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, want) {
		t.Errorf("tenant files %v", got)
	}
}

// TestCreateTenantWithoutID checks that the server makes a valid id, and a
// file for it, when the client gives none.
func TestCreateTenantWithoutID(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})

	ids := map[string]bool{}
	for _, body := range []string{`{"name":"No id"}`, `{"name":"No id"}`, `{}`} {
		r := s.Post(t, "/v1/tenants", body)
		r.WantStatus(t, http.StatusCreated)
		var tn testserver.Tenant
		r.JSON(t, &tn)
		if !regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`).MatchString(tn.ID) {
			t.Errorf("server-made id %q breaks the id rule", tn.ID)
		}
		if ids[tn.ID] {
			t.Errorf("server made id %q twice", tn.ID)
		}
		ids[tn.ID] = true
		if r.Header.Get("Location") != "/v1/tenants/"+tn.ID {
			t.Errorf("Location %q for id %q", r.Header.Get("Location"), tn.ID)
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "tenants", tn.ID+".db")); err != nil {
			t.Errorf("no file for server-made id: %v", err)
		}
		s.Get(t, "/v1/tenants/"+tn.ID).WantStatus(t, http.StatusOK)
	}
}

// TestCreateTenantRefusesBadIDs checks that an id that breaks the rule gets
// 422 and leaves no trace: no file anywhere under the data directory, no
// tenant in the list.
func TestCreateTenantRefusesBadIDs(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	before := testserver.Files(t, s.DataDir)
	parentBefore := testserver.Files(t, filepath.Dir(s.DataDir))

	ids := []string{
		"../x", "../../x", "..", ".", "a/b", "/abs", `a\b`, "x.db", "acme.db", "",
		strings.Repeat("a", 64), strings.Repeat("a", 200), "ACME", "Acme", "café", "ａｃｍｅ",
		"acme\x00", "\x00", "a\x00b", "-acme", "acme ", " acme", "a_b", "a.b", "a\nb",
		"tenants/../catalog", "catalog", // catalog is a fine id; it must not clash with the catalog
	}
	for _, id := range ids {
		body, _ := json.Marshal(map[string]string{"id": id, "name": "Bad"})
		r := s.Post(t, "/v1/tenants", string(body))
		if id == "catalog" {
			// Valid, and kept apart from catalog.db by living in tenants/.
			r.WantStatus(t, http.StatusCreated)
			continue
		}
		p := r.Problem(t, http.StatusUnprocessableEntity, "validation_failed")
		if len(p.Errors) != 1 || p.Errors[0].Pointer != "/id" {
			t.Errorf("id %q: errors %+v, want one at /id", id, p.Errors)
		}
	}

	after := testserver.Files(t, s.DataDir)
	want := append(slices.Clone(before), "tenants/catalog.db")
	for _, f := range after {
		companion := strings.HasPrefix(f, "catalog.db-") || strings.HasPrefix(f, "tenants/catalog.db-")
		if !slices.Contains(want, f) && !companion {
			t.Errorf("a refused create left %s in the data directory", f)
		}
	}
	parentAfter := testserver.Files(t, filepath.Dir(s.DataDir))
	if len(parentAfter) != len(parentBefore)+len(after)-len(before) {
		t.Errorf("files outside the data directory changed: before %v, after %v",
			parentBefore, parentAfter)
	}
	var list testserver.TenantPage
	s.Get(t, "/v1/tenants").JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "catalog" {
		t.Errorf("tenants after refused creates: %+v", list.Data)
	}
}

// TestListTenants pages through the tenants with every page size a client
// might pick and checks that each tenant shows up exactly once, in id order.
func TestListTenants(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})

	var page testserver.TenantPage
	r := s.Get(t, "/v1/tenants")
	r.JSON(t, &page)
	if len(page.Data) != 0 || page.NextCursor != nil || !strings.Contains(string(r.Body), `"data":[]`) {
		t.Errorf("empty list: %s, want {\"data\":[],\"nextCursor\":null}", r.Body)
	}

	var want []string
	for i := range 53 {
		id := fmt.Sprintf("t-%02d", (i*17)%53) // created out of order
		s.CreateTenant(t, id)
		want = append(want, id)
	}
	slices.Sort(want)

	// The default page is 50.
	s.Get(t, "/v1/tenants").JSON(t, &page)
	if len(page.Data) != 50 || page.NextCursor == nil {
		t.Fatalf("default page: %d tenants, cursor %v; want 50 and a cursor",
			len(page.Data), page.NextCursor)
	}
	for _, tn := range page.Data {
		if tn.Stats != nil {
			t.Fatalf("list shows stats: %+v", tn)
		}
		if tn.Status != "active" || !testserver.TimeFormat.MatchString(tn.CreatedAt) {
			t.Fatalf("listed %+v", tn)
		}
	}

	for _, limit := range []int{1, 2, 7, 50, 52, 53, 54, 500} {
		got, pages := listAll(t, s.Client, limit)
		if !equal(got, want) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, want)
		}
		if wantPages := (53 + limit - 1) / limit; pages != wantPages {
			t.Errorf("limit %d: %d pages, want %d", limit, pages, wantPages)
		}
	}

	// A cursor keeps working when the tenant it points after is deleted.
	s.Get(t, "/v1/tenants?limit=10").JSON(t, &page)
	s.Delete(t, "/v1/tenants/"+page.Data[9].ID).WantStatus(t, http.StatusNoContent)
	var next testserver.TenantPage
	s.Get(t, "/v1/tenants?limit=10&cursor="+*page.NextCursor).JSON(t, &next)
	if len(next.Data) != 10 || next.Data[0].ID != want[10] {
		t.Errorf("page after a deleted tenant starts at %v, want %s", next.Data, want[10])
	}
}

// listAll follows nextCursor from the first page to the last and returns the
// ids seen and the number of pages.
func listAll(t *testing.T, c *testserver.Client, limit int) (ids []string, pages int) {
	t.Helper()
	path := fmt.Sprintf("/v1/tenants?limit=%d", limit)
	for {
		var page testserver.TenantPage
		c.Get(t, path).JSON(t, &page)
		pages++
		if len(page.Data) > limit || (page.NextCursor != nil && len(page.Data) != limit) {
			t.Fatalf("limit %d: a page of %d with cursor %v", limit, len(page.Data), page.NextCursor)
		}
		for _, tn := range page.Data {
			ids = append(ids, tn.ID)
		}
		if page.NextCursor == nil {
			return ids, pages
		}
		if pages > 1000 {
			t.Fatal("the cursor never ends")
		}
		path = fmt.Sprintf("/v1/tenants?limit=%d&cursor=%s", limit, *page.NextCursor)
	}
}

func TestGetTenantStats(t *testing.T) {
	s := testserver.Start(t, testserver.Options{MaxOpen: 1})
	s.CreateTenant(t, "acme")

	r := s.Get(t, "/v1/tenants/acme")
	var tn testserver.Tenant
	r.JSON(t, &tn)
	if tn.ID != "acme" || tn.Status != "active" || tn.Stats == nil {
		t.Fatalf("got %s", r.Body)
	}
	wantRecords := map[string]int64{"events": 0, "people": 0, "sessions": 0, "exhibitors": 0,
		"sponsors": 0, "tickets": 0, "resources": 0}
	if fmt.Sprint(tn.Stats.Records) != fmt.Sprint(wantRecords) {
		t.Errorf("records %v, want %v", tn.Stats.Records, wantRecords)
	}
	fi, err := os.Stat(filepath.Join(s.DataDir, "tenants", "acme.db"))
	if err != nil {
		t.Fatal(err)
	}
	if tn.Stats.FileSizeBytes < fi.Size() || tn.Stats.FileSizeBytes == 0 {
		t.Errorf("fileSizeBytes %d; the file alone has %d", tn.Stats.FileSizeBytes, fi.Size())
	}
	if !tn.Stats.Open {
		t.Error("a tenant just created and read reports open: false")
	}

	// With room for one open tenant, using globex closes acme.
	s.CreateTenant(t, "globex")
	s.Get(t, "/v1/tenants/globex").WantStatus(t, http.StatusOK)
	s.Get(t, "/v1/tenants/acme").JSON(t, &tn)
	if tn.Stats.Open {
		t.Error("acme reports open: true after the pool (max_open 1) moved on to globex")
	}
	s.Get(t, "/v1/tenants/acme").JSON(t, &tn)
	if !tn.Stats.Open {
		t.Error("acme reports open: false right after it was read")
	}
}

func TestUpdateTenant(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	created := s.CreateTenant(t, "acme")

	steps := []struct {
		body       string
		wantName   string
		wantStatus string
	}{
		{`{"name":"Acme Events Ltd"}`, "Acme Events Ltd", "active"},
		{`{"status":"suspended"}`, "Acme Events Ltd", "suspended"},
		{`{}`, "Acme Events Ltd", "suspended"},
		{`{"status":"active","name":"Acme"}`, "Acme", "active"},
		{`{"name":"Ünïcode ✓ name"}`, "Ünïcode ✓ name", "active"},
	}
	last := created
	for _, st := range steps {
		var tn testserver.Tenant
		r := s.Patch(t, "/v1/tenants/acme", st.body)
		r.WantStatus(t, http.StatusOK)
		r.JSON(t, &tn)
		if tn.ID != "acme" || tn.Name != st.wantName || tn.Status != st.wantStatus {
			t.Errorf("PATCH %s gave %+v, want name %q status %q",
				st.body, tn, st.wantName, st.wantStatus)
		}
		if tn.CreatedAt != created.CreatedAt {
			t.Errorf("PATCH %s changed createdAt from %s to %s",
				st.body, created.CreatedAt, tn.CreatedAt)
		}
		if !testserver.TimeFormat.MatchString(tn.UpdatedAt) || tn.UpdatedAt < last.UpdatedAt {
			t.Errorf("PATCH %s: updatedAt %s after %s", st.body, tn.UpdatedAt, last.UpdatedAt)
		}
		var read testserver.Tenant
		s.Get(t, "/v1/tenants/acme").JSON(t, &read)
		if read.Name != tn.Name || read.Status != tn.Status || read.UpdatedAt != tn.UpdatedAt {
			t.Errorf("GET after PATCH %s shows %+v, PATCH answered %+v", st.body, read, tn)
		}
		last = tn
	}

	refused := []struct {
		body string
		code string
	}{
		{`{"status":"paused"}`, "validation_failed"},
		{`{"status":"SUSPENDED"}`, "validation_failed"},
		{`{"status":null}`, "validation_failed"},
		{`{"name":""}`, "validation_failed"},
		{`{"name":"   "}`, "validation_failed"},
		{`{"name":"` + strings.Repeat("n", 201) + `"}`, "validation_failed"},
		{`{"name":7}`, "validation_failed"},
		{`{"id":"globex"}`, "read_only_field"},
		{`{"createdAt":"2020-01-01T00:00:00.000Z"}`, "read_only_field"},
		{`{"stats":{}}`, "read_only_field"},
		{`{"name":"x","plan":"gold"}`, "unknown_field"},
	}
	for _, rf := range refused {
		s.Patch(t, "/v1/tenants/acme", rf.body).Problem(t, http.StatusUnprocessableEntity, rf.code)
	}
	var now testserver.Tenant
	s.Get(t, "/v1/tenants/acme").JSON(t, &now)
	if now.Name != last.Name || now.Status != last.Status || now.UpdatedAt != last.UpdatedAt {
		t.Errorf("refused patches changed the tenant: %+v, was %+v", now, last)
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"acme.db"}) {
		t.Errorf("tenant files %v", got)
	}
}

func TestDeleteTenant(t *testing.T) {
	s := testserver.Start(t, testserver.Options{})
	s.CreateTenant(t, "acme")
	s.CreateTenant(t, "globex")

	r := s.Delete(t, "/v1/tenants/acme")
	r.WantStatus(t, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("204 with a body: %s", r.Body)
	}
	for _, f := range testserver.Files(t, s.DataDir) {
		if strings.HasPrefix(f, "tenants/acme.") {
			t.Errorf("%s is still there after delete", f)
		}
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"globex.db"}) {
		t.Errorf("tenant files %v, want [globex.db]", got)
	}
	s.Get(t, "/v1/tenants/acme").Problem(t, http.StatusNotFound, "not_found")
	s.Patch(t, "/v1/tenants/acme", `{"name":"x"}`).Problem(t, http.StatusNotFound, "not_found")
	s.Delete(t, "/v1/tenants/acme").Problem(t, http.StatusNotFound, "not_found")
	var list testserver.TenantPage
	s.Get(t, "/v1/tenants").JSON(t, &list)
	if len(list.Data) != 1 || list.Data[0].ID != "globex" {
		t.Errorf("list after delete: %+v", list.Data)
	}
	s.Get(t, "/v1/tenants/globex").WantStatus(t, http.StatusOK)

	// The id is free again, and the new tenant starts afresh.
	again := s.CreateTenant(t, "acme")
	if again.Name != "Tenant acme" || again.Status != "active" {
		t.Errorf("re-created %+v", again)
	}
	if got := testserver.TenantFiles(t, s.DataDir); !equal(got, []string{"acme.db", "globex.db"}) {
		t.Errorf("tenant files %v", got)
	}
}

func sortedKeys(m map[string]any) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
