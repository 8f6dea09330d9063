package reliability

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

// TestReadOnlyTenantFile makes one tenant's file unwritable while the
// server is down and starts it again: that tenant must keep answering reads
// and answer each write with a problem+json 503 unavailable, another tenant
// must keep reading and writing, and
// once the file is writable again the same server must serve the tenant,
// writes included, without a restart, with every file sound afterwards.
//
// The tests run as root, which writes to a file whatever its mode, so the
// file is made immutable instead (chattr +i, ext4 and most Linux file
// systems), which refuses even root. The test skips where chattr is
// missing or the file system does not support it.
func TestReadOnlyTenantFile(t *testing.T) {
	if _, err := exec.LookPath("chattr"); err != nil {
		t.Skip("chattr not installed")
	}
	dir := t.TempDir()
	key := testserver.RootKey()
	p := startBinary(t, dir, key, procOptions{})
	p.CreateTenant(t, "locked")
	p.CreateTenant(t, "other")
	for _, tn := range []string{"locked", "other"} {
		p.Post(t, "/v1/people?tenantId="+tn, person("before")).WantStatus(t, http.StatusCreated)
	}
	// A graceful stop checkpoints and closes every file, so that the next
	// start must open locked.db afresh.
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err, ok := p.wait(t, 30*time.Second); !ok || err != nil {
		t.Fatalf("server did not stop cleanly: %v\n%s", err, p.Log)
	}

	file := filepath.Join(dir, "tenants", "locked.db")
	if out, err := exec.Command("chattr", "+i", file).CombinedOutput(); err != nil {
		t.Skipf("chattr +i %s: %v: %s", file, err, out)
	}
	unlocked := false
	unlock := func() {
		if !unlocked {
			if out, err := exec.Command("chattr", "-i", file).CombinedOutput(); err != nil {
				t.Fatalf("chattr -i %s: %v: %s", file, err, out)
			}
			unlocked = true
		}
	}
	t.Cleanup(unlock) // or the temporary directory cannot be removed

	p = startBinary(t, dir, key, procOptions{})
	// Reads go on: SQLite opens a file it cannot write read-only.
	if n := len(listPeople(t, p, "locked")); n != 1 {
		t.Errorf("tenant locked lists %d people while unwritable, want 1", n)
	}
	p.Get(t, "/v1/tenants/locked").WantStatus(t, http.StatusOK)
	// Writes are refused, each time, with a problem the client can retry on.
	for i := range 3 {
		r := p.Post(t, "/v1/people?tenantId=locked", person(fmt.Sprint("while-locked-", i)))
		pr := r.Problem(t, http.StatusServiceUnavailable, "unavailable")
		if i == 0 {
			t.Logf("a write to the unwritable file: %d %s: %s", r.Status, pr.Code, pr.Detail)
		}
	}
	// The other tenant does not notice.
	p.Post(t, "/v1/people?tenantId=other", person("while-locked")).WantStatus(t, http.StatusCreated)
	if n := len(listPeople(t, p, "other")); n != 2 {
		t.Errorf("tenant other holds %d people, want 2", n)
	}

	// Writable again: the same server serves the tenant, writes included.
	unlock()
	p.Post(t, "/v1/people?tenantId=locked", person("after")).WantStatus(t, http.StatusCreated)
	if n := len(listPeople(t, p, "locked")); n != 2 {
		t.Errorf("tenant locked holds %d people once writable again, want 2 (nothing of the refused write)", n)
	}
	if p.logShowsPanic() {
		t.Errorf("the server logged a panic:\n%s", p.Log)
	}
	p.kill(t)
	for _, tn := range []string{"locked", "other"} {
		integrityCheck(t, filepath.Join(dir, "tenants", tn+".db"))
	}
}
