package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/runmerge/runmerge/internal/testserver"
)

// runAsMain makes the test binary run main instead of the tests, so that
// the tests can run the program as an operator does: as a process of its
// own, with arguments, environment, signals and an exit status.
const runAsMain = "GO_TEST_RUNMERGE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is runmerge running as a child process.
type process struct {
	cmd    *exec.Cmd
	stdout *testserver.SyncBuffer
	stderr *testserver.SyncBuffer
	done   chan struct{}
	err    error // set once done is closed
}

// startMain runs runmerge with args in dir, with only the RUNMERGE_ variables
// of env set, and stops it when the test ends.
func startMain(t *testing.T, dir string, env []string, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = dir
	cmd.Env = append(cleanEnviron(), runAsMain+"=1")
	cmd.Env = append(cmd.Env, env...)
	p := &process{cmd: cmd, stdout: &testserver.SyncBuffer{}, stderr: &testserver.SyncBuffer{},
		done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// wait waits for the process to end within timeout and returns its exit
// status.
func (p *process) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("runmerge still runs after %s; stderr:\n%s", timeout, p.stderr)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	} else if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

func (p *process) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

var listeningAddr = regexp.MustCompile(`msg="runmerge listening" addr=(\S+)`)

// addr waits for the server to log that it listens and returns the address.
func (p *process) addr(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := listeningAddr.FindStringSubmatch(p.stderr.String()); m != nil {
			return m[1]
		}
		select {
		case <-p.done:
			t.Fatalf("runmerge exited before listening: %v; stderr:\n%s", p.err, p.stderr)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("runmerge did not start listening; stderr:\n%s", p.stderr)
	return ""
}

// key waits for the platform admin key a first start prints on stdout. The
// two output streams are copied apart, so the key may arrive after the
// log line that says the server listens.
func (p *process) key(t *testing.T) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := bootstrapKeyLine.FindStringSubmatch(p.stdout.String()); m != nil {
			return m[1]
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no platform admin key on stdout %q", p.stdout)
	return ""
}

// cleanEnviron is the test's environment without RUNMERGE_ variables.
func cleanEnviron() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RUNMERGE_") && !strings.HasPrefix(kv, runAsMain+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// TestMainRefusesBadConfig runs runmerge serve with one bad value at a time:
// it must exit 1 before touching the data directory, saying on one line of
// stderr which key is wrong.
func TestMainRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		files map[string]string // written to the working directory
		args  []string
		want  string // in the one line of stderr
	}{
		{name: "negative pool size", env: []string{"RUNMERGE_POOL_MAX_OPEN=-1"}, want: "pool.max_open"},
		{name: "pool size not a number", env: []string{"RUNMERGE_POOL_MAX_OPEN=many"},
			want: "pool.max_open"},
		{name: "unparsable duration", env: []string{"RUNMERGE_SERVER_SHUTDOWN_TIMEOUT=30"},
			want: "server.shutdown_timeout"},
		{name: "unknown log level", env: []string{"RUNMERGE_LOG_LEVEL=verbose"}, want: "log.level"},
		{name: "unknown key in ./config.yaml", want: "pool.max_opn",
			files: map[string]string{"config.yaml": "pool:\n  max_opn: 10\n"}},
		{name: "bad value in --config", files: map[string]string{"other.yaml": "pool:\n  readers: 0\n"},
			args: []string{"--config", "other.yaml"}, want: "pool.readers"},
		{name: "broken --config", files: map[string]string{"other.yaml": "log:\n  format: [\n"},
			args: []string{"--config", "other.yaml"}, want: "other.yaml"},
		{name: "missing --config", args: []string{"--config", "nowhere.yaml"}, want: "nowhere.yaml"},
		{name: "empty --addr", args: []string{"--addr", ""}, want: "server.addr"},
		{name: "unknown flag", args: []string{"--adr", "127.0.0.1:0"}, want: "--adr"},
		{name: "stray argument", args: []string{"now"}, want: `"now"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := append([]string{"serve", "--addr", "127.0.0.1:0"}, tt.args...)
			p := startMain(t, dir, tt.env, args...)
			if code := p.wait(t, 30*time.Second); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			stderr := p.stderr.String()
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			one := len(lines) == 1 && strings.HasPrefix(lines[0], "runmerge: ")
			if !one || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr %q, want one line \"runmerge: ...\" naming %s", stderr, tt.want)
			}
			if out := p.stdout.String(); out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused start made the data directory (%v)", err)
			}
		})
	}
}

// TestMainFlagsBeatEnvironmentAndFile starts the real program with the data
// directory and address given three ways and checks which one it used.
func TestMainFlagsBeatEnvironmentAndFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "config.yaml"),
		[]byte("data_dir: from-file\nserver:\n  addr: 256.0.0.1:1\n  shutdown_timeout: 5s\n"), 0o600)
	env := []string{"RUNMERGE_DATA_DIR=from-env", "RUNMERGE_SERVER_ADDR=also-not-an-address"}

	for _, tt := range []struct {
		args []string
		want string // the data directory used
	}{
		{[]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", "from-flag"}, "from-flag"},
		{[]string{"--data-dir", "from-flag-2", "serve", "--addr", "127.0.0.1:0"}, "from-flag-2"},
		{[]string{"serve", "--addr", "127.0.0.1:0"}, "from-env"},
	} {
		p := startMain(t, dir, env, tt.args...)
		addr := p.addr(t) // a bad address from the env or file would not listen
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("%v: listens on %s", tt.args, addr)
		}
		c := testserver.NewClient("http://"+addr, "")
		c.Do(t, testserver.Request{Method: "GET", Path: "/readyz"}).WantStatus(t, 200)
		p.signal(t, syscall.SIGTERM)
		if code := p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%v: exit status %d; stderr:\n%s", tt.args, code, p.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, tt.want, "catalog.db")); err != nil {
			t.Errorf("%v: no catalog in %s: %v", tt.args, tt.want, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "from-file")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the file's data_dir was used although the environment set it (%v)", err)
	}
}

// TestMainShutdown sends the signal an operator or an orchestrator sends
// while a client is still uploading: the upload must complete, the process
// must exit 0, and the tenant must be on disk.
func TestMainShutdown(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			p := startMain(t, dir, nil, "serve", "--addr", "127.0.0.1:0", "--data-dir", "data")
			addr := p.addr(t)
			key := p.key(t)

			slow := testserver.StartSlowRequest(t, addr, "POST", "/v1/tenants", key)
			slow.Send(t, `{"id":"slow",`)
			slow.WaitReading(t)

			p.signal(t, sig)
			testserver.WaitRefused(t, addr)
			for range 5 {
				slow.Send(t, strings.Repeat(" ", 10_000))
				time.Sleep(20 * time.Millisecond)
			}
			slow.Send(t, `"name":"Slow"}`)
			resp := slow.Finish(t)
			resp.WantStatus(t, 201)

			if code := p.wait(t, 30*time.Second); code != 0 {
				t.Errorf("exit status %d, want 0; stderr:\n%s", code, p.stderr)
			}
			if !strings.Contains(p.stderr.String(), `msg=stopped`) {
				t.Errorf("no \"stopped\" in the log:\n%s", p.stderr)
			}
			got := testserver.TenantFiles(t, filepath.Join(dir, "data"))
			if len(got) != 1 || got[0] != "slow.db" {
				t.Errorf("tenant files %v, want [slow.db]", got)
			}
		})
	}
}

// TestMainShutdownIsBounded checks that a client that never finishes its
// request cannot keep the server from exiting past server.shutdown_timeout.
func TestMainShutdownIsBounded(t *testing.T) {
	dir := t.TempDir()
	p := startMain(t, dir, []string{"RUNMERGE_SERVER_SHUTDOWN_TIMEOUT=1s"},
		"serve", "--addr", "127.0.0.1:0", "--data-dir", "data")
	addr := p.addr(t)
	key := p.key(t)

	stuck := testserver.StartSlowRequest(t, addr, "POST", "/v1/tenants", key)
	stuck.Send(t, `{"id":"stuck"`)
	stuck.WaitReading(t)

	start := time.Now()
	p.signal(t, syscall.SIGTERM)
	code := p.wait(t, 20*time.Second)
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("exit took %s with a 1s grace period", took.Round(time.Millisecond))
	}
	// Not a clean stop: say so, in words an operator can act on.
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	last := lines[len(lines)-1]
	said := strings.HasPrefix(last, "runmerge: ") && strings.Contains(last, "server.shutdown_timeout")
	if code == 0 || !said {
		t.Errorf("exit status %d, last line of stderr %q; want non-zero and a line naming "+
			"server.shutdown_timeout", code, last)
	}
	if got := testserver.TenantFiles(t, filepath.Join(dir, "data")); len(got) != 0 {
		t.Errorf("tenant files %v; the stuck request never finished its body", got)
	}
}
