package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

// TestSlowClientsDoNotStarve opens 500 idle connections and 50 more that
// trickle their headers in a byte at a time, then measures /healthz from a
// well-behaved client: its p99 must stay under 50 ms.
func TestSlowClientsDoNotStarve(t *testing.T) {
	srv := startBinary(t, t.TempDir(), testserver.RootKey(), procOptions{})

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 500 {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("open idle connection %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}

	stop := make(chan struct{})
	var trickling sync.WaitGroup
	for range 50 {
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatalf("open trickling connection: %v", err)
		}
		conns = append(conns, c)
		trickling.Go(func() {
			head := "GET /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Pad: " +
				strings.Repeat("p", 4096)
			for i := 0; i < len(head); i++ {
				select {
				case <-stop:
					return
				case <-time.After(20 * time.Millisecond):
				}
				if _, err := c.Write([]byte{head[i]}); err != nil {
					return // the server gave up on us, as it should
				}
			}
		})
	}

	client := &http.Client{Timeout: 5 * time.Second}
	var took []time.Duration
	for range 300 {
		start := time.Now()
		resp, err := client.Get("http://" + srv.Addr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /healthz: status %d", resp.StatusCode)
		}
		took = append(took, time.Since(start))
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	trickling.Wait()

	slices.Sort(took)
	p50, p99 := took[len(took)/2], took[len(took)*99/100]
	t.Logf("/healthz with 500 idle and 50 trickling connections: p50 %v, p99 %v, max %v",
		p50, p99, took[len(took)-1])
	if p99 > 50*time.Millisecond {
		t.Errorf("/healthz p99 %v, want under 50ms", p99)
	}
}

// TestRawMalformedRequests writes requests Go's client refuses to build
// (invalid UTF-8 and control bytes in the request line and headers, a
// broken chunked body) straight to the socket. Each must get a 4xx and
// leave the server serving.
func TestRawMalformedRequests(t *testing.T) {
	key := testserver.RootKey()
	srv := startBinary(t, t.TempDir(), key, procOptions{})
	srv.CreateTenant(t, "acme")

	raws := []string{
		"GET /v1/events?tenantId=acme&q=\xff\xfe HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\n\r\n",
		"GET /v1/events/\xff\xfe?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\n\r\n",
		"GET /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\xff\r\n\r\n",
		"GET /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nX-Integration-Key: \xff\xfe\r\n\r\n",
		"POST /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nContent-Type: application/json\r\n" +
			"Idempotency-Key: \xff\x01\r\nContent-Length: 2\r\n\r\n{}",
		"POST /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nContent-Type: application/json\r\n" +
			"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
		"POST /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nContent-Type: application/json\r\n" +
			"Content-Length: 10\r\nContent-Length: 12\r\n\r\n{}",
		"PATCH /v1/tenants/acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nContent-Type: application/json\r\n" +
			"Content-Length: 14\r\n\r\n{\"name\":\"\xff\xfe\xfd\"}",
		"GET /v1/events?tenantId=acme HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\nIf-None-Match: \x00\r\n\r\n",
		"BREW /v1/events HTTP/1.1\r\nHost: x\r\nX-Api-Key: KEY\r\n\r\n",
		"GET /" + strings.Repeat("a", 100<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for i, raw := range raws {
		raw = strings.ReplaceAll(raw, "KEY", key)
		c, err := net.Dial("tcp", srv.Addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(c, raw)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Errorf("raw request %d: no answer: %v", i, err)
			c.Close()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		c.Close()
		what := fmt.Sprintf("raw request %d (%.80q)", i, raw)
		if resp.StatusCode >= 500 {
			t.Errorf("%s: status %d: %s", what, resp.StatusCode, b)
			continue
		}
		// Go's HTTP server refuses a malformed request line, header or
		// framing itself, in plain text, before any Runmerge code runs.
		if resp.StatusCode >= 400 && resp.Header.Get("X-Request-Id") != "" {
			checkProblem(t, what, resp, b)
		}
		t.Logf("%s: %d", what, resp.StatusCode)
	}
	srv.Get(t, "/healthz").WantStatus(t, http.StatusOK)
	if srv.logShowsPanic() {
		t.Errorf("the server logged a panic:\n%s", srv.Log)
	}
}
