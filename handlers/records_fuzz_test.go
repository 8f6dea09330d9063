package handlers

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// searchSyntax is what searchQuery may produce: quoted words, each a prefix.
var searchSyntax = regexp.MustCompile(`^"[^"\s]+"\*( "[^"\s]+"\*)*$`)

// FuzzParseListFilter reads any query string as a list of any collection
// would. It must be refused with invalid_parameter, naming a parameter the
// query has, or give a filter in which every parameter the query names has
// taken effect, so that a misspelt or ignored filter never lists unfiltered
// data; and the search it builds must never be an FTS5 syntax error.
func FuzzParseListFilter(f *testing.F) {
	for _, q := range []string{
		"", "limit=7", "limit=0", "limit=501", "limit=1&limit=2", "status=Active", "status=Away",
		"type=Speaker", "stauts=Active", "q=ada+lovelace", `q=a"b*c`, "q=NEAR(a+b)", "q=-x+OR+y",
		"q=%21%21", "q=%C3%BC", "cursor=eyJzIjoxMH0", "cursor=eyJzIjotMX0", "cursor=!!",
		"updatedAfter=2026-05-01T09:00:00Z", "updatedAfter=x", "includeDeleted=true",
		"sourceRawData=false", "linkedEventId=e1&linkedPersonId=p1", "sourceId=&remoteId=r",
		"limit=%zz", "a;b", "tenantId=acme", "q=" + strings.Repeat("w+", 300),
		"q=%FF%FE", "q=ada%C3", "q=%C2%AB+%C2%BB", "q=_", "q=" + strings.Repeat("a", 199) + "%C3%A9",
	} {
		for i := range runmerge.CollectionNames {
			f.Add(q, uint8(i))
		}
	}
	fts := ftsTable(f)
	e := echo.New()

	f.Fuzz(func(t *testing.T, raw string, which uint8) {
		c := runmerge.Collections()[int(which)%len(runmerge.CollectionNames)]
		req := &http.Request{Method: "GET", URL: &url.URL{Path: "/v1/" + c.Name, RawQuery: raw},
			Header: http.Header{}}
		ec := e.NewContext(req, httptest.NewRecorder())
		allowed := ListParameters(c)
		q, err := parseQuery(ec, allowed...)
		var lf tenantstore.RecordFilter
		if err == nil {
			lf, err = parseListFilter(q, c)
		}
		values, perr := url.ParseQuery(raw)
		if err != nil {
			var e *runmerge.Error
			if !errors.As(err, &e) || e.Code != runmerge.EINVALIDPARAM {
				t.Fatalf("%q: %v, want invalid_parameter", raw, err)
			}
			for _, fe := range e.Fields {
				if _, ok := values[fe.Pointer]; !ok || perr != nil {
					t.Fatalf("%q: the error names %q, which the query does not have", raw, fe.Pointer)
				}
			}
			return
		}
		if perr != nil {
			t.Fatalf("%q: accepted a query url.ParseQuery refuses: %v", raw, perr)
		}
		for name, vs := range values {
			if !slices.Contains(allowed, name) || len(vs) != 1 {
				t.Fatalf("%q: accepted parameter %q (%d values)", raw, name, len(vs))
			}
			v := vs[0]
			var took bool
			switch name {
			case "tenantId", "cursor", "limit", "sourceRawData", "includeDeleted", "updatedAfter":
				took = true // checked below or read by other code
			case "sourceId":
				took = lf.SourceID != nil && *lf.SourceID == v
			case "remoteId":
				took = lf.RemoteID != nil && *lf.RemoteID == v
			case "status":
				took = lf.Status != nil && *lf.Status == v
			case "type":
				took = lf.Type != nil && *lf.Type == v
			case "q":
				took = lf.Query != ""
			default:
				took = slices.ContainsFunc(lf.Links, func(l tenantstore.LinkFilter) bool {
					return l.ID == v && l.Collection == linkParams[name]
				})
			}
			if !took {
				t.Fatalf("%q: parameter %s=%q has no effect on the filter %+v", raw, name, v, lf)
			}
		}
		if lf.Limit < 1 || lf.Limit > maxLimit || lf.AfterSeq < 0 {
			t.Fatalf("%q: limit %d, after %d", raw, lf.Limit, lf.AfterSeq)
		}
		if fd, ok := c.Field("status"); ok && lf.Status != nil && fd.Enum != nil && !slices.Contains(fd.Enum, *lf.Status) {
			t.Fatalf("%q: status %q is not one of %v", raw, *lf.Status, fd.Enum)
		}
		if q, ok := values["q"]; ok && !utf8.ValidString(q[0]) {
			t.Fatalf("%q: accepted q that is not UTF-8", raw)
		}
		if lf.Query != "" {
			if !searchSyntax.MatchString(lf.Query) || !utf8.ValidString(lf.Query) {
				t.Fatalf("%q: search %q", raw, lf.Query)
			}
			var n int
			if err := fts.QueryRow(`SELECT count(*) FROM t WHERE t MATCH ?`, lf.Query).Scan(&n); err != nil {
				t.Fatalf("%q: search %q is not a valid FTS5 query: %v", raw, lf.Query, err)
			}
		}
	})
}

