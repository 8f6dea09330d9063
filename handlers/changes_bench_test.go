package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// The benchmarks of this file measure the performance targets of change
// events. BenchmarkChangesWriteCost is a throughput benchmark; run it for
// a few seconds, several times, so that its modes take turns:
//
//	go test ./handlers -run '^$' -bench ChangesWriteCost -benchtime 5s -count 3
//
// The others each run one fixed scenario; run them with -benchtime=1x.

// BenchmarkChangesWriteCost measures record writes over HTTP, across ten
// tenants, in three modes: without a dispatcher at all (no-dispatcher),
// with one that has no subscriber (dispatcher-idle), and with one platform
// webhook and one open stream (subscribed). Every write stores its change
// event in its own transaction in every mode; the differences are what
// taking the events out and delivering them cost a write.
//
// The writers and the webhook receiver run in processes of their own (this
// test binary again, see TestHelperLoad and TestHelperReceiver), so that
// the benchmark's process is the server alone. It reports writes/s,
// cpu-us/write (the server: HTTP, store and dispatcher), client-cpu-us/write
// (the writers, and the stream's reader in the subscribed mode) and
// recv-cpu-us/write (the receiver). On a machine of few CPUs all three
// share them, so the receiver's work lowers the server's throughput too.
func BenchmarkChangesWriteCost(b *testing.B) {
	for _, mode := range []string{"no-dispatcher", "dispatcher-idle", "subscribed"} {
		b.Run(mode, func(b *testing.B) {
			var a *changeAPI
			if mode == "no-dispatcher" {
				a = startPlainAPI(b)
			} else {
				a = startChangeAPI(b, "", changeOptions{defaults: true})
			}
			tenants := make([]string, 10)
			for i := range tenants {
				tenants[i] = fmt.Sprintf("w%d", i)
				a.tenant(tenants[i])
			}
			var recv *os.Process
			if mode == "subscribed" {
				var url string
				url, recv = startReceiverProcess(b)
				a.webhook(a.RootKey, `{"url":"`+url+`","eventTypes":["*"]}`)
			}
			load := startLoadProcess(b, a.URL, a.RootKey, tenants, mode == "subscribed")
			delivered0 := a.D.Stats().Succeeded
			b.ResetTimer()
			cpu0, recv0 := cpuTime(), processCPU(recv)
			res := load.run(b, b.N)
			if recv != nil {
				// The CPU of a write's delivery counts too: wait for it.
				deadline := time.Now().Add(time.Minute)
				for a.D.Stats().Succeeded-delivered0 < res.writes && time.Now().Before(deadline) {
					time.Sleep(time.Millisecond)
				}
				if n := a.D.Stats().Succeeded - delivered0; n < res.writes {
					b.Fatalf("%d of %d writes delivered", n, res.writes)
				}
			}
			cpu, recvCPU := cpuTime()-cpu0, processCPU(recv)-recv0
			b.StopTimer()
			if res.writes == 0 {
				b.Fatal("no writes")
			}
			perWrite := func(d time.Duration) float64 {
				return float64(d.Microseconds()) / float64(res.writes)
			}
			b.ReportMetric(float64(res.writes)/res.elapsed.Seconds(), "writes/s")
			b.ReportMetric(perWrite(cpu), "cpu-us/write")
			b.ReportMetric(perWrite(res.cpu), "client-cpu-us/write")
			if recv != nil {
				b.ReportMetric(perWrite(recvCPU), "recv-cpu-us/write")
			}
		})
	}
}

// startPlainAPI starts the HTTP API without a dispatcher, as a baseline.
func startPlainAPI(b *testing.B) *changeAPI {
	a := &changeAPI{t: b, dir: b.TempDir(), RootKey: "root-" + strings.Repeat("b", 40),
		client: &http.Client{Timeout: 30 * time.Second}}
	log := slog.New(slog.DiscardHandler)
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: a.dir, MaxOpen: 50, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	a.Store = store
	a.D, _ = webhook.New(webhook.Config{DataDir: a.dir}, store) // never started: not wired
	a.startHTTP(log, nil)
	b.Cleanup(a.stop)
	return a
}

