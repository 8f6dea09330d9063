// Package runmerge holds the domain of the Runmerge API server: tenants, keys,
// principals and their roles, the collections of event data, the policy that
// decides who may do what, and the error type shared by every other package.
//
// It imports no infrastructure. SQLite lives in package tenantstore, HTTP in
// package handlers and configuration in cmd/runmerge.
package runmerge

import "time"

// TimeFormat is how the server writes times: RFC 3339 in UTC with millisecond
// precision, for example 2026-05-01T09:00:00.000Z.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// FormatTime writes t in the server's time format.
func FormatTime(t time.Time) string {
	return t.UTC().Format(TimeFormat)
}

// Now returns the current time truncated to the millisecond, the precision at
// which the server stores and reports times.
func Now() time.Time {
	return time.Now().UTC().Truncate(time.Millisecond)
}
