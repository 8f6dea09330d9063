package tenantstore

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
)

func TestCheckAll(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir())
	ids := copyTenants(t, s, 5)

	// ids[1] loses its file, ids[2] has a page overwritten, ids[3] is
	// another application's database; a stray file sits beside them.
	os.Remove(s.Pool.Path(ids[1]))
	f, err := os.OpenFile(s.Pool.Path(ids[2]), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte(strings.Repeat("\xa5", 4096)), 3*4096)
	f.Close()
	other, _ := connect(s.Pool.Path(ids[3]), s.Pool.cfg.Options, modeWrite)
	if _, err := other.Exec(`PRAGMA application_id = 7`); err != nil {
		t.Fatal(err)
	}
	other.Close()
	os.WriteFile(s.Pool.Path("ghost"), nil, 0o600)

	var calls int
	sum, err := s.CheckAll(ctx, CheckOptions{Parallel: 2, Progress: func(done, total int) {
		calls++
		if total != 5 || done != calls {
			t.Errorf("progress %d of %d at call %d", done, total, calls)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Total != 5 || sum.OK != 2 || len(sum.Failed) != 3 || calls != 5 {
		t.Errorf("summary = %+v after %d progress calls", sum, calls)
	}
	for _, id := range ids[1:4] {
		if sum.Failed[id] == "" {
			t.Errorf("tenant %s passed the check", id)
		}
		t.Logf("%s: %s", id, sum.Failed[id])
	}
	if !slices.Equal(sum.Strays, []string{"ghost.db"}) {
		t.Errorf("strays = %v, want [ghost.db]", sum.Strays)
	}
	if err := s.CheckTenant(ctx, ids[0]); err != nil {
		t.Errorf("check of a sound tenant: %v", err)
	}
	quick, err := s.CheckAll(ctx, CheckOptions{Quick: true})
	if err != nil || quick.OK != 2 {
		t.Errorf("quick check: %+v, %v", quick, err)
	}
}