// BenchmarkChangesDelivery1000Tenants writes 2,000 changes a second for
// five seconds, each to one of 1,000 tenants picked at random, with one
// platform webhook whose receiver answers in 1 ms. It reports whether
// delivery kept up and the commit-to-delivery latency: from the moment
// the write returned (committed) to the moment the receiver got it.
//
// The benchmark runs the writers, the dispatcher and the receiver in one
// process; cpu-us/change is the process's CPU time (user and system) per
// change, the capacity figure that does not depend on what else the machine
// is running. RUNMERGE_BENCH_RATE sets another rate.
func BenchmarkChangesDelivery1000Tenants(b *testing.B) {
	const duration = 5 * time.Second
	tenants := 1000
	if v, err := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_TENANTS")); err == nil && v > 0 {
		tenants = v
	}
	rate := 2000
	if v, err := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_RATE")); err == nil && v > 0 {
		rate = v
	}
	dir := b.TempDir()
	log := slog.New(slog.NewTextHandler(b.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: dir,
		MaxOpen: tenants + 100, Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close(context.Background())
	d, err := webhook.New(webhook.Config{DataDir: dir, AllowPrivate: true, Logger: log, PerEndpoint: perEndpointForBench()}, store)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer d.Stop(ctx)

	// Commits and arrivals are matched at the end: a delivery may arrive
	// before its writer has noted the commit's time.
	var commits sync.Map // record id → commit time
	var mu sync.Mutex
	arrivals := make(map[string]time.Time) // record id → first arrival
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var ev struct {
			EventType string `json:"eventType"`
			Data      struct {
				ID string `json:"id"`
			} `json:"data"`
		}
		json.NewDecoder(r.Body).Decode(&ev)
		mu.Lock()
		if _, seen := arrivals[ev.Data.ID]; !seen && ev.EventType == "person.created" {
			arrivals[ev.Data.ID] = at
		}
		mu.Unlock()
		time.Sleep(time.Millisecond)
		w.WriteHeader(204)
	}))
	// delivered returns the commit-to-arrival latencies of the measured
	// changes that have arrived.
	delivered := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		var lat []time.Duration
		commits.Range(func(k, v any) bool {
			if at, ok := arrivals[k.(string)]; ok {
				lat = append(lat, max(0, at.Sub(v.(time.Time))))
			}
			return true
		})
		return lat
	}
	defer recv.Close()
	if _, _, err := d.CreateWebhook(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin},
		webhook.WebhookInput{URL: recv.URL, EventTypes: []string{"person.created"}}); err != nil {
		b.Fatal(err)
	}

	ids := make([]string, tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%04d", i)
		if _, err := store.CreateTenant(ctx, ids[i], ids[i]); err != nil {
			b.Fatal(err)
		}
	}
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)
	admin := &runmerge.Principal{Role: runmerge.RoleAdmin}

	// Warm up: one change in every tenant, delivered, so that what is
	// measured is the steady state (tenant files open, feeds loaded), not
	// each tenant's first write since the start.
	for i, tenant := range ids {
		if err := d.BeginWrite(ctx, tenant); err != nil {
			b.Fatal(err)
		}
		l, err := store.Pool.Acquire(ctx, tenant)
		if err != nil {
			b.Fatal(err)
		}
		_, err = l.DB().CreateRecord(ctx, admin, people,
			map[string]any{"firstName": "W", "lastName": "U", "email": fmt.Sprintf("w%d@example.com", i)}, nil, nil)
		l.Release()
		if err != nil {
			b.Fatal(err)
		}
	}
	for d.Stats().Succeeded < int64(tenants) {
		time.Sleep(10 * time.Millisecond)
	}

	b.ResetTimer()
	cpuStart := cpuTime()
	jobs := make(chan int, rate)
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				tenant := ids[(i*7919)%tenants]
				if err := d.BeginWrite(ctx, tenant); err != nil {
					b.Error(err)
					return
				}
				l, err := store.Pool.Acquire(ctx, tenant)
				if err != nil {
					b.Error(err)
					return
				}
				body := map[string]any{"firstName": "A", "lastName": "B", "email": fmt.Sprintf("p%d@example.com", i)}
				rec, err := l.DB().CreateRecord(ctx, admin, people, body, nil, nil)
				l.Release()
				if err != nil {
					b.Error(err)
					return
				}
				commits.Store(rec.ID, time.Now())
				written.Add(1)
			}
		}()
	}
	start := time.Now()
	total := int(time.Duration(rate) * duration / time.Second)
	tick := time.NewTicker(time.Millisecond)
	for sent := 0; sent < total; {
		<-tick.C
		due := min(total, int(time.Since(start)*time.Duration(rate)/time.Second))
		for ; sent < due; sent++ {
			jobs <- sent
		}
	}
	tick.Stop()
	close(jobs)
	wg.Wait()
	writeTime := time.Since(start)
	backlogAtEnd := total - len(delivered())

	deadline := time.Now().Add(60 * time.Second)
	var lat []time.Duration
	lastLog := time.Now()
	for {
		if os.Getenv("RUNMERGE_BENCH_TRACE") != "" && time.Since(lastLog) > 500*time.Millisecond {
			lastLog = time.Now()
			st := d.Stats()
			lag, _ := d.DueLag(ctx)
			b.Logf("t=%s logged=%d succeeded=%d queued=%d inflight=%d lag=%s", time.Since(start).Round(time.Millisecond),
				st.Logged, st.Succeeded, st.Queued, st.InFlight, lag.Round(time.Millisecond))
		}
		lat = delivered()
		if len(lat) >= total || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	drain := time.Since(start) - writeTime
	cpuPerChange := (cpuTime() - cpuStart) / time.Duration(total)
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(float64(written.Load())/writeTime.Seconds(), "writes/s")
	b.ReportMetric(float64(len(lat))/time.Since(start).Seconds(), "deliveries/s")
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(drain.Milliseconds()), "drain-ms")
	b.ReportMetric(float64(cpuPerChange.Microseconds()), "cpu-us/change")
	st := d.Stats()
	b.Logf("collector: %d rounds, %d tenant reads, %s in rounds", st.Rounds, st.TenantReads,
		st.CollectTime.Round(time.Millisecond))
	b.Logf("%d tenants, %d writes in %s (%.0f/s); %d delivered (%d behind when writes ended, "+
		"all in %s more); commit to delivery p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; "+
		"%d µs of CPU per change, writing, delivering and receiving it",
		tenants, written.Load(), writeTime.Round(time.Millisecond), float64(written.Load())/writeTime.Seconds(),
		len(lat), backlogAtEnd, drain.Round(time.Millisecond), pct(0.5), pct(0.9), pct(0.99), pct(1),
		cpuPerChange.Microseconds())
}

