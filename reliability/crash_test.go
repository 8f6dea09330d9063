package reliability

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"

	_ "modernc.org/sqlite"
)

var crashRounds = flag.Int("crash.rounds", 2, "times TestCrash kills the server with SIGKILL")

// crashTenants are the tenants TestCrash writes to.
var crashTenants = []string{"alpha", "bravo", "charlie"}

// bulkSize is the number of records in each bulk upsert of TestCrash.
const bulkSize = 20

// acks records which writes the server acknowledged, and which bulk
// batches were sent at all.
type acks struct {
	mu      sync.Mutex
	created map[string][]string // tenant → remoteIds of acknowledged creates
	batches map[string][]string // tenant → batch names sent
	bulkOK  map[string]bool     // tenant/batch acknowledged
}

// TestCrash runs concurrent writers (creates and bulk upserts) across
// several tenants against the real server binary, kills it with SIGKILL at
// a random moment, and restarts it, -crash.rounds times over the same data
// directory. Every tenant has a webhook to a receiver that checks each
// delivery's signature. After each kill every tenant file must pass
// integrity_check; after each restart every acknowledged write must be
// there, every bulk batch must be there in full or not at all, the change
// event of every acknowledged write must reach the receiver, those pending
// at the kill included, and no change event may name a record that is not
// stored.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	key := testserver.RootKey()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	a := &acks{created: map[string][]string{}, batches: map[string][]string{},
		bulkOK: map[string]bool{}}

	p := startBinary(t, dir, key, procOptions{})
	rc := newReceiver()
	for _, tn := range crashTenants {
		p.CreateTenant(t, tn)
		rc.subscribe(t, p, tn)
	}
	totalAcked, totalPending, events := 0, 0, 0
	for round := range *crashRounds {
		wait := runWriters(t, p, a, round)
		time.Sleep(time.Duration(200+rng.IntN(1300)) * time.Millisecond)
		p.kill(t) // with writes in flight
		acked := wait()
		totalAcked += acked
		want := a.keys()
		pending := len(rc.missing(want))
		totalPending += pending
		for _, tn := range crashTenants {
			integrityCheck(t, filepath.Join(dir, "tenants", tn+".db"))
		}
		p = startBinary(t, dir, key, procOptions{})
		restarted := time.Now()
		if m := rc.waitFor(want, 60*time.Second); len(m) > 0 {
			t.Errorf("round %d: %d of %d acknowledged changes never delivered, such as %q",
				round, len(m), len(want), m[0])
		}
		delivered := time.Since(restarted)
		newEvents := len(want) - events
		events = len(want)
		heard := rc.heard() // before the listing: each of these must be stored
		present := verifyAcked(t, p, a)
		for k := range heard {
			if !present[k] {
				t.Errorf("round %d: a change event names %s, which is not stored", round, k)
			}
		}
		rc.check(t)
		if p.logShowsPanic() {
			t.Fatalf("round %d: the server logged a panic:\n%s", round, p.Log)
		}
		t.Logf("round %d: %d writes acknowledged before SIGKILL, all present; "+
			"%d of their %d change events pending at the kill, all delivered %v after the restart",
			round, acked, pending, newEvents, delivered.Round(time.Millisecond))
		if t.Failed() {
			return
		}
	}
	s := rc.stats()
	t.Logf("%d rounds, %d acknowledged writes, none lost; webhooks: %d deliveries of %d change events "+
		"(%d pending at a kill), %d duplicates, every signature valid",
		*crashRounds, totalAcked, s.Deliveries, s.Changes, totalPending, s.Duplicates)
}

// keys returns the record keys of every acknowledged write.
func (a *acks) keys() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for tn, names := range a.created {
		for _, name := range names {
			out = append(out, recordKey(tn, "crash", name))
		}
	}
	for tb := range a.bulkOK {
		tn, batch, _ := strings.Cut(tb, "/")
		for i := range bulkSize {
			out = append(out, recordKey(tn, "bulk", fmt.Sprintf("%s-%d", batch, i)))
		}
	}
	return out
}

