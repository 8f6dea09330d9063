//go:build !race

package tenantstore

// raceEnabled reports whether the tests run under the race detector, which
// slows the building of big tenants tenfold.
const raceEnabled = false
