// Command runmerge-bench is Runmerge's load tool. It prepares data, starts
// the server in a child process (so that the server's memory and open files
// can be read apart from the load generator's), and runs named workloads at
// a fixed request rate or closed-loop, reporting requests per second,
// latency percentiles, errors by status, the server's resident memory and
// open descriptors, and the tenant pool's hits, misses and evictions.
//
//	runmerge-bench ceiling raw crud list tenants
//	runmerge-bench -duration 10m soak
//	runmerge-bench -json -plot docs/bench crud
//
// Workloads:
//
//	ceiling  a trivial Echo handler: the HTTP limit of this machine
//	raw      the crud operations straight through the storage layer, no HTTP
//	crud     one warm tenant: get, create, patch, list
//	list     filtered 50-record pages over a 100,000-record tenant, deep cursors
//	tenants  10,000 tenants; pool.max_open 100 and 1,000; Zipf and uniform access
//	soak     the tenants workload for -duration, sampling memory, descriptors, WAL
//
// The server runs with the defaults of runmerge serve; the environment
// variable RUNMERGE_SQLITE_MEMORY_LIMIT_MIB sets its sqlite.memory_limit_mib.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	duration    time.Duration
	rate        int // requests per second; 0 for closed loop
	workers     int
	tenants     int
	records     int
	maxOpen     []int
	jsonOut     bool
	plotDir     string
	dataDir     string
	rates       []int // for latency-against-rate charts
	sampleEvery time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == childCommand {
		if err := runChild(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "runmerge-bench child:", err)
			os.Exit(1)
		}
		return
	}

	var o options
	var maxOpen, rates string
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "how long each measured phase runs")
	flag.IntVar(&o.rate, "rate", 0, "requests per second; 0 runs closed-loop with -workers clients")
	flag.IntVar(&o.workers, "workers", 32, "concurrent clients in closed-loop mode")
	flag.IntVar(&o.tenants, "tenants", 10000, "tenants for the tenants and soak workloads")
	flag.IntVar(&o.records, "records", 100000, "records for the list workload")
	flag.StringVar(&maxOpen, "max-open", "100,1000", "pool.max_open values for the tenants workload")
	flag.BoolVar(&o.jsonOut, "json", false, "print results as JSON instead of a table")
	flag.StringVar(&o.plotDir, "plot", "", "write charts (PNG) into this directory")
	flag.StringVar(&o.dataDir, "data-dir", "", "where to build data (default: a new temporary directory)")
	flag.StringVar(&rates, "rates", "", "request rates for the latency-against-rate chart of crud GET, e.g. 2000,4000,8000")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the load tool's own process (the raw workload runs here)")
	flag.DurationVar(&o.sampleEvery, "sample-every", 10*time.Second, "soak: how often to sample memory, descriptors and WAL size")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: runmerge-bench [flags] WORKLOAD...\n\nworkloads: %s\n\nflags:\n",
			strings.Join(workloadNames(), " "))
		flag.PrintDefaults()
	}
	flag.Parse()
	var err error
	if o.maxOpen, err = parseInts(maxOpen); err != nil {
		fail(fmt.Errorf("-max-open: %w", err))
	}
	if rates != "" {
		if o.rates, err = parseInts(rates); err != nil {
			fail(fmt.Errorf("-rates: %w", err))
		}
	}
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	for _, w := range flag.Args() {
		if workloads[w] == nil {
			fail(fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(workloadNames(), ", ")))
		}
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &run{opts: o, Machine: machine()}
	for _, w := range flag.Args() {
		if err := workloads[w](ctx, r); err != nil {
			fail(fmt.Errorf("%s: %w", w, err))
		}
	}
	r.addRatios()
	if o.plotDir != "" {
		if err := r.plot(o.plotDir); err != nil {
			fail(err)
		}
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fail(err)
		}
		return
	}
	r.printTable(os.Stdout)
}

func fail(err error) {
	pprof.StopCPUProfile()
	fmt.Fprintln(os.Stderr, "runmerge-bench:", err)
	os.Exit(1)
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// machine describes where the figures come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				model = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
