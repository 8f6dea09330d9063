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

// TestFullDisk runs the real binary under a file-size limit (ulimit -f,
// RLIMIT_FSIZE: a write past it fails with EFBIG, which SQLite reports as
// it would a full disk) and fills one tenant's file past it. That tenant's
// writes must fail with a clean problem+json 5xx or 507, another tenant must
// keep reading and writing, the full tenant must keep answering reads, and
// every file must pass integrity_check. Running as root, chmod cannot make
// a file unwritable, so the limit stands in for both read-only and full.
func TestFullDisk(t *testing.T) {
	dir := t.TempDir()
	key := testserver.RootKey()
	const limitKiB = 4096
	p := startBinary(t, dir, key, procOptions{FileSizeKiB: limitKiB})
	p.CreateTenant(t, "big")
	p.CreateTenant(t, "small")
	p.Post(t, "/v1/people?tenantId=small", person("before")).WantStatus(t, http.StatusCreated)

	pad := strings.Repeat("x", 8000)
	var failed *testserver.Response
	written := 0
	for i := 0; i < 400 && failed == nil; i++ {
		var recs []string
		for j := range 50 {
			recs = append(recs, fmt.Sprintf(`{"firstName":"F","lastName":"L","email":"a@example.com",`+
				`"sourceRawData":{"pad":%q},"sourceId":"fill","remoteId":"%d-%d"}`, pad, i, j))
		}
		r := p.Post(t, "/v1/people/bulk?tenantId=big", `{"records":[`+strings.Join(recs, ",")+`]}`)
		switch {
		case r.Status == http.StatusOK:
			written += 50
		case r.Status >= 500:
			failed = r
		default:
			t.Fatalf("bulk write %d: status %d: %s", i, r.Status, r.Body)
		}
	}
	if failed == nil {
		t.Fatalf("%d records (%d KiB) written without reaching the %d KiB limit", written, written*8, limitKiB)
	}
	if failed.Status != http.StatusInsufficientStorage && failed.Status != http.StatusInternalServerError &&
		failed.Status != http.StatusServiceUnavailable {
		t.Errorf("full tenant: status %d, want 500, 503 or 507", failed.Status)
	}
	failed.Problem(t, failed.Status, problemCode(failed))
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

	// A small write to the full tenant fails cleanly too, or succeeds if
	// SQLite found room in free pages; it must never be a bare 500 body.
	r = p.Post(t, "/v1/people?tenantId=big", person("tiny"))
	if r.Status >= 400 {
		r.Problem(t, r.Status, problemCode(r))
	}
	if p.logShowsPanic() {
		t.Errorf("the server logged a panic:\n%s", p.Log)
	}
	p.kill(t)
	for _, tn := range []string{"big", "small"} {
		integrityCheck(t, filepath.Join(dir, "tenants", tn+".db"))
	}
}

func person(remoteID string) string {
	return fmt.Sprintf(`{"firstName":"F","lastName":"L","email":"a@example.com","sourceId":"s","remoteId":%q}`, remoteID)
}
