package handlers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// registerRecordRoutes registers the calls of every collection.
func (s *Server) registerRecordRoutes() {
	for _, c := range runmerge.Collections() {
		base := "/v1/" + c.Name
		s.route(http.MethodGet, base, runmerge.ActionRecordRead, s.listRecords(c))
		s.route(http.MethodPost, base, runmerge.ActionRecordCreate, s.createRecord(c))
		s.route(http.MethodPost, base+"/bulk", runmerge.ActionRecordCreate, s.bulkUpsert(c))
		s.route(http.MethodGet, base+"/:id", runmerge.ActionRecordRead, s.getRecord(c))
		s.route(http.MethodPatch, base+"/:id", runmerge.ActionRecordUpdate, s.updateRecord(c))
		s.route(http.MethodDelete, base+"/:id", runmerge.ActionRecordDelete, s.deleteRecord(c))
	}
}

// tenantFor resolves the tenant a data request works on and leases its
// file. A tenant key works on its own tenant (a tenantId naming another
// is 404); a platform key names one with tenantId. A suspended tenant
// answers ESUSPENDED.
func (s *Server) tenantFor(c echo.Context, q query) (*tenantstore.Lease, error) {
	p := principalOf(c)
	id, given := q.get("tenantId")
	switch {
	case !p.Platform() && given && id != p.TenantID:
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	case !p.Platform():
		id = p.TenantID
	case !given:
		return nil, paramError("tenantId", "required with a platform key")
	}
	if !runmerge.ValidTenantID(id) {
		return nil, runmerge.Errorf(runmerge.ENOTFOUND, "tenant not found")
	}
	c.Set(ctxTenantID, id)
	ctx := c.Request().Context()
	t, err := s.auth.tenant(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Status == runmerge.TenantSuspended {
		return nil, runmerge.Errorf(runmerge.ESUSPENDED, "the tenant is suspended")
	}
	return s.store.Pool.Acquire(ctx, id)
}

// collectionTenant leases the tenant of a request on collection c and
// checks that the caller may do the route's action there. An event
// manager's reach depends on each record, so the store checks it record
// by record instead.
func (s *Server) collectionTenant(ec echo.Context, c *runmerge.Collection, q query) (*tenantstore.Lease, *runmerge.Principal, error) {
	l, err := s.tenantFor(ec, q)
	if err != nil {
		return nil, nil, err
	}
	p := principalOf(ec)
	err = s.authorize(ec, runmerge.Target{TenantID: l.DB().ID(), Collection: c.Name})
	if err != nil && p.Role != runmerge.RoleEventManager {
		l.Release()
		return nil, nil, err
	}
	return l, p, nil
}

// listParams are the parameters every list accepts; filterParams adds the
// collection's own filters.
var listParams = []string{
	"tenantId", "cursor", "limit", "sourceId", "remoteId", "updatedAfter",
	"sourceRawData", "includeDeleted", "q",
}

// linkParams maps each linked*Id parameter to the collection it names.
var linkParams = map[string]string{
	"linkedEventId":     runmerge.CollectionEvents,
	"linkedSessionId":   runmerge.CollectionSessions,
	"linkedPersonId":    runmerge.CollectionPeople,
	"linkedExhibitorId": runmerge.CollectionExhibitors,
	"linkedSponsorId":   runmerge.CollectionSponsors,
	"linkedTicketId":    runmerge.CollectionTickets,
	"linkedResourceId":  runmerge.CollectionResources,
}

// ListParameters returns the query parameters a list of c accepts.
func ListParameters(c *runmerge.Collection) []string {
	params := append([]string(nil), listParams...)
	for _, key := range runmerge.RelationshipKeys() {
		// linkedPersonIds → linkedPersonId
		params = append(params, strings.TrimSuffix(key, "s"))
	}
	for _, f := range c.Fields {
		if f.Filterable {
			params = append(params, f.Name)
		}
	}
	return params
}

// recordCursor is the position of a page of records.
type recordCursor struct {
	Seq    int64  `json:"s"`
	Tenant string `json:"t,omitempty"` // lists across tenants: the tenant Seq belongs to
}

// parseListFilter reads a list's query parameters into a filter.
func parseListFilter(q query, c *runmerge.Collection) (tenantstore.RecordFilter, error) {
	f := tenantstore.RecordFilter{Collection: c}
	var err error
	if f.Limit, err = q.limit(); err != nil {
		return f, err
	}
	var cur recordCursor
	if ok, err := q.cursor(&cur); err != nil {
		return f, err
	} else if ok && cur.Seq < 0 {
		return f, paramError("cursor", "not a cursor this server issued")
	}
	f.AfterSeq = cur.Seq
	if s, ok := q.get("updatedAfter"); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return f, paramError("updatedAfter", "must be an RFC 3339 time, such as 2026-05-01T09:00:00Z")
		}
		f.UpdatedAfter = &t
	}
	if f.WithRaw, err = q.bool("sourceRawData"); err != nil {
		return f, err
	}
	if f.IncludeDeleted, err = q.bool("includeDeleted"); err != nil {
		return f, err
	}
	for name, dst := range map[string]**string{"sourceId": &f.SourceID, "remoteId": &f.RemoteID} {
		if v, ok := q.get(name); ok {
			if v == "" {
				return f, paramError(name, "must not be empty")
			}
			*dst = &v
		}
	}
	for _, fd := range c.Fields {
		if !fd.Filterable {
			continue
		}
		v, ok := q.get(fd.Name)
		if !ok {
			continue
		}
		if len(fd.Enum) > 0 && !contains(fd.Enum, v) {
			return f, paramError(fd.Name, "must be one of "+strings.Join(fd.Enum, ", "))
		}
		if v == "" {
			return f, paramError(fd.Name, "must not be empty")
		}
		switch fd.Name {
		case "status":
			f.Status = &v
		case "type":
			f.Type = &v
		}
	}
	for name, coll := range linkParams {
		if v, ok := q.get(name); ok {
			if v == "" {
				return f, paramError(name, "must not be empty")
			}
			f.Links = append(f.Links, tenantstore.LinkFilter{Collection: coll, ID: v})
		}
	}
	if v, ok := q.get("q"); ok {
		// Bytes that are not UTF-8 would reach the full-text index as a
		// word that matches nothing, and a client would take the empty
		// page for an answer.
		if !utf8.ValidString(v) {
			return f, paramError("q", "must be UTF-8 text")
		}
		if f.Query = searchQuery(v); f.Query == "" {
			return f, paramError("q", "must contain a letter or digit")
		}
	}
	return f, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// Bounds of a search: the bytes of q read, and the words used.
