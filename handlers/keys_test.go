package handlers_test

// Tests of keys: what a body may set, the life of a key, the answers to keys
// that do not authenticate, and the per-key limits.

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// TestIsolationMassAssignment sends, in create and patch bodies of every
// collection, of keys, tenants and webhooks, the fields only the server
// sets and the fields that grant permissions, and checks that each is
// refused and that nothing changes.
func TestIsolationMassAssignment(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	root := s.RootKey
	s.post(t, root, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	s.post(t, root, "/v1/tenants", `{"id":"globex"}`).want(t, http.StatusCreated)
	admin, _ := s.createKey(t, `{"name":"admin","tenantId":"acme","role":"admin"}`)
	event := s.post(t, root, "/v1/events?tenantId=acme", isoJSON(isoRecordBody("events", nil, nil))).
		want(t, http.StatusCreated).id(t)

	// Fields a record body may not name: those the server sets, and those
	// of keys, which a record has none of.
	serverSet := map[string]any{
		"id": "0195f000-0000-7000-8000-000000000000", "tenantId": "globex", "version": 99,
		"createdAt": "2020-01-01T00:00:00.000Z", "updatedAt": "2020-01-01T00:00:00.000Z",
		"deleted": true, "deletedAt": "2020-01-01T00:00:00.000Z",
	}
	permissions := map[string]any{
		"role": "admin", "eventIds": []string{event}, "key": runmerge.NewKeySecret(),
		"hash": strings.Repeat("ab", 32), "tenant": "globex", "owner": "root",
	}
	for _, coll := range runmerge.CollectionNames {
		var linked []string
		if coll != "events" {
			linked = []string{event}
		}
		id := s.post(t, admin, "/v1/"+coll, isoJSON(isoRecordBody(coll, linked, nil))).
			want(t, http.StatusCreated).id(t)
		stored := s.get(t, admin, "/v1/"+coll+"/"+id).want(t, http.StatusOK).Body
		for fields, code := range map[*map[string]any]string{&serverSet: "read_only_field", &permissions: "unknown_field"} {
			for name, value := range *fields {
				before := s.changeCount(t, "acme")
				extra := map[string]any{name: value}
				reqs := []isoReq{
					{Method: "POST", Path: "/v1/" + coll, Body: isoJSON(isoRecordBody(coll, linked, extra))},
					{Method: "POST", Path: "/v1/" + coll + "/bulk",
						Body: `{"records":[` + isoJSON(isoRecordBody(coll, linked, extra)) + `]}`},
					{Method: "PATCH", Path: "/v1/" + coll + "/" + id, Body: isoJSON(extra)},
				}
				for _, r := range reqs {
					r.Key = admin
					got := s.do(t, r)
					ok := strings.Contains(string(got.Body), `"code":"`+code+`"`)
					if got.Status != http.StatusUnprocessableEntity || !ok {
						t.Errorf("%s %s naming %s: %d %s, want 422 %s",
							r.Method, r.Path, name, got.Status, got.Body, code)
					}
				}
				if after := s.changeCount(t, "acme"); after != before {
					t.Errorf("%s with %s: %s → %s", coll, name, before, after)
				}
			}
		}
		if now := s.get(t, admin, "/v1/"+coll+"/"+id).want(t, http.StatusOK).Body; string(now) != string(stored) {
			t.Errorf("%s %s changed: %s → %s", coll, id, stored, now)
		}
	}

	t.Run("keys", func(t *testing.T) {
		ctx := context.Background()
		count := func() int {
			n, err := s.Store.Catalog.CountKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()
		secret := runmerge.NewKeySecret()
		for name, value := range map[string]any{
			"id": "0195f000-0000-7000-8000-000000000000", "createdAt": "2020-01-01T00:00:00.000Z",
			"lastUsedAt": "2020-01-01T00:00:00.000Z", "revokedAt": nil, "key": secret,
			"hash": runmerge.HashKeySecret(secret),
		} {
			body := map[string]any{"name": "x", "role": "read_only", name: value}
			r := s.post(t, admin, "/v1/keys", isoJSON(body))
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"read_only_field"`) {
				t.Errorf("POST /v1/keys naming %s: %d %s, want 422 read_only_field", name, r.Status, r.Body)
			}
		}
		for name, value := range map[string]any{"secret": secret, "tenant": "globex", "scopes": []string{"*"},
			"platform": true} {
			body := map[string]any{"name": "x", "role": "read_only", name: value}
			r := s.post(t, admin, "/v1/keys", isoJSON(body))
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"unknown_field"`) {
				t.Errorf("POST /v1/keys naming %s: %d %s, want 422 unknown_field", name, r.Status, r.Body)
			}
		}
		// Permission fields a tenant admin may set, but not wider than itself.
		for _, b := range []string{
			`{"name":"x","role":"admin","tenantId":"globex"}`,
			`{"name":"x","role":"admin","tenantId":""}`,
			`{"name":"x","role":"owner"}`,
			`{"name":"x","role":"read_only","eventIds":["` + event + `"]}`,
			`{"name":"x","role":"event_manager","eventIds":[]}`,
			`{"name":"x","role":"read_only","expiresAt":"2020-01-01T00:00:00Z"}`,
		} {
			if r := s.post(t, admin, "/v1/keys", b); r.Status < 400 {
				t.Errorf("POST /v1/keys %s: %d %s", b, r.Status, r.Body)
			}
		}
		if n := count(); n != before {
			t.Errorf("refused key bodies changed the key count: %d → %d", before, n)
		}
		// A tenant admin's key without tenantId, or with null, is its own
		// tenant's, never a platform key.
		for _, b := range []string{`{"name":"x","role":"admin"}`, `{"name":"x","role":"admin","tenantId":null}`} {
			k := s.post(t, admin, "/v1/keys", b).want(t, http.StatusCreated).object(t)
			if k["tenantId"] != "acme" {
				t.Errorf("POST /v1/keys %s by acme's admin: tenantId %v, want acme", b, k["tenantId"])
			}
		}
		// Keys cannot be changed, only revoked.
		_, id := s.createKey(t, `{"name":"ro","tenantId":"acme","role":"read_only"}`)
		stored := s.get(t, root, "/v1/keys/"+id).want(t, http.StatusOK).normalized()
		for _, m := range []string{"PATCH", "PUT"} {
			r := s.do(t, isoReq{Key: admin, Method: m, Path: "/v1/keys/" + id, Body: `{"role":"admin","tenantId":null}`})
			if r.Status != http.StatusMethodNotAllowed {
				t.Errorf("%s /v1/keys/%s: %d, want 405", m, id, r.Status)
			}
		}
		if now := s.get(t, root, "/v1/keys/"+id).want(t, http.StatusOK).normalized(); now != stored {
			t.Errorf("key changed: %s → %s", stored, now)
		}
	})

	t.Run("tenants", func(t *testing.T) {
		for _, b := range []string{`{"id":"t1","status":"suspended"}`, `{"id":"t1","createdAt":"2020-01-01T00:00:00Z"}`,
			`{"id":"t1","stats":{}}`, `{"id":"t1","tenantId":"acme"}`} {
			if r := s.post(t, root, "/v1/tenants", b); r.Status != http.StatusUnprocessableEntity {
				t.Errorf("POST /v1/tenants %s: %d %s, want 422", b, r.Status, r.Body)
			}
		}
		stored := s.get(t, root, "/v1/tenants/acme").want(t, http.StatusOK).object(t)
		for _, b := range []string{`{"id":"other"}`, `{"createdAt":"2020-01-01T00:00:00Z"}`,
			`{"updatedAt":"2020-01-01T00:00:00Z"}`} {
			if r := s.patch(t, root, "/v1/tenants/acme", b); r.Status != http.StatusUnprocessableEntity {
				t.Errorf("PATCH /v1/tenants/acme %s: %d %s, want 422", b, r.Status, r.Body)
			}
		}
		now := s.get(t, root, "/v1/tenants/acme").want(t, http.StatusOK).object(t)
		if now["updatedAt"] != stored["updatedAt"] || now["id"] != "acme" {
			t.Errorf("tenant changed: %v → %v", stored, now)
		}
		if _, err := os.Stat(filepath.Join(s.DataDir, "tenants", "t1.db")); err == nil {
			t.Error("a refused tenant body made a tenant file")
		}
	})

	t.Run("webhooks", func(t *testing.T) {
		if _, ok := s.HTTP.Routes()["POST /v1/webhooks"]; !ok {
			t.Skip("no POST /v1/webhooks route yet")
		}
		mine := "whsec_" + strings.Repeat("A", 32)
		for name, value := range map[string]any{"id": "0195f000-0000-7000-8000-000000000000", "secret": mine,
			"createdAt": "2020-01-01T00:00:00Z", "tenantId": "globex"} {
			body := map[string]any{"url": "https://hooks.invalid/x", "eventTypes": []string{"*"}, name: value}
			if r := s.post(t, admin, "/v1/webhooks", isoJSON(body)); r.Status < 400 {
				t.Errorf("POST /v1/webhooks naming %s: %d %s", name, r.Status, r.Body)
			}
		}
		list := s.get(t, root, "/v1/webhooks").Body
		if strings.Contains(string(list), "globex") || strings.Contains(string(list), mine) {
			t.Errorf("a refused webhook body left a trace: %s", list)
		}
	})
}

// TestIsolationKeyLifecycle follows keys from creation through use to
// expiry and revocation, by the API and by another process.
func TestIsolationKeyLifecycle(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	root := s.RootKey
	var id string
	// Last-used times are written in the background, and at the latest
	// when the server stops: look once it has.
	s.afterClose = append(s.afterClose, func() {
		cat, err := tenantstore.OpenCatalog(context.Background(), s.DataDir, tenantstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer cat.Close()
		k, err := cat.Key(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if k.LastUsedAt == nil || time.Since(*k.LastUsedAt) > time.Minute {
			t.Errorf("key used in this test: last used at %v", k.LastUsedAt)
		}
	})
	s.post(t, root, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	ctx := context.Background()

	r := s.post(t, root, "/v1/keys", `{"name":"reader","tenantId":"acme","role":"read_only"}`).
		want(t, http.StatusCreated)
	created := r.object(t)
	secret := created["key"].(string)
	id = created["id"].(string)
	if !runmerge.WellFormedKeySecret(secret) || r.Header.Get("Location") != "/v1/keys/"+id {
		t.Errorf("created %s, Location %q", r.Body, r.Header.Get("Location"))
	}
	for _, p := range []string{"/v1/keys/" + id, "/v1/keys", "/v1/keys?tenantId=acme"} {
		body := string(s.get(t, root, p).want(t, http.StatusOK).Body)
		if !strings.Contains(body, id) || strings.Contains(body, secret) || strings.Contains(body, `"key"`) {
			t.Errorf("GET %s shows the secret, or not the key: %s", p, body)
		}
	}

	t.Run("use", func(t *testing.T) {
		s.get(t, secret, "/v1/people").want(t, http.StatusOK)
		s.do(t, isoReq{Method: "GET", Path: "/v1/people", Header: map[string]string{"Authorization": "Bearer " + secret}}).
			want(t, http.StatusOK)
		// x-integration-key goes to the log; a key sent there by mistake
		// must not (the log is searched for secrets when the test ends).
		for _, ik := range []string{secret, "Bearer " + secret, root, "crm-sync"} {
			h := map[string]string{"X-Integration-Key": ik}
			s.do(t, isoReq{Key: secret, Method: "GET", Path: "/v1/people", Header: h}).want(t, http.StatusOK)
		}
		if !strings.Contains(s.logs.String(), `"integration":"crm-sync"`) {
			t.Error("the access log does not show x-integration-key")
		}
		s.post(t, secret, "/v1/people", isoJSON(isoRecordBody("people", nil, nil))).want(t, http.StatusForbidden)
	})

	t.Run("expire", func(t *testing.T) {
		at := time.Now().Add(1500 * time.Millisecond).UTC()
		k := s.post(t, root, "/v1/keys", `{"name":"brief","tenantId":"acme","role":"read_only","expiresAt":"`+
			at.Format(time.RFC3339Nano)+`"}`).want(t, http.StatusCreated).object(t)
		brief := k["key"].(string)
		s.get(t, brief, "/v1/people").want(t, http.StatusOK)
		time.Sleep(time.Until(at) + 50*time.Millisecond)
		s.get(t, brief, "/v1/people").want(t, http.StatusUnauthorized)
	})

	t.Run("revoke", func(t *testing.T) {
		victim, victimID := s.createKey(t, `{"name":"victim","tenantId":"acme","role":"read_only"}`)
		s.get(t, victim, "/v1/people").want(t, http.StatusOK) // cached now
		s.del(t, root, "/v1/keys/"+victimID).want(t, http.StatusNoContent)
		s.get(t, victim, "/v1/people").want(t, http.StatusUnauthorized)
		k := s.get(t, root, "/v1/keys/"+victimID).want(t, http.StatusOK).object(t)
		if k["revokedAt"] == nil {
			t.Errorf("revoked key shows no revokedAt: %v", k)
		}
	})

	t.Run("revoke from another process", func(t *testing.T) {
		victim, victimID := s.createKey(t, `{"name":"cli-victim","tenantId":"acme","role":"read_only"}`)
		s.get(t, victim, "/v1/people").want(t, http.StatusOK)
		// The CLI opens the catalog on its own, as another process does.
		cli, err := tenantstore.OpenCatalog(ctx, s.DataDir, tenantstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		if err := cli.RevokeKey(ctx, victimID); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for {
			r := s.get(t, victim, "/v1/people")
			if r.Status == http.StatusUnauthorized {
				break
			}
			if time.Since(start) > 1500*time.Millisecond {
				t.Fatalf("a key revoked by another process still works after %v", time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Logf("a key revoked by another process answered 401 after %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("tenant deleted", func(t *testing.T) {
		s.post(t, root, "/v1/tenants", `{"id":"brief"}`).want(t, http.StatusCreated)
		k, _ := s.createKey(t, `{"name":"a","tenantId":"brief","role":"admin"}`)
		s.get(t, k, "/v1/keys").want(t, http.StatusOK)
		s.del(t, root, "/v1/tenants/brief").want(t, http.StatusNoContent)
		s.post(t, root, "/v1/tenants", `{"id":"brief"}`).want(t, http.StatusCreated)
		s.get(t, k, "/v1/keys").want(t, http.StatusUnauthorized)
	})

	t.Run("unauthorized answers alike", func(t *testing.T) {
		soon := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		expired, _ := s.createKey(t, `{"name":"x","tenantId":"acme","role":"read_only","expiresAt":"`+soon+`"}`)
		revoked, revokedID := s.createKey(t, `{"name":"y","tenantId":"acme","role":"read_only"}`)
		s.del(t, root, "/v1/keys/"+revokedID).want(t, http.StatusNoContent)
		time.Sleep(400 * time.Millisecond)
		badSum := secret[:len(secret)-1] + string("abcdefghijklmnopqrstuvwxyz234567"[(strings.IndexByte(
			"abcdefghijklmnopqrstuvwxyz234567", secret[len(secret)-1])+1)%32])
		cases := map[string]map[string]string{
			"missing":            {},
			"unknown":            {"X-Api-Key": runmerge.NewKeySecret()},
			"malformed checksum": {"X-Api-Key": badSum},
			"malformed shape":    {"X-Api-Key": "rmk_short"},
			"not a key":          {"X-Api-Key": "hello"},
			"revoked":            {"X-Api-Key": revoked},
			"expired":            {"X-Api-Key": expired},
			"bearer revoked":     {"Authorization": "Bearer " + revoked},
			"empty bearer":       {"Authorization": "Bearer "},
			"root key mistyped":  {"X-Api-Key": root + "x"},
		}
		var want, wantName string
		for name, h := range cases {
			r := s.do(t, isoReq{Method: "GET", Path: "/v1/people", Header: h})
			if r.Status != http.StatusUnauthorized || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s: %d %s %s", name, r.Status, r.Header.Get("Content-Type"), r.Body)
				continue
			}
			if want == "" {
				want, wantName = r.normalized(), name
			} else if got := r.normalized(); got != want {
				t.Errorf("401 for %s: %s; for %s: %s", name, got, wantName, want)
			}
		}
	})

	// The deferred checks of startIsoServer search the catalog, every file
	// of the data directory, the log and every response for the secrets.
	b, err := os.ReadFile(filepath.Join(s.DataDir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(s.DataDir, "catalog.db-wal"))
	for _, sec := range s.allSecrets() {
		if strings.Contains(string(b)+string(wal), sec) {
			t.Errorf("the catalog holds a secret (%.8s…)", sec)
		}
	}
	if !strings.Contains(string(b)+string(wal), runmerge.HashKeySecret(secret)) {
		t.Error("the catalog holds no hash of the key: is the search looking in the right file?")
	}
}

// TestIsolationKeyNoWiderThanMaker checks that a key never makes a key wider
// than itself: another tenant's, a platform key, or one that outlives it.
func TestIsolationKeyNoWiderThanMaker(t *testing.T) {
	s := startIsoServer(t, isoOptions{})
	root := s.RootKey
	s.post(t, root, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	s.post(t, root, "/v1/tenants", `{"id":"globex"}`).want(t, http.StatusCreated)
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	expiring, _ := s.createKey(t, `{"name":"temp","tenantId":"acme","role":"admin","expiresAt":"`+
		until.Format(time.RFC3339Nano)+`"}`)
	platformTemp, _ := s.createKey(t, `{"name":"temp","role":"admin","expiresAt":"`+until.Format(time.RFC3339Nano)+`"}`)
	later := until.Add(time.Minute).Format(time.RFC3339Nano)
	with := until.Format(time.RFC3339Nano)
	earlier := until.Add(-time.Minute).Format(time.RFC3339Nano)
	for _, c := range []struct {
		key, body string
		status    int
	}{
		{expiring, `{"name":"forever","tenantId":"acme","role":"admin"}`, http.StatusForbidden},
		{expiring, `{"name":"later","tenantId":"acme","role":"read_only","expiresAt":"` + later + `"}`,
			http.StatusForbidden},
		{expiring, `{"name":"with","tenantId":"acme","role":"read_only","expiresAt":"` + with + `"}`,
			http.StatusCreated},
		{expiring, `{"name":"other","tenantId":"globex","role":"read_only","expiresAt":"` + with + `"}`,
			http.StatusNotFound},
		{platformTemp, `{"name":"forever","role":"admin"}`, http.StatusForbidden},
		{platformTemp, `{"name":"tenant forever","tenantId":"globex","role":"read_only"}`, http.StatusForbidden},
		{platformTemp, `{"name":"soon","role":"read_only","expiresAt":"` + earlier + `"}`, http.StatusCreated},
	} {
		if r := s.post(t, c.key, "/v1/keys", c.body); r.Status != c.status {
			t.Errorf("POST /v1/keys %s: %d %s, want %d", c.body, r.Status, r.Body, c.status)
		}
	}
}

// TestIsolationRateLimit checks that a key over its rate gets 429 with
// Retry-After in whole seconds and a problem body, and that other keys go on.
func TestIsolationRateLimit(t *testing.T) {
	s := startIsoServer(t, isoOptions{RatePerKey: 0.5, RateBurst: 3})
	s.post(t, s.RootKey, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	busy, _ := s.createKey(t, `{"name":"busy","tenantId":"acme","role":"read_only"}`)
	calm, _ := s.createKey(t, `{"name":"calm","tenantId":"acme","role":"read_only"}`)
	var limited *isoResponse
	for i := 0; i < 10 && limited == nil; i++ {
		if r := s.get(t, busy, "/v1/people"); r.Status == http.StatusTooManyRequests {
			limited = r
		} else if r.Status != http.StatusOK {
			t.Fatalf("GET /v1/people: %d %s", r.Status, r.Body)
		}
	}
	if limited == nil {
		t.Fatal("10 requests at once at 0.5/s with a burst of 3 were never limited")
	}
	if ct := limited.Header.Get("Content-Type"); ct != "application/problem+json" ||
		!strings.Contains(string(limited.Body), `"code":"rate_limited"`) {
		t.Errorf("429 with %s: %s", ct, limited.Body)
	}
	ra, err := strconv.Atoi(limited.Header.Get("Retry-After"))
	if err != nil || ra < 1 {
		t.Errorf("Retry-After %q, want whole seconds ≥ 1", limited.Header.Get("Retry-After"))
	}
	s.get(t, calm, "/v1/people").want(t, http.StatusOK)
	if ra >= 1 && ra <= 3 {
		time.Sleep(time.Duration(ra) * time.Second)
		s.get(t, busy, "/v1/people").want(t, http.StatusOK)
	}
}

// TestIsolationBodyLimit checks the body limit with a declared length and
// with a chunked body of unknown length: 413 either way, and nothing made.
func TestIsolationBodyLimit(t *testing.T) {
	s := startIsoServer(t, isoOptions{MaxBodyBytes: 4096})
	s.post(t, s.RootKey, "/v1/tenants", `{"id":"acme"}`).want(t, http.StatusCreated)
	admin, _ := s.createKey(t, `{"name":"admin","tenantId":"acme","role":"admin"}`)
	body := func(n int) string {
		b := isoRecordBody("people", nil, map[string]any{"jobTitle": strings.Repeat("x", n)})
		return isoJSON(b)
	}
	send := func(payload string, chunked bool) *isoResponse {
		t.Helper()
		var rd io.Reader = strings.NewReader(payload)
		if chunked {
			rd = io.MultiReader(strings.NewReader(payload)) // no length known: sent chunked
		}
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/people", rd)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Api-Key", admin)
		if chunked && req.ContentLength != 0 {
			t.Fatal("the request would not be chunked")
		}
		resp, err := s.httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		out := &isoResponse{Method: "POST", Path: "/v1/people", Status: resp.StatusCode, Header: resp.Header, Body: b}
		s.keep(out)
		return out
	}
	before := s.changeCount(t, "acme")
	for _, chunked := range []bool{false, true} {
		r := send(body(8000), chunked)
		if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(string(r.Body), `"code":"body_too_large"`) ||
			r.Header.Get("Content-Type") != "application/problem+json" {
			t.Errorf("chunked %t: %d %s", chunked, r.Status, r.Body)
		}
	}
	if after := s.changeCount(t, "acme"); after != before {
		t.Errorf("bodies over the limit changed acme: %s → %s", before, after)
	}
	for _, chunked := range []bool{false, true} {
		send(body(100), chunked).want(t, http.StatusCreated)
	}
}
