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
// events. Each runs one fixed scenario; run them with -benchtime=1x:
//
//	go test -run '^$' -bench 'Changes' -benchtime=1x ./handlers/

// BenchmarkChangesWriteCost measures record writes over HTTP, across ten
// tenants, with change events delivered to a webhook and a stream, and
// without a dispatcher at all: the difference is what delivering change
// events costs a write. (Every write stores its change event in its own
// transaction either way.) cpu-us/write is the process's CPU time per write,
// client, server, dispatcher and receiver together.
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
			if mode == "subscribed" {
				// The receiver runs in a process of its own, so that its
				// work is not counted as the server's.
				url := startReceiverProcess(b)
				a.webhook(a.RootKey, `{"url":"`+url+`","eventTypes":["*"]}`)
				s := a.openStream("", a.RootKey, "")
				go func() {
					for range s.events {
					}
				}()
			}
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var n atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			start, cpuStart := time.Now(), cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					tenant := tenants[i%int64(len(tenants))]
					req, _ := http.NewRequest("POST", a.URL+"/v1/people?tenantId="+tenant,
						strings.NewReader(personJSON(int(i))))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("x-api-key", a.RootKey)
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 201 {
						b.Errorf("create: %d", resp.StatusCode)
						return
					}
				}
			})
			b.ReportMetric(float64(n.Load())/time.Since(start).Seconds(), "writes/s")
			b.ReportMetric(float64((cpuTime()-cpuStart).Microseconds())/float64(n.Load()), "cpu-us/write")
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
// that answers 204 at once (see TestHelperReceiver), and returns its URL.
func startReceiverProcess(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperReceiver$")
	cmd.Env = append(os.Environ(), "RUNMERGE_HELPER_RECEIVER=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if url, ok := strings.CutPrefix(sc.Text(), "receiver "); ok {
			go io.Copy(io.Discard, out)
			return url
		}
	}
	tb.Fatal("the receiver process did not start")
	return ""
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

// perEndpointForBench is RUNMERGE_BENCH_PER_ENDPOINT, or 0 for the default.
func perEndpointForBench() int {
	n, _ := strconv.Atoi(os.Getenv("RUNMERGE_BENCH_PER_ENDPOINT"))
	return n
}