const (
	maxSearchBytes = 200
	maxSearchWords = 8
)

// searchQuery turns what a client typed, UTF-8 text, into a full-text query
// that matches records holding every word, each as a prefix, or "" when it
// has no word. Words are quoted, so no character of the input is read as
// query syntax. A word without a letter or digit, such as "«" or "—", is
// left out: the index holds no such word, and searching for one alone
// would answer an empty page rather than say the search is bad.
func searchQuery(q string) string {
	if len(q) > maxSearchBytes {
		// Cut at a character, not inside one.
		q = strings.ToValidUTF8(q[:maxSearchBytes], "")
	}
	words := strings.FieldsFunc(q, func(r rune) bool {
		return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r > 127)
	})
	var b strings.Builder
	n := 0
	for _, w := range words {
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
			continue
		}
		if n == maxSearchWords {
			break
		}
		if n > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(`"` + strings.ReplaceAll(w, `"`, `""`) + `"*`)
		n++
	}
	return b.String()
}

// listRecords handles GET /v1/<collection>.
func (s *Server) listRecords(c *runmerge.Collection) echo.HandlerFunc {
	params := ListParameters(c)
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, params...)
		if err != nil {
			return err
		}
		f, err := parseListFilter(q, c)
		if err != nil {
			return err
		}
		if _, given := q.get("tenantId"); !given && principalOf(ec).Platform() {
			return s.listAcrossTenants(ec, c, q, f)
		}
		l, p, err := s.collectionTenant(ec, c, q)
		if err != nil {
			return err
		}
		defer l.Release()
		list, more, err := l.DB().ListRecords(ec.Request().Context(), p, f)
		if err != nil {
			return err
		}
		var next *string
		if more {
			next = encodeCursor(recordCursor{Seq: list[len(list)-1].Seq})
		}
		return writeRecordPage(ec, list, next, f.WithRaw)
	}
}

// writeRecordPage writes {"data": [...], "nextCursor": ...}.
func writeRecordPage(c echo.Context, list []*runmerge.Record, next *string, withRaw bool) error {
	b := make([]byte, 0, 512*len(list)+64)
	b = append(b, `{"data":[`...)
	for i, r := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.AppendJSON(b, withRaw)
	}
	b = append(b, `],"nextCursor":`...)
	if next == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendQuote(b, *next)
	}
	b = append(b, "}\n"...)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// writeRecord writes one record with its ETag.
