package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runmerge/runmerge/handlers"
	"github.com/runmerge/runmerge/tenantstore"
)

// childCommand is the hidden first argument that makes the program serve
// instead of generating load.
const childCommand = "__serve"

// rootKeyEnv passes the platform admin key to the child.
const rootKeyEnv = "RUNMERGE_BENCH_ROOT_KEY"

// serverStats is what the child serves at /stats: the pool's counters and
// where its memory is, SQLite's heap apart from Go's.
type serverStats struct {
	tenantstore.PoolStats
	SQLiteBytes int64
	GoHeapBytes int64
}

// probeHandler opens the file of the tenant named by the query parameter
// tenant with tenantstore.ProbeFile, inside the server's process, and
// answers how long that took in nanoseconds. It is the bare open-and-query
// measured where the pool's opens happen: beside the files the pool holds
// open, whose number SQLite's file layer walks on every open, and behind
// the same HTTP round trip as a request.
func probeHandler(w http.ResponseWriter, r *http.Request, store *tenantstore.Store) {
	if store == nil {
		http.Error(w, "no store", http.StatusNotFound)
		return
	}
	start := time.Now()
	closeFn, err := tenantstore.ProbeFile(r.Context(), store.Pool.Path(r.URL.Query().Get("tenant")), tenantstore.Options{})
	d := time.Since(start)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	closeFn()
	fmt.Fprint(w, d.Nanoseconds())
}

// runChild serves the API (or the ceiling handler) until SIGTERM, printing
// "ADDR STATS_ADDR" on standard output once it listens. STATS_ADDR serves
// the pool's counters as JSON at /stats, apart from the API, and the
// server's pprof profiles at /debug/pprof/.
func runChild(args []string) error {
	fs := flag.NewFlagSet(childCommand, flag.ContinueOnError)
	dataDir := fs.String("data-dir", "", "data directory")
	maxOpen := fs.Int("max-open", 1000, "pool.max_open")
	ceiling := fs.Bool("ceiling", false, "serve the trivial ceiling handler instead of the API")
	// The server's own default, unless the environment says otherwise as it
	// would to runmerge serve.
	limit := int64(tenantstore.DefaultMemoryLimitMiB)
	if v, err := strconv.ParseInt(os.Getenv("RUNMERGE_SQLITE_MEMORY_LIMIT_MIB"), 10, 64); err == nil {
		limit = v
	}
	memoryMiB := fs.Int64("memory-limit-mib", limit, "sqlite.memory_limit_mib")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	statsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}

	var handler http.Handler
	var store *tenantstore.Store
	var api *handlers.Server
	if *ceiling {
		handler = handlers.Ceiling()
	} else {
		// The access log is formatted as in production but thrown away, so
		// that its cost counts and the disk does not.
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		store, err = tenantstore.Open(ctx, tenantstore.Config{
			DataDir: *dataDir, MaxOpen: *maxOpen, IdleTimeout: 10 * time.Minute, Logger: log,
			MemoryLimit: *memoryMiB << 20,
		})
		if err != nil {
			return err
		}
		api = handlers.New(handlers.Config{
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxBodyBytes:      8 << 20,
			MaxImportBytes:    1 << 30,
			RootKey:           os.Getenv(rootKeyEnv),
		}, store, log)
		handler = api.Handler()
	}

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	stats := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/probe" {
			probeHandler(w, r, store)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			// The server's profiles, for finding what limits a workload:
			// go tool pprof http://STATS_ADDR/debug/pprof/profile?seconds=5
			http.DefaultServeMux.ServeHTTP(w, r)
			return
		}
		var s serverStats
		if store != nil {
			s.PoolStats = store.Pool.Stats()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s.SQLiteBytes, s.GoHeapBytes = tenantstore.SQLiteMemory(), int64(ms.HeapInuse)
		json.NewEncoder(w).Encode(s)
	})}
	go srv.Serve(ln)
	go stats.Serve(statsLn)
	fmt.Printf("%s %s\n", ln.Addr(), statsLn.Addr())

	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(srv.Shutdown(shutdown), stats.Shutdown(shutdown))
	if api != nil {
		api.Close()
	}
	if store != nil {
		err = errors.Join(err, store.Close(shutdown))
	}
	return err
}