// BenchmarkChangesStreamLatency holds 100 streams open and makes 1,000
// changes at 200 a second: it reports the time from a change's commit to
// its arrival at each stream client.
func BenchmarkChangesStreamLatency(b *testing.B) {
	const streams, changes, rate = 100, 1000, 200
	a := startChangeAPI(b, "", changeOptions{maxPerKey: streams + 1, defaults: true})
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		a.tenant(fmt.Sprintf("s%d", i))
	}
	var commits sync.Map
	var mu sync.Mutex
	var lat []time.Duration
	var got atomic.Int64
	var readers sync.WaitGroup
	var bodies []io.Closer
	for i := 0; i < streams; i++ {
		req, _ := http.NewRequest("GET", a.URL+"/v1/stream", nil)
		req.Header.Set("x-api-key", a.RootKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("stream %d: %v", i, err)
		}
		bodies = append(bodies, resp.Body)
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				if !strings.HasPrefix(line, "data: ") {
					continue
				}
				at := time.Now()
				var ev struct {
					Data struct {
						ID string `json:"id"`
					} `json:"data"`
				}
				json.Unmarshal([]byte(line[6:]), &ev)
				if c, ok := commits.Load(ev.Data.ID); ok {
					mu.Lock()
					lat = append(lat, at.Sub(c.(time.Time)))
					mu.Unlock()
					got.Add(1)
				}
			}
		}()
	}
	people, _ := runmerge.CollectionByName(runmerge.CollectionPeople)

	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	for i := 0; i < changes; i++ {
		<-tick.C
		tenant := fmt.Sprintf("s%d", i%10)
		if err := a.D.BeginWrite(ctx, tenant); err != nil {
			b.Fatal(err)
		}
		l, err := a.Store.Pool.Acquire(ctx, tenant)
		if err != nil {
			b.Fatal(err)
		}
		rec, err := l.DB().CreateRecord(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin}, people,
			map[string]any{"firstName": "A", "lastName": "B", "email": fmt.Sprintf("s%d@example.com", i)}, nil, nil)
		l.Release()
		if err != nil {
			b.Fatal(err)
		}
		commits.Store(rec.ID, time.Now())
	}
	tick.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for got.Load() < streams*changes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range bodies {
		c.Close()
	}
	readers.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.5), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.Logf("%d streams, %d changes at %d/s: %d of %d messages arrived; commit to client p50 %.2f ms, "+
		"p90 %.2f ms, p99 %.2f ms", streams, changes, rate, len(lat), streams*changes, pct(0.5), pct(0.9), pct(0.99))
}