func writeRecord(c echo.Context, status int, r *runmerge.Record, withRaw bool) error {
	c.Response().Header().Set("ETag", r.ETag())
	b := r.AppendJSON(make([]byte, 0, 1024), withRaw)
	return c.Blob(status, echo.MIMEApplicationJSON, append(b, '\n'))
}

// getRecord handles GET /v1/<collection>/:id.
func (s *Server) getRecord(c *runmerge.Collection) echo.HandlerFunc {
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, "tenantId", "sourceRawData")
		if err != nil {
			return err
		}
		withRaw, err := q.bool("sourceRawData")
		if err != nil {
			return err
		}
		l, err := s.tenantFor(ec, q)
		if err != nil {
			return err
		}
		defer l.Release()
		r, err := l.DB().GetRecord(ec.Request().Context(), principalOf(ec), c, ec.Param("id"), withRaw)
		if err != nil {
			return err
		}
		return writeRecord(ec, http.StatusOK, r, withRaw)
	}
}

// readDocument reads a JSON object body with numbers kept exact.
func readDocument(c echo.Context) (map[string]any, error) {
	body, err := readJSONBody(c)
	if err != nil {
		return nil, err
	}
	return parseDocument(body)
}

// createRecord handles POST /v1/<collection>.
func (s *Server) createRecord(c *runmerge.Collection) echo.HandlerFunc {
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, "tenantId")
		if err != nil {
			return err
		}
		doc, err := readDocument(ec)
		if err != nil {
			return err
		}
		l, p, err := s.collectionTenant(ec, c, q)
		if err != nil {
			return err
		}
		defer l.Release()
		return s.idempotent(ec, l.DB(), doc, func(idem *tenantstore.Idempotency) error {
			r, err := l.DB().CreateRecord(ec.Request().Context(), p, c, doc, idem, func(r *runmerge.Record) tenantstore.SavedResponse {
				return tenantstore.SavedResponse{
					Status:  http.StatusCreated,
					Headers: map[string]string{"Location": recordLocation(c, r), "ETag": r.ETag()},
					Body:    append(r.AppendJSON(nil, false), '\n'),
				}
			})
			if err != nil {
				return err
			}
			ec.Response().Header().Set(echo.HeaderLocation, recordLocation(c, r))
			return writeRecord(ec, http.StatusCreated, r, false)
		})
	}
}

func recordLocation(c *runmerge.Collection, r *runmerge.Record) string {
	return "/v1/" + c.Name + "/" + r.ID + "?tenantId=" + r.TenantID
}

// bulkUpsert handles POST /v1/<collection>/bulk.
func (s *Server) bulkUpsert(c *runmerge.Collection) echo.HandlerFunc {
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, "tenantId")
		if err != nil {
			return err
		}
		doc, err := readDocument(ec)
		if err != nil {
			return err
		}
		records, err := bulkRecords(doc)
		if err != nil {
			return err
		}
		l, p, err := s.collectionTenant(ec, c, q)
		if err != nil {
			return err
		}
		defer l.Release()
		render := func(list []*runmerge.Record) tenantstore.SavedResponse {
			return tenantstore.SavedResponse{Status: http.StatusOK, Headers: map[string]string{},
				Body: bulkBody(list)}
		}
		return s.idempotent(ec, l.DB(), doc, func(idem *tenantstore.Idempotency) error {
			list, err := l.DB().BulkUpsert(ec.Request().Context(), p, c, records, idem, render)
			if err != nil {
				return err
			}
			return ec.Blob(http.StatusOK, echo.MIMEApplicationJSON, bulkBody(list))
		})
	}
}

func bulkBody(list []*runmerge.Record) []byte {
	b := append(make([]byte, 0, 512*len(list)), `{"data":[`...)
	for i, r := range list {
		if i > 0 {
			b = append(b, ',')
		}
		b = r.AppendJSON(b, false)
	}
	return append(b, "]}\n"...)
}

// bulkRecords checks the shape of a bulk body: {"records": [objects]}.
func bulkRecords(doc map[string]any) ([]map[string]any, error) {
	for k := range doc {
		if k != "records" {
			return nil, fieldError(runmerge.EUNKNOWNFIELD, "/"+k, "unknown_field", "a bulk body has only records")
		}
	}
	list, ok := doc["records"].([]any)
	if !ok {
		return nil, fieldError(runmerge.EINVALID, "/records", "required", "must be an array of records")
	}
	if len(list) == 0 || len(list) > tenantstore.MaxBulk {
		return nil, fieldError(runmerge.EINVALID, "/records", "out_of_range", "must hold 1 to 1000 records")
	}
	out := make([]map[string]any, len(list))
	for i, v := range list {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fieldError(runmerge.EINVALID, "/records/"+strconv.Itoa(i), "invalid_type", "must be an object")
		}
		out[i] = m
	}
	return out, nil
}

