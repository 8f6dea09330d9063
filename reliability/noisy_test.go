package reliability

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

var (
	noisyRounds = flag.Int("noisy.rounds", 4, "most rounds TestNoisyNeighbour runs")
	noisyMin    = flag.Int("noisy.min", 1, "clean rounds TestNoisyNeighbour runs before it may stop early")
	noisyPairs  = flag.Int("noisy.pairs", 20, "quiet and flood phases in each round of TestNoisyNeighbour")
	noisyPhase  = flag.Duration("noisy.phase", 100*time.Millisecond, "length of a phase of TestNoisyNeighbour")
	noisyBusy   = flag.Float64("noisy.busy", 0.25,
		"CPU, in cores, other processes may use in a round of TestNoisyNeighbour that counts")
	noisyLimit = flag.Int("noisy.limit", 50, "limits.rate_per_key of TestNoisyNeighbour")
	noisyBurst = flag.Int("noisy.burst", 50, "limits.rate_burst of TestNoisyNeighbour")
	floodRate  = flag.Int("noisy.flood", 2000, "requests per second the noisy tenant's key sends")
	quietRate  = flag.Int("noisy.quiet", 200, "requests per second the quiet tenant's keys send")
	quietKeys  = flag.Int("noisy.keys", 8, "keys the quiet tenant's requests take turns with")
)

// TestNoisyNeighbour measures the latency a tenant's clients see at a
// steady, modest rate (-noisy.quiet over -noisy.keys keys, each well under
// the rate limit; one request in five a create, the others lists of 20
// people) while another tenant's key now floods the server with creates and
// lists at 40 times its rate limit, paying no heed to 429s, now is quiet.
// The flood goes on and off every -noisy.phase, so that whatever else loads
// the machine falls on both conditions alike; the quiet clients keep their
// pace throughout, and each request counts for the condition it was sent
// in. The flooding client runs in a process of its own, as it would on
// another machine.
//
// A p99 of about a millisecond means something only while nothing else
// wants the CPUs, so a round counts only when other processes used less
// than -noisy.busy cores during it. The best p99 of each condition over the
// rounds that count must be at most 25 % apart. The test stops at the first
// round after which it is, and fails after -noisy.rounds; when no round
// counts, it skips, as the machine was too busy to tell.
func TestNoisyNeighbour(t *testing.T) {
	dir := t.TempDir()
	key := testserver.RootKey()
	p := startBinary(t, dir, key, procOptions{Env: []string{
		fmt.Sprintf("RUNMERGE_LIMITS_RATE_PER_KEY=%d", *noisyLimit),
		fmt.Sprintf("RUNMERGE_LIMITS_RATE_BURST=%d", *noisyBurst),
	}})
	quiet := tenantClients(t, p, "quiet", *quietKeys)
	noisy := tenantClients(t, p, "noisy", 1)[0]
	var seed []string
	for i := range 50 {
		seed = append(seed, person(fmt.Sprint("seed-", i)))
	}
	for _, c := range []*testserver.Client{quiet[0], noisy} {
		c.Post(t, "/v1/people/bulk", `{"records":[`+strings.Join(seed, ",")+`]}`).WantStatus(t, http.StatusOK)
	}
	time.Sleep(time.Second) // the keys' buckets fill again

	var alone, flooded []time.Duration // p99 of each round that counts
	answers := map[int]int{}
	rise := math.Inf(1)
	for round := 0; round < *noisyRounds; round++ {
		r := noisyRound(t, p, quiet, noisy, round)
		if t.Failed() {
			return
		}
		for k, v := range r.answers {
			answers[k] += v
		}
		counts := r.otherCPU <= *noisyBusy
		t.Logf("round %d: quiet tenant alone p50 %v p99 %v (%d requests), server CPU %.0f %%; "+
			"under the flood p50 %v p99 %v (%d requests), server CPU %.0f %%; other processes' CPU %.0f %%%s",
			round, r.alone.p50, r.alone.p99, r.alone.n, 100*r.alone.cpu,
			r.flooded.p50, r.flooded.p99, r.flooded.n, 100*r.flooded.cpu, 100*r.otherCPU,
			map[bool]string{true: "", false: ": too busy, does not count"}[counts])
		if !counts {
			continue
		}
		alone, flooded = append(alone, r.alone.p99), append(flooded, r.flooded.p99)
		rise = float64(slices.Min(flooded))/float64(slices.Min(alone)) - 1
		if rise <= 0.25 && len(alone) >= *noisyMin {
			break
		}
	}
	if answers[http.StatusTooManyRequests] == 0 {
		t.Errorf("the flood was never limited: %v", answers)
	}
	if len(alone) == 0 {
		t.Skipf("other processes used more than %.2f cores in each of %d rounds: too busy to measure a p99",
			*noisyBusy, *noisyRounds)
	}
	t.Logf("best p99 of %d rounds that count: alone %v, under the flood %v: %+.0f %%; flood answers %v",
		len(alone), slices.Min(alone), slices.Min(flooded), 100*rise, answers)
	if rise > 0.25 {
		t.Errorf("the flood raised the quiet tenant's p99 from %v to %v (%+.0f %%), more than 25 %%",
			slices.Min(alone), slices.Min(flooded), 100*rise)
	}
}

