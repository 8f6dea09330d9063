//go:build !linux

package reliability

import "testing"

// raiseFileSizeLimit needs prlimit(2), which only Linux has.
func raiseFileSizeLimit(t testing.TB, pid int) {
	t.Helper()
	t.Skip("raising another process's RLIMIT_FSIZE needs Linux's prlimit")
}
