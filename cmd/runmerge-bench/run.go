package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// run collects the results of every workload of one invocation.
type run struct {
	opts    options
	Machine string    `json:"machine"`
	Results []*Result `json:"results"`
	Soak    []Sample  `json:"soak,omitempty"`
	Sweep   []*Result `json:"sweep,omitempty"`
}

// Result is one measured phase.
type Result struct {
	Workload  string             `json:"workload"`
	Op        string             `json:"op"`
	Mode      string             `json:"mode"`
	Requests  uint64             `json:"requests"`
	Seconds   float64            `json:"seconds"`
	PerSecond float64            `json:"perSecond"`
	P50       float64            `json:"p50Ms"`
	P90       float64            `json:"p90Ms"`
	P99       float64            `json:"p99Ms"`
	P999      float64            `json:"p999Ms"`
	Errors    map[string]int     `json:"errors,omitempty"`
	RSSMiB    float64            `json:"serverRssMiB,omitempty"`
	FDs       int                `json:"serverFds,omitempty"`
	Pool      *PoolDelta         `json:"pool,omitempty"`
	Ratios    map[string]float64 `json:"ratios,omitempty"`
	Notes     map[string]float64 `json:"notes,omitempty"`
	Rate      int                `json:"rate,omitempty"`
}

// PoolDelta is what the pool did during a phase.
type PoolDelta struct {
	Open      int     `json:"open"`
	Hits      int64   `json:"hits"`
	Misses    int64   `json:"misses"`
	Evictions int64   `json:"evictions"`
	HitRatio  float64 `json:"hitRatio"`
}

// Sample is one soak measurement.
type Sample struct {
	At       float64 `json:"atSeconds"`
	RSSMiB   float64 `json:"rssMiB"`
	FDs      int     `json:"fds"`
	WALBytes int64   `json:"walBytes"`
	// Of the resident memory: SQLite's heap and Go's heap in use.
	SQLiteMiB float64 `json:"sqliteMiB"`
	GoHeapMiB float64 `json:"goHeapMiB"`
	Open      int     `json:"openTenants"`
	Errors    int     `json:"errors"`
}

func (r *run) add(res *Result) {
	r.Results = append(r.Results, res)
	fmt.Fprintf(os.Stderr, "  %-8s %-22s %10.0f/s  p50 %.3f ms  p99 %.3f ms  errors %d\n",
		res.Workload, res.Op, res.PerSecond, res.P50, res.P99, errorCount(res.Errors))
}

func errorCount(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// child is a server process started for a workload.
type child struct {
	cmd   *exec.Cmd
	addr  string
	stats string
	key   string
}

// startChild starts the server over dataDir (or the ceiling handler).
func startChild(dataDir string, maxOpen int, ceiling bool) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{childCommand, "-data-dir", dataDir, "-max-open", strconv.Itoa(maxOpen)}
	if ceiling {
		args = append(args, "-ceiling")
	}
	cmd := exec.Command(exe, args...)
	key := benchRootKey
	cmd.Env = append(os.Environ(), rootKeyEnv+"="+key)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		return nil, fmt.Errorf("server did not start: %w", err)
	}
	f := strings.Fields(line)
	if len(f) != 2 {
		cmd.Process.Kill()
		return nil, fmt.Errorf("server said %q", line)
	}
	fmt.Fprintf(os.Stderr, "  server pid %d at %s; its profiles at http://%s/debug/pprof/\n", cmd.Process.Pid, f[0], f[1])
	return &child{cmd: cmd, addr: "http://" + f[0], stats: "http://" + f[1], key: key}, nil
}

// benchRootKey is the platform admin key of the servers the tool starts.
const benchRootKey = "bench-root-key-0123456789abcdef0123456789"

func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	return c.cmd.Wait()
}

// poolStats reads the server's pool counters and memory.
func (c *child) poolStats() (serverStats, error) {
	var s serverStats
	resp, err := http.Get(c.stats + "/stats")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// rss returns the server's resident memory in MiB and its open descriptors.
func (c *child) rss() (float64, int) {
	pid := c.cmd.Process.Pid
	var mib float64
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "VmRSS:") {
				var kb float64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%f", &kb)
				mib = kb / 1024
			}
		}
	}
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return mib, len(fds)
}

// attack runs targets against the child for d, closed-loop with workers
// clients or at a fixed rate, and returns the phase's figures.
func (r *run) attack(ctx context.Context, c *child, workload, op string, rate int, d time.Duration, tr vegeta.Targeter) *Result {
	opts := []func(*vegeta.Attacker){
		vegeta.KeepAlive(true),
		vegeta.MaxBody(0),
		vegeta.Timeout(30 * time.Second),
		vegeta.Connections(r.opts.workers * 2),
	}
	pacer := vegeta.Rate{Freq: rate, Per: time.Second}
	mode := fmt.Sprintf("%d/s", rate)
	if rate == 0 {
		opts = append(opts, vegeta.Workers(uint64(r.opts.workers)), vegeta.MaxWorkers(uint64(r.opts.workers)))
		pacer = vegeta.Rate{}
		mode = fmt.Sprintf("closed, %d clients", r.opts.workers)
	}
	atk := vegeta.NewAttacker(opts...)
	before, _ := c.poolStats()
	var m vegeta.Metrics
	res := &Result{Workload: workload, Op: op, Mode: mode, Errors: map[string]int{}, Rate: rate}
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	for hit := range atk.Attack(tr, pacer, d, op) {
		m.Add(hit)
		if hit.Code < 200 || hit.Code > 299 {
			key := strconv.Itoa(int(hit.Code))
			if hit.Code == 0 {
				key = "transport"
			}
			res.Errors[key]++
		}
	}
	m.Close()
	after, _ := c.poolStats()
	res.Requests = m.Requests
	res.Seconds = m.Duration.Seconds()
	res.PerSecond = m.Throughput
	if rate > 0 {
		res.PerSecond = m.Rate
	}
	res.P50 = ms(m.Latencies.P50)
	res.P90 = ms(m.Latencies.P90)
	res.P99 = ms(m.Latencies.P99)
	res.P999 = ms(m.Latencies.Quantile(0.999))
	res.RSSMiB, res.FDs = c.rss()
	res.Pool = poolDelta(before, after)
	return res
}