// cpuTime returns the CPU time the process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// startReceiverProcess runs this test binary again as a webhook receiver
// that answers 204 at once (see TestHelperReceiver), and returns its URL
// and its process.
func startReceiverProcess(tb testing.TB) (string, *os.Process) {
	tb.Helper()
	h := startHelper(tb, "TestHelperReceiver", "RUNMERGE_HELPER_RECEIVER=1")
	line, _ := h.line()
	url, found := strings.CutPrefix(line, "receiver ")
	if !found {
		tb.Fatalf("the receiver process did not start: %q", line)
	}
	go io.Copy(io.Discard, h.out)
	return url, h.cmd.Process
}

// TestHelperReceiver is not a test: run by startReceiverProcess, it serves
// as a webhook receiver until killed.
func TestHelperReceiver(t *testing.T) {
	if os.Getenv("RUNMERGE_HELPER_RECEIVER") != "1" {
		t.Skip("a helper process for benchmarks")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("receiver http://%s/hook\n", ln.Addr())
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
}

// helperProcess is this test binary run again as a helper of a benchmark.
type helperProcess struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// startHelper runs this test binary again, running only the helper test
// name, with env added to its environment. The process is killed when the
// benchmark ends.
func startHelper(tb testing.TB, name string, env ...string) *helperProcess {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &helperProcess{cmd: cmd, in: in, out: bufio.NewReader(out)}
}

// line returns the next line the helper printed, without its line break.
func (h *helperProcess) line() (string, bool) {
	line, err := h.out.ReadString('\n')
	return strings.TrimSpace(line), err == nil
}

// loadResult is what a load process reports of one run.
type loadResult struct {
	writes  int64
	elapsed time.Duration // from the first write to the last answer
	cpu     time.Duration // the load process's CPU time, the stream's reading included
}

// startLoadProcess starts a process that writes people to tenants over
// the API at url with key (see TestHelperLoad), and, when stream is set,
// reads a stream of their person.created events. It returns once the
// process is ready to write.
func startLoadProcess(tb testing.TB, url, key string, tenants []string, stream bool) *helperProcess {
	tb.Helper()
	env := []string{"RUNMERGE_HELPER_LOAD=1", "RUNMERGE_LOAD_URL=" + url, "RUNMERGE_LOAD_KEY=" + key,
		"RUNMERGE_LOAD_TENANTS=" + strings.Join(tenants, ",")}
	if stream {
		env = append(env, "RUNMERGE_LOAD_STREAM=1")
	}
	h := startHelper(tb, "TestHelperLoad", env...)
	if line, ok := h.line(); line != "ready" {
		tb.Fatalf("the load process did not start: %q %v", line, ok)
	}
	return h
}

// run has the load process make n writes, and returns once they are
// answered and, with a stream, have all arrived on it.
func (h *helperProcess) run(tb testing.TB, n int) loadResult {
	tb.Helper()
	fmt.Fprintf(h.in, "%d\n", n)
	line, _ := h.line()
	var r loadResult
	var elapsed, cpu int64
	var failed string
	if _, err := fmt.Sscanf(line, "done %d %d %d", &r.writes, &elapsed, &cpu); err != nil {
		failed = line
	}
	if failed != "" {
		tb.Fatalf("load process: %s", failed)
	}
	r.elapsed, r.cpu = time.Duration(elapsed), time.Duration(cpu)
	return r
}

// TestHelperLoad is not a test: run by startLoadProcess, it reads a count
// from its input, makes that many writes to the server, 4 × GOMAXPROCS at a
// time, and prints "done <writes> <elapsed ns> <cpu ns>", until its input
// ends. With RUNMERGE_LOAD_STREAM=1 it first opens a stream of the
// person.created events, and waits for every write's event on it before it
// answers.
func TestHelperLoad(t *testing.T) {
	if os.Getenv("RUNMERGE_HELPER_LOAD") != "1" {
		t.Skip("a helper process for benchmarks")
	}
	url, key := os.Getenv("RUNMERGE_LOAD_URL"), os.Getenv("RUNMERGE_LOAD_KEY")
	tenants := strings.Split(os.Getenv("RUNMERGE_LOAD_TENANTS"), ",")
	var streamed atomic.Int64
	if os.Getenv("RUNMERGE_LOAD_STREAM") == "1" {
		req, _ := http.NewRequest("GET", url+"/v1/stream?eventTypes=person.created", nil)
		req.Header.Set("x-api-key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			fmt.Printf("stream: %v\n", err)
			return
		}
		go func() {
			sc := bufio.NewScanner(resp.Body)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "data: ") {
					streamed.Add(1)
				}
			}
		}()
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	var total int64
	for in.Scan() {
		n, _ := strconv.ParseInt(in.Text(), 10, 64)
		cpu0 := cpuTime()
		var next, failures atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		start := time.Now()
		for w := 0; w < 4*runtime.GOMAXPROCS(0); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > n {
						return
					}
					tenant := tenants[i%int64(len(tenants))]
					req, _ := http.NewRequest("POST", url+"/v1/people?tenantId="+tenant,
						strings.NewReader(personJSON(int(total+i))))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("x-api-key", key)
					resp, err := client.Do(req)
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 201 {
							err = fmt.Errorf("create: %d", resp.StatusCode)
						}
					}
					if err != nil {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		if failures.Load() > 0 {
			fmt.Printf("%d writes failed, the first: %v\n", failures.Load(), firstErr.Load())
			continue
		}
		total += n
		if os.Getenv("RUNMERGE_LOAD_STREAM") == "1" {
			deadline := time.Now().Add(time.Minute)
			for streamed.Load() < total && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if got := streamed.Load(); got < total {
				fmt.Printf("the stream carried %d of %d changes\n", got, total)
				continue
			}
		}
		fmt.Printf("done %d %d %d\n", n, elapsed.Nanoseconds(), (cpuTime() - cpu0).Nanoseconds())
	}
}

// processCPU returns the CPU time process p has used, user and system, or
// 0 when p is nil or cannot be read.
func processCPU(p *os.Process) time.Duration {
	if p == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.Pid))
	if err != nil {
		return 0
	}
	// The fields after the command's name, which ends with the last ")":
	// utime and stime are the 12th and 13th, in clock ticks of 10 ms.
	_, rest, _ := strings.Cut(string(b), ") ")
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	user, _ := strconv.ParseInt(f[11], 10, 64)
	sys, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(user+sys) * 10 * time.Millisecond
}

// perEndpointForBench is RUNMERGE_BENCH_PER_ENDPOINT, or 0 for the default.
func perEndpointForBench() int {
	n, _ := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_PER_ENDPOINT"))
	return n
}