// runWriters starts writers on every tenant that write until the server
// stops answering. The function it returns waits for them and returns how
// many writes were acknowledged.
func runWriters(t *testing.T, p *process, a *acks, round int) func() int {
	t.Helper()
	var n sync.WaitGroup
	var mu sync.Mutex
	count := 0
	for _, tn := range crashTenants {
		for w := range 4 {
			n.Go(func() {
				client := &http.Client{Timeout: 5 * time.Second}
				for i := 0; ; i++ {
					name := fmt.Sprintf("r%d-w%d-%d", round, w, i)
					var ok bool
					if w == 0 {
						ok = bulkWrite(client, p, a, tn, name)
					} else {
						ok = createWrite(client, p, a, tn, name)
					}
					if !ok && p.dead.Load() {
						return // killed
					}
					if ok {
						mu.Lock()
						count++
						mu.Unlock()
					}
				}
			})
		}
	}
	return func() int {
		n.Wait()
		return count
	}
}

func post(client *http.Client, p *process, path, body string) int {
	req, _ := http.NewRequest(http.MethodPost, p.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", p.Key)
	resp, err := client.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func createWrite(client *http.Client, p *process, a *acks, tenant, name string) bool {
	body := fmt.Sprintf(`{"firstName":"A","lastName":"B","email":"a@example.com",`+
		`"sourceId":"crash","remoteId":%q}`, name)
	status := post(client, p, "/v1/people?tenantId="+tenant, body)
	if status/100 != 2 {
		return false
	}
	a.mu.Lock()
	a.created[tenant] = append(a.created[tenant], name)
	a.mu.Unlock()
	return true
}

func bulkWrite(client *http.Client, p *process, a *acks, tenant, batch string) bool {
	a.mu.Lock()
	a.batches[tenant] = append(a.batches[tenant], batch)
	a.mu.Unlock()
	var recs []string
	for i := range bulkSize {
		recs = append(recs, fmt.Sprintf(`{"firstName":"A","lastName":"B",`+
			`"email":"a@example.com","sourceId":"bulk","remoteId":"%s-%d"}`, batch, i))
	}
	status := post(client, p, "/v1/people/bulk?tenantId="+tenant,
		`{"records":[`+strings.Join(recs, ",")+`]}`)
	if status/100 != 2 {
		return false
	}
	a.mu.Lock()
	a.bulkOK[tenant+"/"+batch] = true
	a.mu.Unlock()
	return true
}

// verifyAcked lists every person of every tenant and checks the
// acknowledged creates and the bulk batches against it. It returns the
// record keys of every person listed.
func verifyAcked(t *testing.T, p *process, a *acks) map[string]bool {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	all := map[string]bool{}
	for _, tn := range crashTenants {
		present := map[string]bool{}
		bulk := map[string]int{}
		cursor := ""
		for {
			path := "/v1/people?tenantId=" + tn + "&limit=500"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := p.Get(t, path)
			r.WantStatus(t, http.StatusOK)
			var page struct {
				Data []struct {
					SourceID string `json:"sourceId"`
					RemoteID string `json:"remoteId"`
				} `json:"data"`
				NextCursor *string `json:"nextCursor"`
			}
			if err := json.Unmarshal(r.Body, &page); err != nil {
				t.Fatal(err)
			}
			for _, rec := range page.Data {
				all[recordKey(tn, rec.SourceID, rec.RemoteID)] = true
				if rec.SourceID == "bulk" {
					batch := rec.RemoteID[:strings.LastIndex(rec.RemoteID, "-")]
					bulk[batch]++
				} else {
					present[rec.RemoteID] = true
				}
			}
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		for _, name := range a.created[tn] {
			if !present[name] {
				t.Errorf("tenant %s: acknowledged create %s is missing after the crash", tn, name)
			}
		}
		for _, batch := range a.batches[tn] {
			n := bulk[batch]
			if n != 0 && n != bulkSize {
				t.Errorf("tenant %s: bulk batch %s has %d of %d records", tn, batch, n, bulkSize)
			}
			if a.bulkOK[tn+"/"+batch] && n != bulkSize {
				t.Errorf("tenant %s: acknowledged bulk batch %s has %d of %d records", tn, batch, n, bulkSize)
			}
		}
	}
	return all
}

// integrityCheck opens a tenant file as SQLite would after a crash and
// fails the test unless PRAGMA integrity_check answers ok.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		t.Fatalf("integrity_check %s: %v", filepath.Base(path), err)
	}
	if res != "ok" {
		t.Errorf("integrity_check %s: %s", filepath.Base(path), res)
	}
}
