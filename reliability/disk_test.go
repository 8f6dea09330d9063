package reliability

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/runmerge/runmerge/internal/testserver"
)

// TestFullDisk runs the real binary under a soft file-size limit (ulimit -S
// -f, RLIMIT_FSIZE: a write past it fails with EFBIG, which SQLite reports
// as SQLITE_IOERR_WRITE) and fills one tenant's file past it. That tenant's
// writes must fail with a problem+json 507 insufficient_storage, another
// tenant must keep reading and writing, and the full tenant must keep
// answering reads. Then the test raises the running server's limit, as when
// space is freed: writes to the full tenant must succeed again without a
// restart, and after a SIGKILL every file must pass integrity_check.
// TestReadOnlyTenantFile covers a file that cannot be written at all.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	key := testserver.RootKey()
	const limitKiB = 4096
	p := startBinary(t, dir, key, procOptions{FileSizeKiB: limitKiB})
	p.CreateTenant(t, "big")
	p.CreateTenant(t, "small")
	p.Post(t, "/v1/people?tenantId=small", person("before")).WantStatus(t, http.StatusCreated)

	var failed *testserver.Response
	written, batch := 0, 0
	for ; batch < 400 && failed == nil; batch++ {
		r := p.Post(t, "/v1/people/bulk?tenantId=big", fillBatch(batch))
		switch {
		case r.Status == http.StatusOK:
			written += 50
		case r.Status >= 500:
			failed = r
		default:
			t.Fatalf("bulk write %d: status %d: %s", batch, r.Status, r.Body)
		}
	}
	if failed == nil {
		t.Fatalf("%d records (%d KiB) written without reaching the %d KiB limit", written, written*8, limitKiB)
	}
	failed.Problem(t, http.StatusInsufficientStorage, "insufficient_storage")
	t.Logf("tenant big full after %d records: %d %s", written, failed.Status, failed.Body)

	// The other tenant is unaffected; the full one still reads.
	p.Post(t, "/v1/people?tenantId=small", person("after")).WantStatus(t, http.StatusCreated)
	p.Get(t, "/v1/people?tenantId=small").WantStatus(t, http.StatusOK)
	r := p.Get(t, "/v1/people?tenantId=big&limit=1")
	r.WantStatus(t, http.StatusOK)
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	json.Unmarshal(r.Body, &page)
	if len(page.Data) != 1 {
		t.Errorf("full tenant lists %d records, want 1", len(page.Data))
	}

	// A small write to the full tenant fails with a 507 too, or succeeds if
	// SQLite found room in free pages or the WAL.
	tiny := 0
	r = p.Post(t, "/v1/people?tenantId=big", person("tiny"))
	if r.Status == http.StatusCreated {
		tiny = 1
	} else {
		r.Problem(t, http.StatusInsufficientStorage, "insufficient_storage")
	}

	// Space returns: the same server writes to the same tenant again, the
	// batch that failed included, and it holds every acknowledged record
	// and nothing of the batch that failed before.
	raiseFileSizeLimit(t, p.cmd.Process.Pid)
	p.Post(t, "/v1/people/bulk?tenantId=big", fillBatch(batch-1)).WantStatus(t, http.StatusOK)
	p.Post(t, "/v1/people/bulk?tenantId=big", fillBatch(batch)).WantStatus(t, http.StatusOK)
	p.Post(t, "/v1/people?tenantId=big", person("space-again")).WantStatus(t, http.StatusCreated)
	p.Post(t, "/v1/people?tenantId=small", person("space-again")).WantStatus(t, http.StatusCreated)
	if got, want := len(listPeople(t, p, "big")), written+tiny+2*50+1; got != want {
		t.Errorf("tenant big holds %d people once space returned, want %d", got, want)
	}
	if p.logShowsPanic() {
		t.Errorf("the server logged a panic:\n%s", p.Log)
	}
	p.kill(t)
	for _, tn := range []string{"big", "small"} {
		integrityCheck(t, filepath.Join(dir, "tenants", tn+".db"))
	}
	t.Logf("a single create while full: %d; once space returned, 101 more records written to big "+
		"without a restart; files sound", r.Status)
}

// fillBatch is a bulk upsert of 50 people of about 8 KiB each, the same
// records for the same batch number.
func fillBatch(batch int) string {
	pad := strings.Repeat("x", 8000)
	var recs []string
	for j := range 50 {
		recs = append(recs, fmt.Sprintf(`{"firstName":"F","lastName":"L","email":"a@example.com",`+
			`"sourceRawData":{"pad":%q},"sourceId":"fill","remoteId":"%d-%d"}`, pad, batch, j))
	}
	return `{"records":[` + strings.Join(recs, ",") + `]}`
}

func person(remoteID string) string {
	return fmt.Sprintf(`{"firstName":"F","lastName":"L","email":"a@example.com","sourceId":"s","remoteId":%q}`, remoteID)
}
