package handlers

import (
	"github.com/labstack/echo/v4"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// tenantBatch is how many tenant ids a list across tenants reads from the
// catalog at a time.
const tenantBatch = 100

// listAcrossTenants answers a platform key's list without tenantId: the
// records of every active tenant, grouped by tenant in order of tenant id,
// each carrying its tenantId, paged by one cursor. Only tenants the catalog
// knows to have had records in the collection are opened.
func (s *Server) listAcrossTenants(c echo.Context, coll *runmerge.Collection, q query, f tenantstore.RecordFilter) error {
	if err := s.authorize(c, runmerge.Target{Collection: coll.Name}); err != nil {
		return err
	}
	var cur recordCursor
	if _, err := q.cursor(&cur); err != nil {
		return err
	}
	if cur.Tenant != "" && !runmerge.ValidTenantID(cur.Tenant) {
		return paramError("cursor", "not a cursor this server issued")
	}
	ctx := c.Request().Context()
	p := principalOf(c)
	limit := f.Limit

	var out []*runmerge.Record
	var next *string
	from := cur.Tenant
	for next == nil {
		ids, err := s.store.Catalog.TenantsWithRecords(ctx, coll.Name, from, tenantBatch)
		if err != nil {
			return err
		}
		for _, id := range ids {
			tf := f
			tf.Limit = limit - len(out)
			tf.AfterSeq = 0
			if id == cur.Tenant {
				tf.AfterSeq = cur.Seq
			}
			list, more, err := s.listTenant(c, p, id, tf)
			if err != nil {
				return err
			}
			out = append(out, list...)
			if more || (len(out) == limit && id != ids[len(ids)-1]) {
				// The page is full; the next starts after its last record.
				// (It may turn out empty when no later tenant matches.)
				last := out[len(out)-1]
				next = encodeCursor(recordCursor{Tenant: last.TenantID, Seq: last.Seq})
				break
			}
			if len(out) == limit {
				break
			}
		}
		if next != nil || len(ids) < tenantBatch {
			break
		}
		if len(out) == limit {
			last := out[len(out)-1]
			next = encodeCursor(recordCursor{Tenant: last.TenantID, Seq: last.Seq})
			break
		}
		from = ids[len(ids)-1] + "\x00"
	}
	return writeRecordPage(c, out, next, f.WithRaw)
}

// listTenant lists one tenant's records for a list across tenants. A
// tenant deleted or suspended meanwhile contributes nothing.
func (s *Server) listTenant(c echo.Context, p *runmerge.Principal, id string, f tenantstore.RecordFilter) ([]*runmerge.Record, bool, error) {
	l, err := s.store.Pool.Acquire(c.Request().Context(), id)
	if runmerge.ErrorCode(err) == runmerge.ENOTFOUND {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	defer l.Release()
	return l.DB().ListRecords(c.Request().Context(), p, f)
}
