package reliability

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

// shutdownTenants are the tenants TestShutdownUnderLoad writes to.
var shutdownTenants = []string{"acme", "globex"}

// TestShutdownUnderLoad sends SIGTERM to the real binary while 500
// requests are half-sent, 100 event streams are open, 20 clients keep
// sending more, and each tenant has a webhook. Every request the server had
// begun must complete with 201 once its body arrives, every answer during
// shutdown is a 2xx or a clean problem, every stream is ended by the server
// (the client reads the end of the body, not a reset), and the process
// exits 0 within its grace period with sound tenant files. Started again,
// the server holds every acknowledged write, and the receivers hear the
// change event of every record stored.
func TestShutdownUnderLoad(t *testing.T) {
	dir := t.TempDir()
	key := testserver.RootKey()
	const (
		grace    = 10 * time.Second
		inFlight = 500
		nStreams = 100
	)
	p := startBinary(t, dir, key, procOptions{Env: []string{
		"RUNMERGE_SERVER_SHUTDOWN_TIMEOUT=" + grace.String(),
		fmt.Sprintf("RUNMERGE_STREAM_MAX_PER_KEY=%d", nStreams),
	}})
	rc := newReceiver()
	// 16 deliveries at a time of 50 ms each: slower than the writes come,
	// so that deliveries are pending when the server stops.
	rc.Delay = 50 * time.Millisecond
	for _, tn := range shutdownTenants {
		p.CreateTenant(t, tn)
		rc.subscribe(t, p, tn)
	}

	streams := openStreams(t, p, nStreams)
	var slow []*testserver.SlowRequest
	for i := range inFlight {
		tn := shutdownTenants[i%2]
		r := testserver.StartSlowRequest(t, p.Addr, http.MethodPost, "/v1/people?tenantId="+tn, key)
		r.WaitReading(t)
		r.Send(t, fmt.Sprintf(`{"firstName":"In","lastName":"Flight","sourceId":"inflight","remoteId":"%d",`, i))
		slow = append(slow, r)
	}
	load := startLoad(t, p, 20)
	time.Sleep(300 * time.Millisecond)

	signalled := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testserver.WaitRefused(t, p.Addr)
	var acked []string
	for i, r := range slow {
		r.Send(t, `"email":"in@example.com"}`)
		resp := r.Finish(t)
		if resp.Status != http.StatusCreated {
			t.Errorf("in-flight request %d: status %d after SIGTERM, want 201: %s", i, resp.Status, resp.Body)
			continue
		}
		acked = append(acked, recordKey(shutdownTenants[i%2], "inflight", fmt.Sprint(i)))
	}
	answers, loadAcked := load.stop()
	acked = append(acked, loadAcked...)

	err, exited := p.wait(t, grace+5*time.Second)
	took := time.Since(signalled)
	if !exited {
		t.Fatalf("still running %v after SIGTERM; log:\n%s", took, p.Log)
	}
	if err != nil {
		t.Errorf("exit: %v; log:\n%s", err, p.Log)
	}
	if took > grace {
		t.Errorf("exit %v after SIGTERM, beyond the %v grace period", took, grace)
	}
	if answers[-1] > 0 {
		t.Errorf("%d requests of the background load lost their connection after it was accepted: %q",
			answers[-1], load.lost)
	}
	events := 0
	for i, s := range streams {
		r := <-s
		events += r.events
		if !errors.Is(r.err, io.EOF) {
			t.Errorf("stream %d ended with %v after %d events, want the end of the body (EOF)", i, r.err, r.events)
		}
	}
	for _, tn := range shutdownTenants {
		integrityCheck(t, filepath.Join(dir, "tenants", tn+".db"))
	}
	if p.logShowsPanic() {
		t.Errorf("the server logged a panic:\n%s", p.Log)
	}
	delivered := rc.stats()
	pending := len(rc.missing(acked))

	// Started again, the server holds every acknowledged write and delivers
	// the change event of every record it holds, those it had not sent
	// before it stopped included.
	p = startBinary(t, dir, key, procOptions{})
	stored := map[string]bool{}
	var storedKeys []string
	for _, tn := range shutdownTenants {
		for _, k := range listPeople(t, p, tn) {
			stored[k] = true
			storedKeys = append(storedKeys, k)
		}
	}
	for _, k := range acked {
		if !stored[k] {
			t.Errorf("acknowledged write %s is missing after the restart", k)
		}
	}
	if m := rc.waitFor(storedKeys, 60*time.Second); len(m) > 0 {
		t.Errorf("%d of %d stored records' change events never delivered, such as %s",
			len(m), len(storedKeys), m[0])
	}
	rc.check(t)
	s := rc.stats()
	t.Logf("SIGTERM with %d half-sent requests, %d streams and 20 busy clients: exit 0 after %v; "+
		"load answers %v (0: reset in the accept queue); streams got %d events and all ended with EOF",
		inFlight, nStreams, took.Round(time.Millisecond), answers, events)
	t.Logf("%d acknowledged writes, %d records stored; webhooks: %d changes delivered before the exit, "+
		"%d acknowledged ones pending then; after the restart %d deliveries of %d changes, %d duplicates",
		len(acked), len(storedKeys), delivered.Changes, pending, s.Deliveries, s.Changes, s.Duplicates)
}

