package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the real server binary once per test run and returns its
// path.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "runmerge-reliability-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "runmerge")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/runmerge")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// process is the real server binary running over a data directory.
type process struct {
	*testserver.Client
	cmd  *exec.Cmd
	Addr string
	Log  *testserver.SyncBuffer
	exit chan error
	dead atomic.Bool // set once the process has exited
}

// procOptions change how startBinary runs the server.
type procOptions struct {
	Env []string // more RUNMERGE_* settings
	// FileSizeKiB, when set, runs the server under `ulimit -S -f`, so that
	// a write past that size fails with EFBIG: a full disk, as far as the
	// server can tell. Only the soft limit is set, so that the test can
	// raise it again while the server runs (raiseFileSizeLimit).
	FileSizeKiB int
}

var listening = regexp.MustCompile(`msg="runmerge listening" addr=(\S+)`)

// startBinary starts the server binary over dataDir with key as its root key
// and waits until it listens. The test's end kills it if it still runs.
func startBinary(t testing.TB, dataDir, key string, opts procOptions) *process {
	t.Helper()
	bin := binary(t)
	var cmd *exec.Cmd
	if opts.FileSizeKiB > 0 {
		// bash counts ulimit -f in blocks of 1024 bytes.
		cmd = exec.Command("bash", "-c", fmt.Sprintf("ulimit -S -f %d && exec %q serve", opts.FileSizeKiB, bin))
	} else {
		cmd = exec.Command(bin, "serve")
	}
	cmd.Dir = dataDir
	cmd.Env = append(os.Environ(),
		"RUNMERGE_DATA_DIR="+dataDir,
		"RUNMERGE_SERVER_ADDR=127.0.0.1:0",
		"RUNMERGE_AUTH_ROOT_KEY="+key,
		"RUNMERGE_LIMITS_RATE_PER_KEY=0",
		"RUNMERGE_WEBHOOKS_ALLOW_PRIVATE=true",
	)
	cmd.Env = append(cmd.Env, opts.Env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	p := &process{cmd: cmd, Log: &testserver.SyncBuffer{}, exit: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.Log, line)
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(p.Log, stderr)
		err := cmd.Wait()
		p.dead.Store(true)
		p.exit <- err
	}()
	t.Cleanup(func() {
		if !p.dead.Load() {
			p.cmd.Process.Kill()
		}
	})
	select {
	case p.Addr = <-addr:
	case err := <-p.exit:
		t.Fatalf("server exited before it listened: %v\n%s", err, p.Log)
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not listen within 30s:\n%s", p.Log)
	}
	p.Client = testserver.NewClient("http://"+p.Addr, key)
	p.HTTP = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConnsPerHost: 200,
	}}
	return p
}

// wait waits up to d for the process to exit and returns its exit error.
func (p *process) wait(t testing.TB, d time.Duration) (error, bool) {
	t.Helper()
	select {
	case err := <-p.exit:
		return err, true
	case <-time.After(d):
		return nil, false
	}
}

// kill ends the process with SIGKILL and waits for it.
func (p *process) kill(t testing.TB) {
	t.Helper()
	p.cmd.Process.Kill()
	if _, ok := p.wait(t, 10*time.Second); !ok {
		t.Fatal("the server outlived SIGKILL by 10s")
	}
}

// logShowsPanic reports whether the server's log mentions a panic.
func (p *process) logShowsPanic() bool {
	return strings.Contains(strings.ToLower(p.Log.String()), "panic")
}