func poolDelta(before, after serverStats) *PoolDelta {
	d := &PoolDelta{
		Open:      after.Open,
		Hits:      after.Hits - before.Hits,
		Misses:    after.Misses - before.Misses,
		Evictions: after.Evictions - before.Evictions,
	}
	if n := d.Hits + d.Misses; n > 0 {
		d.HitRatio = float64(d.Hits) / float64(n)
	}
	return d
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentiles fills a result's latencies from raw samples.
func (res *Result) percentiles(samples []time.Duration) {
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	q := func(p float64) float64 {
		if len(samples) == 0 {
			return 0
		}
		i := int(math.Ceil(p*float64(len(samples)))) - 1
		return ms(samples[max(i, 0)])
	}
	res.P50, res.P90, res.P99, res.P999 = q(0.50), q(0.90), q(0.99), q(0.999)
}

// find returns the first result of workload and op.
func (r *run) find(workload, op string) *Result {
	for _, res := range r.Results {
		if res.Workload == workload && res.Op == op {
			return res
		}
	}
	return nil
}

// addRatios relates each figure to the ceiling and to the raw storage
// figure of the same operation, from this same run.
func (r *run) addRatios() {
	ceiling := r.find("ceiling", "GET /ceiling")
	for _, res := range r.Results {
		if res.Workload == "ceiling" || res.Workload == "raw" {
			continue
		}
		res.Ratios = map[string]float64{}
		if ceiling != nil && ceiling.PerSecond > 0 {
			res.Ratios["ofCeiling"] = round(res.PerSecond / ceiling.PerSecond)
		}
		if raw := r.find("raw", rawOpFor(res.Op)); raw != nil && raw.PerSecond > 0 {
			res.Ratios["ofRaw"] = round(res.PerSecond / raw.PerSecond)
		}
	}
}

func round(f float64) float64 { return math.Round(f*1000) / 1000 }

// rawOpFor names the storage operation an HTTP operation does.
func rawOpFor(op string) string {
	switch {
	case strings.HasPrefix(op, "GET one"):
		return "get one"
	case strings.HasPrefix(op, "POST create"):
		return "create one"
	case strings.HasPrefix(op, "POST bulk"):
		return "bulk 1000"
	case strings.HasPrefix(op, "PATCH"):
		return "patch one"
	case strings.HasPrefix(op, "GET page"):
		return "page of 50"
	}
	return ""
}

func (r *run) printTable(w io.Writer) {
	fmt.Fprintf(w, "machine: %s\n\n", r.Machine)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\top\tmode\treq/s\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\terrors\tRSS MiB\tfds\thits\tmisses\tevict\t×ceiling\t×raw\t")
	for _, res := range r.Results {
		var hits, misses, evictions string
		if res.Pool != nil && res.Pool.Hits+res.Pool.Misses > 0 {
			hits, misses, evictions = strconv.FormatInt(res.Pool.Hits, 10),
				strconv.FormatInt(res.Pool.Misses, 10), strconv.FormatInt(res.Pool.Evictions, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%.0f\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
			res.Workload, res.Op, res.Mode, res.PerSecond, res.P50, res.P90, res.P99, res.P999,
			errorCount(res.Errors), res.RSSMiB, res.FDs, hits, misses, evictions,
			ratio(res.Ratios, "ofCeiling"), ratio(res.Ratios, "ofRaw"))
	}
	tw.Flush()
	for _, res := range r.Results {
		if len(res.Notes) == 0 {
			continue
		}
		keys := make([]string, 0, len(res.Notes))
		for k := range res.Notes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(w, "\n%s %s:", res.Workload, res.Op)
		for _, k := range keys {
			fmt.Fprintf(w, " %s=%.4g", k, res.Notes[k])
		}
	}
	fmt.Fprintln(w)
	if len(r.Soak) > 0 {
		fmt.Fprintln(w, "\nsoak samples: seconds, RSS MiB (SQLite, Go heap), fds, WAL bytes, open tenants, errors")
		for _, s := range r.Soak {
			fmt.Fprintf(w, "  %6.0f %8.1f (%6.1f %6.1f) %6d %12d %6d %6d\n", s.At, s.RSSMiB, s.SQLiteMiB, s.GoHeapMiB,
				s.FDs, s.WALBytes, s.Open, s.Errors)
		}
	}
}

func ratio(m map[string]float64, k string) string {
	if v, ok := m[k]; ok {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return ""
}

// walBytes adds up the sizes of the WAL files under dir.
func walBytes(dir string) int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(dir, "tenants", "*.db-wal"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			n += fi.Size()
		}
	}
	return n
}