// streamEnd is how an event stream ended.
type streamEnd struct {
	events int   // messages received
	err    error // what the last read returned
}

// openStreams opens n event streams on every tenant with p's key, each on
// a connection of its own, and returns once every one has begun. Each
// stream's channel gets how it ended.
func openStreams(t testing.TB, p *process, n int) []chan streamEnd {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var out []chan streamEnd
	for range n {
		req, _ := http.NewRequest(http.MethodGet, p.URL+"/v1/stream", nil)
		req.Header.Set("X-Api-Key", p.Key)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("open a stream: %v", err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("open a stream: status %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		end := make(chan streamEnd, 1)
		go func() {
			var e streamEnd
			br := bufio.NewReader(resp.Body)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					e.err = err
					end <- e
					return
				}
				if strings.HasPrefix(line, "event:") {
					e.events++
				}
			}
		}()
		out = append(out, end)
	}
	return out
}

// load is clients that create people as fast as they can until stopped.
type load struct {
	stopping chan struct{}
	wg       sync.WaitGroup

	mu      sync.Mutex
	answers map[int]int // by status; 0 for a reset, -1 for a lost connection
	acked   []string    // record keys of the people created
	lost    []string
}

// startLoad starts n clients that post people to the tenants of
// TestShutdownUnderLoad, each request on a new connection, until stop. A
// client ends when the server refuses or resets its connection.
func startLoad(t *testing.T, p *process, n int) *load {
	l := &load{stopping: make(chan struct{}), answers: map[int]int{}}
	for w := range n {
		l.wg.Go(func() {
			client := &http.Client{Timeout: 20 * time.Second,
				Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; ; i++ {
				select {
				case <-l.stopping:
					return
				default:
				}
				tn := shutdownTenants[(w+i)%2]
				remoteID := fmt.Sprintf("%d-%d", w, i)
				body := fmt.Sprintf(`{"firstName":"A","lastName":"B","email":"a@example.com",`+
					`"sourceId":"load","remoteId":%q}`, remoteID)
				req, _ := http.NewRequest(http.MethodPost, p.URL+"/v1/people?tenantId="+tn,
					strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Api-Key", p.Key)
				resp, err := client.Do(req)
				if err != nil {
					if errors.Is(err, syscall.ECONNREFUSED) {
						return // the listener has closed: not accepted, fine
					}
					// A connection still in the kernel's accept queue when
					// the listener closes is reset without the server ever
					// seeing it: not accepted either. Counted, not failed.
					if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) {
						l.note(0, "", "")
						return
					}
					l.note(-1, "", err.Error())
					continue
				}
				b := make([]byte, 4096)
				n, _ := resp.Body.Read(b)
				resp.Body.Close()
				switch {
				case resp.StatusCode/100 == 2:
					l.note(resp.StatusCode, recordKey(tn, "load", remoteID), "")
				case resp.StatusCode == http.StatusServiceUnavailable &&
					resp.Header.Get("Content-Type") == "application/problem+json":
					l.note(resp.StatusCode, "", "")
				default:
					l.note(resp.StatusCode, "", "")
					t.Errorf("during shutdown: status %d %q: %s", resp.StatusCode,
						resp.Header.Get("Content-Type"), b[:n])
				}
			}
		})
	}
	return l
}

func (l *load) note(status int, acked, lost string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers[status]++
	if acked != "" {
		l.acked = append(l.acked, acked)
	}
	if lost != "" {
		l.lost = append(l.lost, lost)
	}
}

// stop stops the clients and returns their answers by status and the
// record keys of the people they created.
func (l *load) stop() (map[int]int, []string) {
	close(l.stopping)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.answers, l.acked
}

// listPeople returns the record keys of every person of tenant tn.
func listPeople(t testing.TB, p *process, tn string) []string {
	t.Helper()
	var out []string
	cursor := ""
	for {
		path := "/v1/people?tenantId=" + tn + "&limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		r := p.Get(t, path)
		r.WantStatus(t, http.StatusOK)
		var page struct {
			Data []struct {
				SourceID string `json:"sourceId"`
				RemoteID string `json:"remoteId"`
			} `json:"data"`
			NextCursor *string `json:"nextCursor"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatal(err)
		}
		for _, rec := range page.Data {
			out = append(out, recordKey(tn, rec.SourceID, rec.RemoteID))
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
}
