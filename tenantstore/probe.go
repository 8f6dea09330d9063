package tenantstore

import (
	"context"
	"fmt"
)

// ProbeFile opens the tenant file at path with the same driver and settings
// as the pool and reads its header, returning a function that closes it.
// The load tool times it as the bare cost of opening a file, against which
// the pool's opens are judged.
func ProbeFile(ctx context.Context, path string, o Options) (closeFn func() error, err error) {
	db, err := connect(path, o.withDefaults(), modeWrite)
	if err != nil {
		return nil, err
	}
	h, err := readHeader(ctx, db)
	if err == nil && h.applicationID != tenantApplicationID {
		err = fmt.Errorf("%s: not a tenant file", path)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db.Close, nil
}