// roundResult is what one round of TestNoisyNeighbour measured.
type roundResult struct {
	alone, flooded latencies
	answers        map[int]int // flood answers by status, 0 for no answer
	otherCPU       float64     // CPU used by other processes than the test's, in cores
}

// latencies sums up the quiet tenant's latencies in one condition.
type latencies struct {
	n        int
	p50, p99 time.Duration
	cpu      float64 // the server's CPU time per second, in cores
}

func summarize(lat []time.Duration, cpu, phases time.Duration) latencies {
	slices.Sort(lat)
	n := len(lat)
	if n == 0 {
		return latencies{}
	}
	return latencies{n: n, p50: lat[n/2], p99: lat[(n*99+99)/100-1], cpu: cpu.Seconds() / phases.Seconds()}
}

// noisyRound runs -noisy.pairs quiet and flood phases. The quiet clients
// send at quietRate throughout, each request when its time comes whatever
// the previous one took; every one must succeed.
func noisyRound(t *testing.T, p *process, quiet []*testserver.Client, noisy *testserver.Client,
	round int) roundResult {
	t.Helper()
	phase := *noisyPhase
	total := 2 * time.Duration(*noisyPairs) * phase
	start := time.Now().Add(50 * time.Millisecond) // time for the flooder to start
	// Phases alternate: quiet, flood, quiet, flood…
	floodOn := func(at time.Time) bool { return (at.Sub(start)/phase)%2 == 1 }
	// A quiet request sent just after the flood starts or stops might meet
	// both conditions; it does not count.
	settled := func(at time.Time) bool { return at.Sub(start)%phase >= phase/10 }
	flooder, stop := startFlooder(t, noisy, start, phase, start.Add(total))
	pids := []int{p.cmd.Process.Pid, flooder, os.Getpid()}
	cpu := make(chan phaseUse, 1)
	go func() { cpu <- measurePhases(pids, start, phase, 2**noisyPairs) }()

	interval := time.Second / time.Duration(*quietRate)
	n := int(total / interval)
	lat := make([]time.Duration, n)
	flooded := make([]bool, n)
	counted := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		time.Sleep(time.Until(at))
		flooded[i], counted[i] = floodOn(at), settled(at)
		wg.Go(func() {
			lat[i] = quietRequest(t, quiet[i%len(quiet)], i%5 == 0, fmt.Sprintf("q%d-%d", round, i))
		})
	}
	wg.Wait()
	answers := stop()
	var alone, under []time.Duration
	for i, d := range lat {
		switch {
		case !counted[i] || d == 0:
		case flooded[i]:
			under = append(under, d)
		default:
			alone = append(alone, d)
		}
	}
	use := <-cpu
	phases := time.Duration(*noisyPairs) * phase
	return roundResult{alone: summarize(alone, use.server[0], phases),
		flooded: summarize(under, use.server[1], phases), answers: answers,
		otherCPU: use.other.Seconds() / total.Seconds()}
}

// quietRequest sends a create (named remoteID) or a list of 20 people with
// c's key, and returns how long the answer took, or 0 when it failed the
// test.
func quietRequest(t *testing.T, c *testserver.Client, create bool, remoteID string) time.Duration {
	req, _ := http.NewRequest(http.MethodGet, c.URL+"/v1/people?limit=20", nil)
	want := http.StatusOK
	if create {
		req, _ = http.NewRequest(http.MethodPost, c.URL+"/v1/people", strings.NewReader(person(remoteID)))
		req.Header.Set("Content-Type", "application/json")
		want = http.StatusCreated
	}
	req.Header.Set("X-Api-Key", c.Key)
	began := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Errorf("quiet tenant: %s %s: %v", req.Method, req.URL.Path, err)
		return 0
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(began)
	if resp.StatusCode != want {
		t.Errorf("quiet tenant: %s %s: status %d, want %d: %s", req.Method, req.URL.Path,
			resp.StatusCode, want, b)
		return 0
	}
	return took
}

// phaseUse is the CPU time spent during a round.
type phaseUse struct {
	server [2]time.Duration // by the server, in quiet and in flood phases
	other  time.Duration    // by processes other than the server, the flooder and the test
}

// measurePhases reads the CPU time of the processes pids (the server
// first) and of the whole machine at the end of each of the n phases of a
// round that began at start, from /proc in clock ticks of 10 ms.
func measurePhases(pids []int, start time.Time, phase time.Duration, n int) phaseUse {
	var use phaseUse
	ours := func() (server, all time.Duration) {
		for i, pid := range pids {
			d := procCPU(pid)
			if i == 0 {
				server = d
			}
			all += d
		}
		return server, all
	}
	time.Sleep(time.Until(start))
	machine0 := machineCPU()
	server0, ours0 := ours()
	prev := server0
	for i := range n {
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * phase)))
		now := procCPU(pids[0])
		use.server[i%2] += now - prev
		prev = now
	}
	_, ours1 := ours()
	use.other = max(machineCPU()-machine0-(ours1-ours0), 0)
	return use
}

