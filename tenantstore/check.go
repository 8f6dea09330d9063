package tenantstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/runmerge/runmerge"
)

// CheckOptions configures CheckAll.
type CheckOptions struct {
	// Parallel is how many tenant files are checked at once; 0 means the
	// number of CPUs.
	Parallel int

	// Quick runs PRAGMA quick_check, which skips the comparison of each
	// index with its table, instead of integrity_check.
	Quick bool

	// Progress, when set, is called after each tenant with the number done
	// and the number to do, from one goroutine at a time.
	Progress func(done, total int)
}

// CheckSummary says what CheckAll found.
type CheckSummary struct {
	Total  int               // tenants checked
	OK     int               // tenants whose file passed
	Failed map[string]string // tenant → what is wrong with its file

	// Strays are files in the tenants directory that belong to no tenant
	// in the catalog, such as those of a tenant deleted while another
	// process held the file open.
	Strays []string
}

// CheckAll checks the file of every tenant in the catalog: that it exists,
// is a Runmerge tenant file of a schema version this server knows, and
// passes SQLite's integrity check (which covers the search index too). It
// reads through connections of its own, beside a running server.
func (s *Store) CheckAll(ctx context.Context, opts CheckOptions) (*CheckSummary, error) {
	if opts.Parallel <= 0 {
		opts.Parallel = runtime.GOMAXPROCS(0)
	}
	var ids []string
	for f := (runmerge.TenantFilter{Limit: 1000}); ; {
		page, err := s.Catalog.Tenants(ctx, f)
		if err != nil {
			return nil, err
		}
		for _, t := range page {
			ids = append(ids, t.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.After = page[len(page)-1].ID
	}
	sum := &CheckSummary{Total: len(ids), Failed: make(map[string]string)}
	strays, err := s.strayFiles(ids)
	if err != nil {
		return nil, err
	}
	sum.Strays = strays

	var mu sync.Mutex
	done := 0
	todo := make(chan string)
	var wg sync.WaitGroup
	for range opts.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range todo {
				err := checkFile(ctx, s.Pool.Path(id), s.Pool.cfg.Options, opts.Quick)
				mu.Lock()
				done++
				if err != nil {
					sum.Failed[id] = err.Error()
				} else {
					sum.OK++
				}
				if opts.Progress != nil {
					opts.Progress(done, sum.Total)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		todo <- id
	}
	close(todo)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("check interrupted: %w", err)
	}
	return sum, nil
}

// CheckTenant checks tenant id's file as CheckAll does.
func (s *Store) CheckTenant(ctx context.Context, id string) error {
	if !runmerge.ValidTenantID(id) {
		return ErrTenantFileMissing
	}
	return checkFile(ctx, s.Pool.Path(id), s.Pool.cfg.Options, false)
}

// checkFile checks the tenant file at path.
func checkFile(ctx context.Context, path string, o Options, quick bool) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return errors.New("the tenant's file is missing")
	}
	db, err := connect(path, o, modeRead)
	if err != nil {
		return err
	}
	defer db.Close()
	h, err := readHeader(ctx, db)
	if err != nil {
		return fmt.Errorf("read header: %w", err)
	}
	switch {
	case h.applicationID != tenantMigrations.applicationID:
		return errors.New("not a Runmerge tenant file (wrong application_id)")
	case h.userVersion > tenantMigrations.latest():
		return fmt.Errorf("schema version %d is newer than this server knows (%d)",
			h.userVersion, tenantMigrations.latest())
	}
	if !quick {
		return integrityCheck(ctx, db)
	}
	var res []string
	rows, err := db.QueryContext(ctx, `PRAGMA quick_check(10)`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		if s != "ok" {
			res = append(res, s)
		}
	}
	if len(res) > 0 {
		return fmt.Errorf("quick check failed: %s", strings.Join(res, "; "))
	}
	return rows.Err()
}

// strayFiles returns the tenant files in the tenants directory whose
// tenant is not among ids, sorted.
func (s *Store) strayFiles(ids []string) ([]string, error) {
	entries, err := os.ReadDir(s.Pool.cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("list tenant files: %w", err)
	}
	known := make(map[string]bool, len(ids))
	for _, id := range ids {
		known[id+".db"] = true
	}
	var strays []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".db") && !known[e.Name()] {
			strays = append(strays, e.Name())
		}
	}
	sort.Strings(strays)
	return strays, nil
}
