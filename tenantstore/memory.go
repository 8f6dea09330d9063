package tenantstore

import (
	"fmt"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite's memory is one heap for the whole process: the page caches of
// every connection of every open tenant, their schemas and statements. Each
// connection's cache may grow to Options.CacheKiB, so with a thousand
// tenants open the caches alone could in principle take gigabytes. A soft
// limit on that heap bounds them together: once SQLite's memory nears the
// limit, a connection that needs another page takes it from its own cache's
// least recently used rather than growing, so busy tenants keep what they
// hold and the total stops rising. It is soft: SQLite never fails an
// allocation for it.

// SQLite counts its memory only when built to, and the bundled build is
// not; counting is switched on here, before any connection is opened, so
// that both SQLiteMemory and the soft limit work. It must be configured
// before SQLite initializes, which the first connection does.
func init() {
	tls := libc.NewTLS()
	defer tls.Close()
	va := libc.Xmalloc(tls, 8)
	if va == 0 {
		panic("tenantstore: out of memory configuring SQLite")
	}
	defer libc.Xfree(tls, va)
	if rc := sqlite3.Xsqlite3_config(tls, sqlite3.SQLITE_CONFIG_MEMSTATUS, libc.VaList(va, int32(1))); rc != sqlite3.SQLITE_OK {
		panic(fmt.Sprintf("tenantstore: SQLite memory accounting: result code %d", rc))
	}
}

// SQLiteMemory returns the bytes SQLite has allocated now, across every
// database of the process.
func SQLiteMemory() int64 {
	tls := libc.NewTLS()
	defer tls.Close()
	return sqlite3.Xsqlite3_memory_used(tls)
}

// setSQLiteMemoryLimit sets the soft limit on SQLite's memory for the whole
// process, in bytes; 0 removes it.
func setSQLiteMemoryLimit(n int64) {
	tls := libc.NewTLS()
	defer tls.Close()
	sqlite3.Xsqlite3_soft_heap_limit64(tls, n)
}
