package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

var workloads = map[string]func(context.Context, *run) error{
	"ceiling": ceilingWorkload,
	"raw":     rawWorkload,
	"crud":    crudWorkload,
	"list":    listWorkload,
	"tenants": tenantsWorkload,
	"soak":    soakWorkload,
}

func workloadNames() []string {
	var names []string
	for n := range workloads {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// admin is the principal data is prepared as.
var admin = &runmerge.Principal{Role: runmerge.RoleAdmin}

// dataDir returns a directory for a workload's data.
func (r *run) dataDir(name string) (string, func(), error) {
	if r.opts.dataDir != "" {
		dir := filepath.Join(r.opts.dataDir, name)
		return dir, func() {}, os.MkdirAll(dir, 0o750)
	}
	dir, err := os.MkdirTemp("", "runmerge-bench-"+name+"-")
	return dir, func() { os.RemoveAll(dir) }, err
}

func openStore(ctx context.Context, dir string, maxOpen int) (*tenantstore.Store, error) {
	return tenantstore.Open(ctx, tenantstore.Config{DataDir: dir, MaxOpen: maxOpen})
}

// person returns the body of the i-th generated person.
func person(i int, eventID string) map[string]any {
	statuses := []string{"Active", "Inactive"}
	types := []string{"Attendee", "Speaker", "Organizer", "Exhibitor", "Sponsor"}
	first := []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"}
	p := map[string]any{
		"firstName": first[i%len(first)],
		"lastName":  "Person" + strconv.Itoa(i),
		"email":     "person" + strconv.Itoa(i) + "@example.com",
		"status":    statuses[i%len(statuses)],
		"type":      types[i%len(types)],
		"company":   "Company " + strconv.Itoa(i%97),
		"sourceId":  "src-" + strconv.Itoa(i%10),
		"remoteId":  "r" + strconv.Itoa(i),
	}
	if eventID != "" {
		p["relationships"] = map[string]any{"linkedEventIds": []any{eventID}}
	}
	return p
}

func event(i int) map[string]any {
	return map[string]any{
		"name":      "Conference " + strconv.Itoa(i),
		"startDate": "2027-05-01T09:00:00Z",
		"endDate":   "2027-05-03T18:00:00Z",
		"status":    "Upcoming",
	}
}

// seed creates tenant id with n people (linked round-robin to events) and
// returns the people's ids and the events' ids.
func seed(ctx context.Context, s *tenantstore.Store, id string, n, events int) ([]string, []string, error) {
	if _, err := s.CreateTenant(ctx, id, id); err != nil {
		return nil, nil, err
	}
	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	defer l.Release()
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	evColl, _ := runmerge.CollectionByName(runmerge.CollectionEvents)
	var eventIDs []string
	if events > 0 {
		bodies := make([]map[string]any, events)
		for i := range bodies {
			bodies[i] = event(i)
		}
		recs, err := l.DB().BulkUpsert(ctx, admin, evColl, bodies, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range recs {
			eventIDs = append(eventIDs, r.ID)
		}
	}
	var ids []string
	for start := 0; start < n; start += tenantstore.MaxBulk {
		bodies := make([]map[string]any, 0, tenantstore.MaxBulk)
		for i := start; i < n && i < start+tenantstore.MaxBulk; i++ {
			ev := ""
			if len(eventIDs) > 0 {
				ev = eventIDs[i%len(eventIDs)]
			}
			bodies = append(bodies, person(i, ev))
		}
		recs, err := l.DB().BulkUpsert(ctx, admin, people, bodies, nil, nil)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
		}
	}
	return ids, eventIDs, nil
}

// target builds a request for the child.
func (c *child) target(t *vegeta.Target, method, path string, body []byte) {
	t.Method = method
	t.URL = c.addr + path
	t.Body = body
	t.Header = http.Header{"X-Api-Key": {c.key}}
	if body != nil {
		t.Header.Set("Content-Type", "application/json")
	}
}

func ceilingWorkload(ctx context.Context, r *run) error {
	fmt.Fprintln(os.Stderr, "ceiling: a trivial Echo handler")
	c, err := startChild("", 1, true)
	if err != nil {
		return err
	}
	defer c.stop()
	tr := func(t *vegeta.Target) error {
		c.target(t, http.MethodGet, "/ceiling", nil)
		return nil
	}
	r.add(r.attack(ctx, c, "ceiling", "GET /ceiling", r.opts.rate, r.opts.duration, tr))
	return nil
}

// rawWorkload runs the crud operations through the storage layer, with as
// many goroutines as the closed-loop clients of the HTTP workloads.
func rawWorkload(ctx context.Context, r *run) error {
	fmt.Fprintln(os.Stderr, "raw: storage layer, no HTTP")
	dir, cleanup, err := r.dataDir("raw")
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := openStore(ctx, dir, 10)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	ids, _, err := seed(ctx, s, "raw", 1000, 0)
	if err != nil {
		return err
	}
	l, err := s.Pool.Acquire(ctx, "raw")
	if err != nil {
		return err
	}
	defer l.Release()
	db := l.DB()
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	var seq atomic.Int64
	seq.Store(1_000_000)

	ops := []struct {
		name string
		fn   func(rng *rand.Rand) error
	}{
		{"get one", func(rng *rand.Rand) error {
			_, err := db.GetRecord(ctx, admin, people, ids[rng.IntN(len(ids))], false)
			return err
		}},
		{"create one", func(rng *rand.Rand) error {
			_, err := db.CreateRecord(ctx, admin, people, person(int(seq.Add(1)), ""), nil, nil)
			return err
		}},
		{"patch one", func(rng *rand.Rand) error {
			_, err := db.UpdateRecord(ctx, admin, people, ids[rng.IntN(len(ids))],
				map[string]any{"jobTitle": "Title " + strconv.Itoa(rng.IntN(1000))}, nil)
			return err
		}},
		{"page of 50", func(rng *rand.Rand) error {
			_, _, err := db.ListRecords(ctx, admin, tenantstore.RecordFilter{Collection: people, Limit: 50})
			return err
		}},
	}
	for _, op := range ops {
		res := measure(ctx, "raw", op.name, r.opts.workers, r.opts.duration, op.fn)
		r.add(res)
	}

	// Rows per second in 1,000-row transactions, one writer.
	bulk := func(rng *rand.Rand) error {
		bodies := make([]map[string]any, tenantstore.MaxBulk)
		for i := range bodies {
			bodies[i] = person(int(seq.Add(1)), "")
		}
		_, err := db.BulkUpsert(ctx, admin, people, bodies, nil, nil)
		return err
	}
	res := measure(ctx, "raw", "bulk 1000", 1, r.opts.duration, bulk)
	res.Notes = map[string]float64{"rowsPerSecond": res.PerSecond * tenantstore.MaxBulk}
	r.add(res)
	return nil
}

// measure runs fn from n goroutines for d and times every call.
func measure(ctx context.Context, workload, op string, n int, d time.Duration, fn func(*rand.Rand) error) *Result {
	res := &Result{Workload: workload, Op: op, Mode: fmt.Sprintf("closed, %d goroutines", n), Errors: map[string]int{}}
	deadline := time.Now().Add(d)
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for g := 0; g < n; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var local []time.Duration
			errs := 0
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := fn(rng); err != nil {
					errs++
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			if errs > 0 {
				res.Errors["error"] += errs
			}
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	elapsed := time.Since(start)
	res.Requests = uint64(len(all))
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(len(all)) / elapsed.Seconds()
	res.percentiles(all)
	return res
}

func crudWorkload(ctx context.Context, r *run) error {
	fmt.Fprintln(os.Stderr, "crud: one warm tenant")
	dir, cleanup, err := r.dataDir("crud")
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := openStore(ctx, dir, 10)
	if err != nil {
		return err
	}
	ids, _, err := seed(ctx, s, "crud", 1000, 0)
	if err != nil {
		return err
	}
	if err := s.Close(ctx); err != nil {
		return err
	}
	c, err := startChild(dir, 1000, false)
	if err != nil {
		return err
	}
	defer c.stop()

	var n atomic.Int64
	n.Store(10_000_000)
	rng := rand.New(rand.NewPCG(1, 2))
	var mu sync.Mutex
	pick := func() string {
		mu.Lock()
		defer mu.Unlock()
		return ids[rng.IntN(len(ids))]
	}
	phases := []struct {
		op string
		tr vegeta.Targeter
	}{
		{"GET one by id", func(t *vegeta.Target) error {
			c.target(t, http.MethodGet, "/v1/people/"+pick()+"?tenantId=crud", nil)
			return nil
		}},
		{"POST create", func(t *vegeta.Target) error {
			b, _ := json.Marshal(person(int(n.Add(1)), ""))
			c.target(t, http.MethodPost, "/v1/people?tenantId=crud", b)
			return nil
		}},
		{"PATCH one", func(t *vegeta.Target) error {
			b := []byte(`{"jobTitle":"Title ` + strconv.Itoa(int(n.Add(1))) + `"}`)
			c.target(t, http.MethodPatch, "/v1/people/"+pick()+"?tenantId=crud", b)
			return nil
		}},
		{"GET page of 50", func(t *vegeta.Target) error {
			c.target(t, http.MethodGet, "/v1/people?tenantId=crud&limit=50", nil)
			return nil
		}},
	}
	for _, p := range phases {
		r.add(r.attack(ctx, c, "crud", p.op, r.opts.rate, r.opts.duration, p.tr))
	}
	for _, rate := range r.opts.rates {
		res := r.attack(ctx, c, "crud", "GET one by id", rate, r.opts.duration, phases[0].tr)
		r.Sweep = append(r.Sweep, res)
		fmt.Fprintf(os.Stderr, "  sweep %6d/s: p50 %.3f ms p99 %.3f ms\n", rate, res.P50, res.P99)
	}
	return nil
}

func listWorkload(ctx context.Context, r *run) error {
	fmt.Fprintf(os.Stderr, "list: %d records, filtered pages at every depth\n", r.opts.records)
	dir, cleanup, err := r.dataDir("list")
	if err != nil {
		return err
	}
	defer cleanup()
	s, err := openStore(ctx, dir, 10)
	if err != nil {
		return err
	}
	_, events, err := seed(ctx, s, "list", r.opts.records, 20)
	if err != nil {
		return err
	}
	mid := runmerge.FormatTime(time.Now().Add(-time.Second))
	if err := s.Close(ctx); err != nil {
		return err
	}
	c, err := startChild(dir, 1000, false)
	if err != nil {
		return err
	}
	defer c.stop()

	filters := []struct{ name, query string }{
		{"none", ""},
		{"status", "&status=Active"},
		{"type", "&type=Speaker"},
		{"sourceId", "&sourceId=src-3"},
		{"remoteId", "&remoteId=r777"},
		{"updatedAfter", "&updatedAfter=" + url.QueryEscape(mid)},
		{"linkedEventId", "&linkedEventId=" + events[3]},
		{"q", "&q=grace"},
		{"includeDeleted", "&includeDeleted=true"},
	}
	for _, f := range filters {
		base := "/v1/people?tenantId=list&limit=50" + f.query
		cursors, err := c.walk(base)
		if err != nil {
			return fmt.Errorf("walk %s: %w", f.name, err)
		}
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(3, 4))
		tr := func(t *vegeta.Target) error {
			mu.Lock()
			cur := cursors[rng.IntN(len(cursors))]
			mu.Unlock()
			path := base
			if cur != "" {
				path += "&cursor=" + cur
			}
			c.target(t, http.MethodGet, path, nil)
			return nil
		}
		res := r.attack(ctx, c, "list", "GET page of 50, "+f.name, r.opts.rate, r.opts.duration, tr)
		res.Notes = map[string]float64{"pages": float64(len(cursors))}
		r.add(res)
	}
	return nil
}

// walk pages through a list and returns the cursor of every page ("" for
// the first).
func (c *child) walk(path string) ([]string, error) {
	cursors := []string{""}
	cur := ""
	for {
		p := path
		if cur != "" {
			p += "&cursor=" + cur
		}
		req, _ := http.NewRequest(http.MethodGet, c.addr+p, nil)
		req.Header.Set("X-Api-Key", c.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			NextCursor *string `json:"nextCursor"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d: %v", resp.StatusCode, err)
		}
		if page.NextCursor == nil {
			return cursors, nil
		}
		cur = *page.NextCursor
		cursors = append(cursors, cur)
	}
}

// tenantSet is the prepared data of the tenants workload.
type tenantSet struct {
	dir    string
	ids    []string   // tenant ids
	people [][]string // person ids per tenant
}

func (r *run) prepareTenants(ctx context.Context) (*tenantSet, func(), error) {
	dir, cleanup, err := r.dataDir("tenants")
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(os.Stderr, "  preparing %d tenants in %s\n", r.opts.tenants, dir)
	s, err := openStore(ctx, dir, 100)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	ts := &tenantSet{dir: dir}
	start := time.Now()
	for i := 0; i < r.opts.tenants; i++ {
		id := fmt.Sprintf("t%05d", i)
		people, _, err := seed(ctx, s, id, 5, 0)
		if err != nil {
			s.Close(ctx)
			cleanup()
			return nil, nil, err
		}
		ts.ids = append(ts.ids, id)
		ts.people = append(ts.people, people)
	}
	fmt.Fprintf(os.Stderr, "  prepared in %s\n", time.Since(start).Round(time.Second))
	if err := s.Close(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	return ts, cleanup, nil
}

// probe times a bare open-and-query of n tenant files, as the baseline of
// a request that has to open its tenant.
func (ts *tenantSet) probe(ctx context.Context, n int) *Result {
	res := &Result{Workload: "tenants", Op: "bare open-and-query", Mode: "sequential", Errors: map[string]int{}}
	rng := rand.New(rand.NewPCG(5, 6))
	var samples []time.Duration
	start := time.Now()
	for i := 0; i < n; i++ {
		path := filepath.Join(ts.dir, "tenants", ts.ids[rng.IntN(len(ts.ids))]+".db")
		t0 := time.Now()
		closeFn, err := tenantstore.ProbeFile(ctx, path, tenantstore.Options{})
		samples = append(samples, time.Since(t0))
		if err != nil {
			res.Errors["error"]++
			continue
		}
		closeFn()
	}
	res.Requests = uint64(n)
	res.Seconds = time.Since(start).Seconds()
	res.PerSecond = float64(n) / res.Seconds
	res.percentiles(samples)
	return res
}

// probeInServer times n bare opens-and-queries of tenant files inside the
// server's process (see probeHandler), one at a time, walking the tenants
// from first. It returns two results: the round trip over HTTP, to set
// beside a request that opens its tenant, and the open alone as timed in
// the server.
func (ts *tenantSet) probeInServer(c *child, first, n int) (overHTTP, inServer *Result) {
	overHTTP = &Result{Workload: "tenants", Op: "bare open-and-query in the server, over HTTP", Mode: "sequential",
		Errors: map[string]int{}}
	inServer = &Result{Workload: "tenants", Op: "bare open-and-query in the server", Mode: "sequential",
		Errors: map[string]int{}}
	client := &http.Client{Timeout: 10 * time.Second}
	var trips, opens []time.Duration
	start := time.Now()
	for i := range n {
		id := ts.ids[(first+i)%len(ts.ids)]
		t0 := time.Now()
		resp, err := client.Get(c.stats + "/probe?tenant=" + id)
		if err != nil {
			overHTTP.Errors["error"]++
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		trip := time.Since(t0)
		ns, perr := strconv.ParseInt(string(body), 10, 64)
		if err != nil || resp.StatusCode != http.StatusOK || perr != nil {
			overHTTP.Errors[strconv.Itoa(resp.StatusCode)]++
			continue
		}
		trips = append(trips, trip)
		opens = append(opens, time.Duration(ns))
	}
	for _, res := range []*Result{overHTTP, inServer} {
		res.Requests = uint64(n)
		res.Seconds = time.Since(start).Seconds()
		res.PerSecond = float64(n) / res.Seconds
	}
	overHTTP.percentiles(trips)
	inServer.percentiles(opens)
	return overHTTP, inServer
}

// mixedTargeter requests tenants chosen by next: 90 % GET one person, 10 %
// create a person. It records the trace of tenants for the LRU replay.
func (c *child) mixedTargeter(ts *tenantSet, next func(*rand.Rand) int, trace *[]int) vegeta.Targeter {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(7, 8))
	n := &createCounter
	return func(t *vegeta.Target) error {
		mu.Lock()
		i := next(rng)
		write := rng.IntN(10) == 0
		pid := ts.people[i][rng.IntN(len(ts.people[i]))]
		if trace != nil {
			*trace = append(*trace, i)
		}
		mu.Unlock()
		if write {
			b, _ := json.Marshal(person(int(n.Add(1)), ""))
			c.target(t, http.MethodPost, "/v1/people?tenantId="+ts.ids[i], b)
		} else {
			c.target(t, http.MethodGet, "/v1/people/"+pid+"?tenantId="+ts.ids[i], nil)
		}
		return nil
	}
}

// createCounter numbers the people created by the tenants workloads, so
// that no two phases create the same sourceId and remoteId pair.
var createCounter atomic.Int64

func init() { createCounter.Store(50_000_000) }

// idealLRU replays trace through a perfect LRU of size n and returns its
// hit ratio.
func idealLRU(trace []int, n int) float64 {
	cache, _ := simplelru.NewLRU[int, struct{}](n, nil)
	hits := 0
	for _, t := range trace {
		if _, ok := cache.Get(t); ok {
			hits++
		} else {
			cache.Add(t, struct{}{})
		}
	}
	if len(trace) == 0 {
		return 0
	}
	return float64(hits) / float64(len(trace))
}

func tenantsWorkload(ctx context.Context, r *run) error {
	fmt.Fprintf(os.Stderr, "tenants: %d tenants, pool.max_open %v\n", r.opts.tenants, r.opts.maxOpen)
	ts, cleanup, err := r.prepareTenants(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	for _, maxOpen := range r.opts.maxOpen {
		if err := r.tenantsPhase(ctx, ts, maxOpen); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) tenantsPhase(ctx context.Context, ts *tenantSet, maxOpen int) error {
	probe := ts.probe(ctx, 2000)
	probe.Op = fmt.Sprintf("bare open-and-query (max_open %d run)", maxOpen)
	r.add(probe)

	c, err := startChild(ts.dir, maxOpen, false)
	if err != nil {
		return err
	}
	defer c.stop()
	label := func(s string) string { return fmt.Sprintf("%s, max_open %d", s, maxOpen) }

	// Hits: a working set of half the pool, warmed first.
	working := min(maxOpen/2, len(ts.ids))
	warm := r.attack(ctx, c, "tenants", "warm", 0, 0, func() vegeta.Targeter {
		i := 0
		var mu sync.Mutex
		return func(t *vegeta.Target) error {
			mu.Lock()
			defer mu.Unlock()
			if i >= working {
				return vegeta.ErrNoTargets
			}
			c.target(t, http.MethodGet, "/v1/people/"+ts.people[i][0]+"?tenantId="+ts.ids[i], nil)
			i++
			return nil
		}
	}())
	_ = warm
	// The yardstick of a hit, in the same run: the same GET on one warm
	// tenant, as crud's GET one by id, in the same server.
	oneTr := c.mixedTargeterGets(ts, func(*rand.Rand) int { return 0 })
	one := r.attack(ctx, c, "tenants", label("GET, one warm tenant"), r.opts.rate, r.opts.duration, oneTr)
	r.add(one)
	hitTr := c.mixedTargeterGets(ts, func(rng *rand.Rand) int { return rng.IntN(working) })
	hit := r.attack(ctx, c, "tenants", label("GET, tenant open"), r.opts.rate, r.opts.duration, hitTr)
	if one.P50 > 0 {
		hit.Notes = map[string]float64{"p50OverOneWarmTenant": round(hit.P50 / one.P50)}
	}
	r.add(hit)

	// Misses: one client walks every tenant in turn, so with more tenants
	// than the pool holds, each request finds its tenant closed.
	saved := r.opts.workers
	r.opts.workers = 1
	next := working
	missTr := c.mixedTargeterGets(ts, func(*rand.Rand) int {
		next = (next + 1) % len(ts.ids)
		return next
	})
	miss := r.attack(ctx, c, "tenants", label("GET, tenant closed"), 0, r.opts.duration, missTr)
	r.opts.workers = saved
	// The same bare open, in the server with its pool full, on tenants the
	// walk has not reached, so closed.
	overHTTP, inServer := ts.probeInServer(c, next+1, 2000)
	overHTTP.Op, inServer.Op = label(overHTTP.Op), label(inServer.Op)
	miss.Notes = map[string]float64{"p99OverP50": round(miss.P99 / miss.P50)}
	if probe.P50 > 0 {
		miss.Notes["p50OverBareOpen"] = round(miss.P50 / probe.P50)
	}
	if inServer.P50 > 0 {
		miss.Notes["p50OverBareOpenInServer"] = round(miss.P50 / inServer.P50)
	}
	if overHTTP.P50 > 0 {
		miss.Notes["p50OverBareOpenInServerOverHTTP"] = round(miss.P50 / overHTTP.P50)
	}
	r.add(miss)
	r.add(inServer)
	r.add(overHTTP)

	for _, dist := range []string{"uniform", "zipf"} {
		var trace []int
		var next func(*rand.Rand) int
		if dist == "uniform" {
			next = func(rng *rand.Rand) int { return rng.IntN(len(ts.ids)) }
		} else {
			var z *rand.Zipf
			next = func(rng *rand.Rand) int {
				if z == nil {
					z = rand.NewZipf(rng, 1.1, 1, uint64(len(ts.ids)-1))
				}
				return int(z.Uint64())
			}
		}
		res := r.attack(ctx, c, "tenants", label(dist+" 90/10"), r.opts.rate, r.opts.duration,
			c.mixedTargeter(ts, next, &trace))
		res.Notes = map[string]float64{"idealLRUHitRatio": round(idealLRU(trace, maxOpen))}
		r.add(res)
	}
	return nil
}

// mixedTargeterGets requests one person of the tenant chosen by next.
func (c *child) mixedTargeterGets(ts *tenantSet, next func(*rand.Rand) int) vegeta.Targeter {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(9, 10))
	return func(t *vegeta.Target) error {
		mu.Lock()
		i := next(rng)
		pid := ts.people[i][rng.IntN(len(ts.people[i]))]
		mu.Unlock()
		c.target(t, http.MethodGet, "/v1/people/"+pid+"?tenantId="+ts.ids[i], nil)
		return nil
	}
}

// soakClients bounds the connections and concurrent requests of soak.
const soakClients = 256

func soakWorkload(ctx context.Context, r *run) error {
	fmt.Fprintf(os.Stderr, "soak: %d tenants, Zipf 90/10, max_open 1000, for %s\n", r.opts.tenants, r.opts.duration)
	ts, cleanup, err := r.prepareTenants(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	c, err := startChild(ts.dir, 1000, false)
	if err != nil {
		return err
	}
	defer c.stop()

	var z *rand.Zipf
	next := func(rng *rand.Rand) int {
		if z == nil {
			z = rand.NewZipf(rng, 1.1, 1, uint64(len(ts.ids)-1))
		}
		return int(z.Uint64())
	}
	rate := r.opts.rate
	if rate == 0 {
		rate = 2000 // a steady load leaves room to see growth rather than saturation
	}
	// Clients are bounded as a real fleet of clients is: unbounded, vegeta
	// answers any hiccup of the machine with new connections and keeps them
	// open for the rest of the run, and the server's memory and descriptors
	// then measure the load generator, not the server.
	atk := vegeta.NewAttacker(vegeta.KeepAlive(true), vegeta.MaxBody(0), vegeta.Timeout(30*time.Second),
		vegeta.Connections(soakClients), vegeta.MaxConnections(soakClients), vegeta.MaxWorkers(soakClients))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	var errs atomic.Int64
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		for hit := range atk.Attack(c.mixedTargeter(ts, next, nil), vegeta.Rate{Freq: rate, Per: time.Second}, r.opts.duration, "soak") {
			if hit.Code < 200 || hit.Code > 299 {
				errs.Add(1)
			}
		}
	}()
	t := time.NewTicker(r.opts.sampleEvery)
	defer t.Stop()
	sample := func() {
		mib, fds := c.rss()
		st, _ := c.poolStats()
		s := Sample{At: time.Since(start).Seconds(), RSSMiB: mib, FDs: fds, WALBytes: walBytes(ts.dir),
			SQLiteMiB: float64(st.SQLiteBytes) / (1 << 20), GoHeapMiB: float64(st.GoHeapBytes) / (1 << 20),
			Open: st.Open, Errors: int(errs.Load())}
		r.Soak = append(r.Soak, s)
		fmt.Fprintf(os.Stderr, "  %5.0fs RSS %.1f MiB (SQLite %.1f, Go heap %.1f), %d fds, WAL %d bytes, %d open, %d errors\n",
			s.At, s.RSSMiB, s.SQLiteMiB, s.GoHeapMiB, s.FDs, s.WALBytes, s.Open, s.Errors)
	}
	for {
		select {
		case <-done:
			sample()
			return nil
		case <-t.C:
			sample()
		}
	}
}
