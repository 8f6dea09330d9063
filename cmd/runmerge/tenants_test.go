package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// cli runs runmerge commands in this process over one data directory, as
// an operator at a shell would, with no config file and no RUNMERGE_
// variables but those the test sets.
type cli struct {
	t       *testing.T
	dir     string // the working directory
	dataDir string
}

func newCLI(t *testing.T) *cli {
	t.Helper()
	clearEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	return &cli{t: t, dir: dir, dataDir: filepath.Join(dir, "data")}
}

// run runs one command and returns what it wrote and its error.
func (c *cli) run(args ...string) (stdout, stderr string, err error) {
	c.t.Helper()
	root := newRootCommand()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append(args, "--data-dir", c.dataDir))
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

// ok runs a command that must succeed and returns its standard output.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("runmerge %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// fails runs a command that must fail and returns its error's text, which
// must be one line.
func (c *cli) fails(args ...string) string {
	c.t.Helper()
	_, _, err := c.run(args...)
	if err == nil {
		c.t.Fatalf("runmerge %s succeeded, want an error", strings.Join(args, " "))
	}
	if msg := err.Error(); strings.Contains(msg, "\n") {
		c.t.Errorf("runmerge %s: error of several lines: %q", strings.Join(args, " "), msg)
	}
	return err.Error()
}

// store opens the data directory beside the commands.
func (c *cli) store() *tenantstore.Store {
	c.t.Helper()
	s, err := tenantstore.Open(context.Background(), tenantstore.Config{DataDir: c.dataDir, MaxOpen: 8})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// addPeople writes n people into tenant id through the record API.
func addPeople(t *testing.T, s *tenantstore.Store, id string, n int) {
	t.Helper()
	ctx := context.Background()
	l, err := s.Pool.Acquire(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	c, _ := runmerge.CollectionByName("people")
	var bodies []map[string]any
	for i := range n {
		bodies = append(bodies, jsonDocument(map[string]any{"firstName": "Ada", "lastName": "L",
			"email": "ada" + string(rune('a'+i%26)) + "@example.com"}))
	}
	if _, err := l.DB().BulkUpsert(ctx, &runmerge.Principal{Role: runmerge.RoleAdmin}, c, bodies, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestTenantsCommands(t *testing.T) {
	c := newCLI(t)
	if out := c.ok("tenants", "create", "acme", "--name", "Acme Events"); !strings.Contains(out, "created tenant acme") {
		t.Errorf("create said %q", out)
	}
	c.ok("tenants", "create", "globex")
	if msg := c.fails("tenants", "create", "acme"); !strings.Contains(msg, `"acme" already exists`) {
		t.Errorf("create twice: %q", msg)
	}
	if msg := c.fails("tenants", "create", "Not_Valid"); !strings.Contains(msg, "must match") &&
		!strings.Contains(msg, "tenant id") {
		t.Errorf("bad id: %q", msg)
	}

	out := c.ok("tenants", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "acme ") || !strings.Contains(lines[1], "Acme Events") ||
		!strings.HasPrefix(lines[2], "globex ") {
		t.Errorf("list:\n%s", out)
	}

	s := c.store()
	addPeople(t, s, "acme", 3)
	out = c.ok("tenants", "show", "acme")
	for _, want := range []string{"name:            Acme Events", "status:          active", "people:          3",
		"records:         3", fmt.Sprintf("schema version:  %d", tenantstore.TenantSchemaVersion()), "last change:"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	c.ok("tenants", "suspend", "acme")
	if tn, _ := s.Catalog.Tenant(context.Background(), "acme"); tn.Status != runmerge.TenantSuspended {
		t.Errorf("after suspend: %s", tn.Status)
	}
	c.ok("tenants", "resume", "acme")
	if tn, _ := s.Catalog.Tenant(context.Background(), "acme"); tn.Status != runmerge.TenantActive {
		t.Errorf("after resume: %s", tn.Status)
	}
	if msg := c.fails("tenants", "suspend", "nobody"); msg != `tenant "nobody": tenant not found` {
		t.Errorf("suspend a missing tenant: %q", msg)
	}

	if msg := c.fails("tenants", "delete", "globex"); !strings.Contains(msg, "--yes") {
		t.Errorf("delete without --yes: %q", msg)
	}
	c.ok("tenants", "delete", "globex", "--yes")
	if _, err := os.Stat(filepath.Join(c.dataDir, "tenants", "globex.db")); !os.IsNotExist(err) {
		t.Errorf("deleted tenant's file: %v", err)
	}
	c.fails("tenants", "show", "globex")
}

// TestEveryCommandHasHelp walks the command tree: every command answers
// --help with its usage.
func TestEveryCommandHasHelp(t *testing.T) {
	c := newCLI(t)
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		path := strings.Fields(cmd.CommandPath())[1:]
		if len(path) > 0 && cmd.Name() != "help" && cmd.Name() != "completion" {
			out, _, err := c.run(append(path, "--help")...)
			if err != nil || !strings.Contains(out, "Usage:") || cmd.Short == "" {
				t.Errorf("%s --help: %v\n%s", cmd.CommandPath(), err, out)
			}
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand())
}

// TestCommandErrorsAreOneLine runs the program as a process: a failing
// command prints one line on standard error and exits with status 1.
func TestCommandErrorsAreOneLine(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"import", "acme", "missing.db"},
		{"export", "nobody"},
		{"tenants", "delete", "acme"},
		{"restore", "acme"},
		{"demo", "--tenants", "99"},
	} {
		p := startMain(t, dir, nil, append(args, "--data-dir", filepath.Join(dir, "data"))...)
		if code := p.wait(t, 30*time.Second); code != 1 {
			t.Errorf("runmerge %v: exit %d, want 1", args, code)
		}
		stderr := strings.TrimSuffix(p.stderr.String(), "\n")
		if !strings.HasPrefix(stderr, "runmerge: ") || strings.Contains(stderr, "\n") {
			t.Errorf("runmerge %v: stderr %q, want one line", args, stderr)
		}
	}
}