// clockTick is the unit of the CPU times in /proc: USER_HZ is 100 on Linux.
const clockTick = 10 * time.Millisecond

// procCPU returns the user and system CPU time of process pid so far, or 0
// where /proc cannot tell.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces; the fields after
	// it are state (3), …, utime (14), stime (15).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * clockTick
}

// machineCPU returns the CPU time every CPU of the machine has spent
// busy so far (the first line of /proc/stat less idle and iowait), or 0
// where /proc cannot tell.
func machineCPU() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return time.Duration(busy) * clockTick
}

// flooderEnv tells a child of the test binary to run TestNoisyFlooder:
// "URL KEY RATE START PHASE END", times in Unix nanoseconds.
const flooderEnv = "RUNMERGE_TEST_FLOODER"

// startFlooder runs the noisy tenant's client in a process of its own, as
// a client on another machine would be, so that its goroutines do not
// queue the quiet client's for the test process's CPUs. It floods during
// the odd phases from start until end. It returns the process id, and a
// function that waits for the process and returns how many answers of each
// status it got.
func startFlooder(t *testing.T, noisy *testserver.Client, start time.Time, phase time.Duration,
	end time.Time) (int, func() map[int]int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoisyFlooder$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %s %d %d %d %d", flooderEnv, noisy.URL, noisy.Key,
		*floodRate, start.UnixNano(), phase, end.UnixNano()))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the flooding client: %v", err)
	}
	return cmd.Process.Pid, func() map[int]int {
		err := cmd.Wait()
		_, after, found := strings.Cut(out.String(), "flood answers: ")
		answers := map[int]int{}
		if err != nil || !found || json.Unmarshal([]byte(strings.SplitN(after, "\n", 2)[0]), &answers) != nil {
			t.Fatalf("flooding client: %v\n%s", err, out.String())
		}
		return answers
	}
}

// TestNoisyFlooder is the flooding client of TestNoisyNeighbour, when the
// test binary runs as its child.
func TestNoisyFlooder(t *testing.T) {
	arg := os.Getenv(flooderEnv)
	if arg == "" {
		t.Skip("the flooding client of TestNoisyNeighbour, run only as its child")
	}
	var url, key string
	var rate int
	var start, phase, end int64
	if _, err := fmt.Sscan(arg, &url, &key, &rate, &start, &phase, &end); err != nil {
		t.Fatalf("%s=%q: %v", flooderEnv, arg, err)
	}
	begin := time.Unix(0, start)
	on := func(at time.Time) bool { return (at.Sub(begin)/time.Duration(phase))%2 == 1 }
	answers := flood(url, key, rate, begin, time.Unix(0, end), on)
	b, _ := json.Marshal(answers)
	fmt.Printf("flood answers: %s\n", b)
}

// flood sends creates and lists of 20 people with key at rate requests per
// second, paying no heed to 429s or Retry-After, whenever on says so, from
// begin until end, and returns how many answers of each status came back (0
// for none).
func flood(url, key string, rate int, begin, end time.Time, on func(time.Time) bool) map[int]int {
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	answers := map[int]int{}
	interval := time.Second * workers / time.Duration(rate)
	client := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	defer client.CloseIdleConnections()
	body := `{"firstName":"N","lastName":"N","email":"n@example.com"}`
	for w := range workers {
		wg.Go(func() {
			// Workers are spread over the interval, so that the flood is
			// steady rather than 16 requests at once.
			first := begin.Add(interval * time.Duration(w) / workers)
			for i := 0; ; i++ {
				at := first.Add(time.Duration(i) * interval)
				if !at.Before(end) {
					return
				}
				time.Sleep(time.Until(at))
				if !on(at) {
					continue
				}
				var req *http.Request
				if (i+w)%2 == 0 {
					req, _ = http.NewRequest(http.MethodPost, url+"/v1/people", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
				} else {
					req, _ = http.NewRequest(http.MethodGet, url+"/v1/people?limit=20", nil)
				}
				req.Header.Set("X-Api-Key", key)
				status := 0
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status = resp.StatusCode
				}
				mu.Lock()
				answers[status]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return answers
}

// tenantClients creates tenant tn and n admin keys bound to it, and
// returns a client for each key, sharing one transport.
func tenantClients(t testing.TB, p *process, tn string, n int) []*testserver.Client {
	t.Helper()
	p.CreateTenant(t, tn)
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var out []*testserver.Client
	for i := range n {
		r := p.Post(t, "/v1/keys", fmt.Sprintf(`{"name":"%s admin %d","tenantId":%q,"role":"admin"}`, tn, i, tn))
		r.WantStatus(t, http.StatusCreated)
		var k struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(r.Body, &k); err != nil || k.Key == "" {
			t.Fatalf("key without a secret: %s", r.Body)
		}
		c := testserver.NewClient(p.URL, k.Key)
		c.HTTP = hc
		out = append(out, c)
	}
	return out
}
