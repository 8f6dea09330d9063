package reliability

import (
	"testing"

	"golang.org/x/sys/unix"
)

// raiseFileSizeLimit lifts the soft RLIMIT_FSIZE of the running process pid
// to its hard limit: for a server under `ulimit -S -f`, the disk has room
// again.
func raiseFileSizeLimit(t testing.TB, pid int) {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, nil, &lim); err != nil {
		t.Fatalf("read RLIMIT_FSIZE of %d: %v", pid, err)
	}
	lim.Cur = lim.Max
	if err := unix.Prlimit(pid, unix.RLIMIT_FSIZE, &lim, nil); err != nil {
		t.Fatalf("raise RLIMIT_FSIZE of %d: %v", pid, err)
	}
}
