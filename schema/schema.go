// Package schema holds the SQL migrations of Runmerge's two kinds of SQLite
// file: the catalog (catalog/*.sql) and the tenant files (tenant/*.sql).
//
// Each migration is a file named NNNN_description.sql, applied in order of
// NNNN inside one transaction. A file records the number of the last
// migration applied to it in PRAGMA user_version. Migrations are never edited
// once released: a change to the schema is a new file.
package schema

import "embed"

// FS holds the migrations, under catalog/ and tenant/.
//
//go:embed catalog/*.sql tenant/*.sql
var FS embed.FS
