package handlers

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
)

// sqliteMediaType is the media type of a SQLite database file.
const sqliteMediaType = "application/vnd.sqlite3"

func (s *Server) registerExportRoutes() {
	s.route(http.MethodGet, "/v1/tenants/:id/export", runmerge.ActionTenantExport, s.exportTenant)
	s.route(http.MethodPut, "/v1/tenants/:id/import", runmerge.ActionTenantImport, s.importTenant)
}

// exportTenant handles GET /v1/tenants/:id/export: the tenant as one SQLite
// file, consistent as of one moment and checked before it is sent.
func (s *Server) exportTenant(c echo.Context) error {
	id := c.Param("id")
	if err := s.authorize(c, runmerge.Target{TenantID: id}); err != nil {
		return err
	}
	if _, err := parseQuery(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	t, err := s.store.Catalog.Tenant(ctx, id)
	if err != nil {
		return err
	}
	c.Set(ctxTenantID, t.ID)
	// A platform admin may take the data of a suspended tenant, to hand it
	// over; the tenant's own keys are refused, as on every data request.
	if t.Status == runmerge.TenantSuspended && !principalOf(c).Platform() {
		return runmerge.Errorf(runmerge.ESUSPENDED, "the tenant is suspended")
	}

	path, err := s.store.TempFile("export-" + id)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	m, err := s.store.ExportTenant(ctx, id, path)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}

	// No Range support: a download resumed against another export would
	// splice two different files.
	h := c.Response().Header()
	h.Set(echo.HeaderContentLength, strconv.FormatInt(fi.Size(), 10))
	h.Set(echo.HeaderContentDisposition, mime.FormatMediaType("attachment", map[string]string{
		"filename": id + "-" + m.ExportedAt.Format("20060102T150405Z") + ".db",
	}))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Runmerge-Schema-Version", strconv.Itoa(m.SchemaVersion))
	h.Set("X-Runmerge-Last-Change", strconv.FormatInt(m.LastChange, 10))
	return c.Stream(http.StatusOK, sqliteMediaType, f)
}

// importTenant handles PUT /v1/tenants/:id/import: the body, a SQLite file,
// replaces the tenant's data (or creates the tenant) once it has passed
// every check. The answer is the tenant as GET /v1/tenants/:id shows it.
func (s *Server) importTenant(c echo.Context) error {
	id := c.Param("id")
	if err := s.authorize(c, runmerge.Target{TenantID: id}); err != nil {
		return err
	}
	if _, err := parseQuery(c); err != nil {
		return err
	}
	mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if err != nil || (mt != sqliteMediaType && mt != echo.MIMEOctetStream) {
		return runmerge.Errorf(runmerge.EUNSUPPORTEDMEDIA,
			"the body must be an exported tenant file, sent as %s", echo.MIMEOctetStream)
	}
	if err := runmerge.ValidateTenantID(id, "/id"); err != nil {
		return err
	}
	c.Set(ctxTenantID, id)

	ctx := c.Request().Context()
	res, err := s.store.ImportTenant(ctx, id, uploadReader{c.Request().Body})
	if err != nil {
		return err
	}
	t, err := s.store.Catalog.Tenant(ctx, id)
	if err != nil {
		return err
	}
	stats, err := s.store.TenantStats(ctx, id)
	if err != nil {
		return err
	}
	out := newTenantJSON(t)
	out.Stats = stats
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
		c.Response().Header().Set(echo.HeaderLocation, "/v1/tenants/"+id)
	}
	return c.JSON(status, out)
}

// uploadReader reads a request body, turning the body limit's error into
// the domain's.
type uploadReader struct{ r io.Reader }

func (u uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return n, runmerge.Errorf(runmerge.ETOOLARGE, "the file is larger than %d bytes", mbe.Limit)
	}
	return n, err
}

// exportOperations describes the export, import and metrics routes for the
// OpenAPI document.
func exportOperations() map[string]obj {
	tags := []any{"tenants"}
	file := obj{"type": "string", "contentMediaType": sqliteMediaType}
	header := func(desc string, schema obj) obj {
		return obj{"description": desc, "required": true, "schema": schema}
	}
	return map[string]obj{
		"GET /v1/tenants/:id/export": {
			"summary": "Export a tenant",
			"description": "The tenant as one self-contained SQLite file: every record, " +
				"relationship, tombstone and change event, consistent as of one moment while " +
				"writes go on, checked with PRAGMA integrity_check before it is sent. The " +
				"tables runmerge_export and runmerge_export_counts say which tenant, schema " +
				"version and time the file holds, and how many records. Writers are not " +
				"blocked while it is made. Platform admins, and a tenant's own admins.",
			"tags": tags,
			"responses": withErrors(obj{
				"200": obj{
					"description": "The tenant's file.",
					"headers": obj{
						"X-Request-Id": requestIDHeader(),
						"Content-Disposition": header("attachment; filename=<id>-<time>.db",
							obj{"type": "string"}),
						"X-Runmerge-Schema-Version": header("The schema version of the file.",
							obj{"type": "integer"}),
						"X-Runmerge-Last-Change": header("The position of the last change the "+
							"file holds in the tenant's change order.", obj{"type": "integer"}),
					},
					"content": obj{sqliteMediaType: obj{"schema": file}},
				},
			}, 400, 403, 404),
		},
		"PUT /v1/tenants/:id/import": {
			"summary": "Import a tenant",
			"description": "Replaces the tenant's data with an earlier export (or a tenant " +
				"file), creating the tenant when it does not exist. The file is checked first: " +
				"a whole SQLite database passing integrity_check, a Runmerge tenant file, with " +
				"exactly the tables of a schema version this server knows (an older one is " +
				"migrated). Anything else is 422 and changes nothing. The swap waits for " +
				"requests using the tenant to finish. Platform admin keys only; the body " +
				"limit is limits.max_import_bytes.",
			"tags": tags,
			"requestBody": obj{"required": true, "content": obj{
				sqliteMediaType:            obj{"schema": file},
				"application/octet-stream": obj{"schema": file},
			}},
			"responses": withErrors(obj{
				"200": jsonResponse("The tenant, replaced, with its stats.", ref("TenantWithStats")),
				"201": jsonResponse("The tenant, created, with its stats.", ref("TenantWithStats"),
					locationHeader()),
			}, 400, 403, 409, 413, 415, 422),
		},
		"GET /metrics": {
			"summary": "Metrics",
			"description": "Prometheus text format: HTTP requests by route and status, the " +
				"tenant pool, backups, webhooks. Needs no key; served when metrics.enabled.",
			"tags": []any{"operations"},
			"responses": obj{
				"200": obj{"description": "The metrics.", "content": obj{
					"text/plain": obj{"schema": obj{"type": "string"}}}},
				"405": problemRef(),
			},
		},
	}
}