// ftsTable returns an in-memory database with an FTS5 table t like the
// tenant's records_fts, holding a few rows.
func ftsTable(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sql.Open("sqlite", "file::memory:")
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	tb.Cleanup(func() { db.Close() })
	for _, q := range []string{
		`CREATE VIRTUAL TABLE t USING fts5 (text, content = '', contentless_delete = 1,
			tokenize = 'unicode61 remove_diacritics 2')`,
		`INSERT INTO t (rowid, text) VALUES (1, 'Ada Lovelace ada@example.com'), (2, 'Zoë Ünal')`,
	} {
		if _, err := db.ExecContext(context.Background(), q); err != nil {
			tb.Fatal(err)
		}
	}
	return db
}

// FuzzReadObject sends any body with any content type to the body decoder
// of every write route. It must refuse a non-JSON content type with
// unsupported_media_type and anything but one JSON object with invalid_json,
// and give back exactly the members of an object it accepts, which then
// pass through the record checks without a fault of the server.
func FuzzReadObject(f *testing.F) {
	for _, b := range []string{
		`{}`, `{"name":"x"}`, `{"a":1} `, `{"a":1}{}`, `[]`, `null`, `"x"`, ``, ` `, `{"a":`, `{"a":1,"a":2}`,
		`{"firstName":"A","lastName":"B","email":"a@b.example","address":{"city":null}}`,
		`{"startDate":"2026-05-01T09:00:00+02:00","endDate":"2026-05-01T08:00:00Z","name":"E"}`,
		`{"price":1e400}`, `{"capacity":-0}`, "{\"a\":\"\xff\"}", `{"customFields":[{"fieldType":"number","fieldValue":"x"}]}`,
		`{"relationships":{"linkedEventIds":[null,1,"x"]}}`, `{"id":"x","nickname":1}`,
	} {
		f.Add([]byte(b), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	f.Add([]byte(`{}`), "application/merge-patch+json; charset=utf-8")
	f.Add([]byte(`{}`), "")
	e := echo.New()

	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		req := httptest.NewRequest("POST", "/v1/events", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		ec := e.NewContext(req, httptest.NewRecorder())
		obj, err := readObject(ec)
		// The record routes read bodies with parseDocument, which must agree.
		doc, derr := parseDocument(body)
		if isJSONType(contentType) && (err == nil) != (derr == nil) {
			t.Fatalf("%q: parseObject says %v, parseDocument %v", body, err, derr)
		}
		if err == nil && !slices.Equal(sortedKeys(obj), sortedKeys(doc)) {
			t.Fatalf("%q: parseDocument members %v, parseObject %v", body, sortedKeys(doc), sortedKeys(obj))
		}
		if err != nil {
			code := runmerge.ErrorCode(err)
			if code != runmerge.EUNSUPPORTEDMEDIA && code != runmerge.EINVALIDJSON {
				t.Fatalf("%q as %q: %v", body, contentType, err)
			}
			if code == runmerge.EINVALIDJSON && strings.Contains(runmerge.ErrorMessage(err), string(body)) && len(body) > 8 {
				t.Fatalf("the error echoes the body: %v", err)
			}
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(body, &want); err != nil || want == nil {
			t.Fatalf("%q: accepted a body that is not a JSON object (%v)", body, err)
		}
		if !slices.Equal(sortedKeys(obj), sortedKeys(want)) {
			t.Fatalf("%q: members %v, want %v", body, sortedKeys(obj), sortedKeys(want))
		}

		// What the record routes do next: run the checks of every
		// collection. Refusals are domain errors.
		for _, c := range runmerge.Collections() {
			err := c.CheckBody(doc, "")
			if err == nil {
				created := runmerge.MergePatch(nil, doc)
				c.ApplyDefaults(created)
				if err = c.Validate(created, ""); err == nil {
					c.NormalizeTimes(created)
					if err := c.Validate(created, ""); err != nil {
						t.Fatalf("%s: valid before NormalizeTimes, not after: %v", c.Name, err)
					}
				}
			}
			if err == nil {
				continue
			}
			var re *runmerge.Error
			if !errors.As(err, &re) || len(re.Fields) == 0 {
				t.Fatalf("%s: %v is not a field error", c.Name, err)
			}
			for _, fe := range re.Fields {
				if !strings.HasPrefix(fe.Pointer, "/") {
					t.Fatalf("%s: pointer %q", c.Name, fe.Pointer)
				}
			}
		}
	})
}

// isJSONType reports whether readObject takes a body of content type ct.
func isJSONType(ct string) bool {
	req := httptest.NewRequest("POST", "/", nil)
	req.Header.Set("Content-Type", ct)
	_, err := readObject(echo.New().NewContext(req, httptest.NewRecorder()))
	return runmerge.ErrorCode(err) != runmerge.EUNSUPPORTEDMEDIA
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