// ifMatch parses an If-Match header: nil when absent, the version it names
// otherwise. "*" matches any version; anything this server did not issue
// matches none.
func ifMatch(c echo.Context) *int64 {
	h := strings.TrimSpace(c.Request().Header.Get("If-Match"))
	if h == "" || h == "*" {
		return nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || !strings.HasPrefix(h, `"`) || !strings.HasSuffix(h, `"`) {
		return new(int64) // no record has version 0
	}
	return &v
}

// updateRecord handles PATCH /v1/<collection>/:id.
func (s *Server) updateRecord(c *runmerge.Collection) echo.HandlerFunc {
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, "tenantId")
		if err != nil {
			return err
		}
		patch, err := readDocument(ec)
		if err != nil {
			return err
		}
		version := ifMatch(ec)
		l, err := s.tenantFor(ec, q)
		if err != nil {
			return err
		}
		defer l.Release()
		r, err := l.DB().UpdateRecord(ec.Request().Context(), principalOf(ec), c, ec.Param("id"), patch, version)
		if err != nil {
			return err
		}
		return writeRecord(ec, http.StatusOK, r, false)
	}
}

// deleteRecord handles DELETE /v1/<collection>/:id.
func (s *Server) deleteRecord(c *runmerge.Collection) echo.HandlerFunc {
	return func(ec echo.Context) error {
		q, err := parseQuery(ec, "tenantId")
		if err != nil {
			return err
		}
		version := ifMatch(ec)
		l, err := s.tenantFor(ec, q)
		if err != nil {
			return err
		}
		defer l.Release()
		if err := l.DB().DeleteRecord(ec.Request().Context(), principalOf(ec), c, ec.Param("id"), version); err != nil {
			return err
		}
		return ec.NoContent(http.StatusNoContent)
	}
}

// inflight tracks idempotent requests being processed, so that a repeat
// arriving meanwhile is refused rather than run twice.
type inflight struct {
	mu   sync.Mutex
	keys map[string]bool
}

func (f *inflight) start(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keys == nil {
		f.keys = make(map[string]bool)
	}
	if f.keys[key] {
		return false
	}
	f.keys[key] = true
	return true
}

func (f *inflight) done(key string) {
	f.mu.Lock()
	delete(f.keys, key)
	f.mu.Unlock()
}

// maxIdempotencyKey bounds the Idempotency-Key header.
const maxIdempotencyKey = 255

// idempotent runs a POST under its Idempotency-Key, if it has one: a repeat
// with the same key and body from the same API key within 24 hours gets the
// first response again and runs nothing; the same key with another body is
// refused; a repeat while the first still runs gets 409.
func (s *Server) idempotent(c echo.Context, db *tenantstore.DB, doc map[string]any, run func(*tenantstore.Idempotency) error) error {
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		return run(nil)
	}
	if len(key) > maxIdempotencyKey {
		return runmerge.Errorf(runmerge.EINVALIDPARAM, "Idempotency-Key must be at most 255 characters")
	}
	p := principalOf(c)
	keyID := p.KeyID
	if keyID == "" {
		keyID = "root"
	}
	// The body is hashed as the server read it, re-encoded with its members
	// in order, so that a repeat that orders or spaces them differently is
	// still the same request.
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(append([]byte(c.Request().Method+" "+c.Path()+"\n"), body...))
	idem := &tenantstore.Idempotency{KeyID: keyID, Key: key, RequestHash: hex.EncodeToString(sum[:])}

	flight := db.ID() + "\x00" + keyID + "\x00" + key
	if !s.inflight.start(flight) {
		return runmerge.Errorf(runmerge.EINPROGRESS, "a request with this Idempotency-Key is still running")
	}
	defer s.inflight.done(flight)

	saved, err := db.SavedResponseFor(context.WithoutCancel(c.Request().Context()), keyID, key)
	if err != nil {
		return err
	}
	if saved == nil {
		return run(idem)
	}
	if saved.RequestHash != idem.RequestHash {
		return fieldError(runmerge.EINVALID, "", "idempotency_key_reused",
			"this Idempotency-Key was used with a different request")
	}
	for k, v := range saved.Headers {
		c.Response().Header().Set(k, v)
	}
	c.Response().Header().Set("Idempotent-Replayed", "true")
	return c.Blob(saved.Status, echo.MIMEApplicationJSON, saved.Body)
}
