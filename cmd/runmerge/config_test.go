package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// configKeys gives, for every key, three valid values unlike each other and
// unlike the default: one for the file, one for the environment, one for a
// flag. configValue reads a key back from a Config.
var configKeys = []struct {
	key, file, env, flag string
}{
	{"data_dir", "d-file", "d-env", "d-flag"},
	{"server.addr", "127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"},
	{"server.read_header_timeout", "1s", "2s", "3s"},
	{"server.read_timeout", "1m0s", "2m0s", "3m0s"},
	{"server.idle_timeout", "1s", "2s", "3s"},
	{"server.shutdown_timeout", "1s", "2s", "3s"},
	{"log.level", "debug", "warn", "error"},
	{"log.format", "json", "text", "json"},
	{"pool.max_open", "7", "8", "9"},
	{"pool.idle_timeout", "0s", "1h0m0s", "2h0m0s"},
	{"pool.readers", "1", "3", "4"},
	{"sqlite.synchronous", "FULL", "OFF", "EXTRA"},
	{"sqlite.busy_timeout", "1s", "2s", "3s"},
	{"sqlite.cache_kib", "64", "65", "66"},
	{"sqlite.memory_limit_mib", "0", "65", "66"},
	{"auth.root_key", strings.Repeat("f", 32), strings.Repeat("e", 40), strings.Repeat("g", 33)},
	{"limits.max_body_bytes", "2048", "4096", "8192"},
	{"limits.max_import_bytes", "2048", "4096", "8192"},
	{"limits.rate_per_key", "10", "20.5", "0"},
	{"limits.rate_burst", "1", "2", "3"},
	{"metrics.enabled", "false", "true", "false"},
	{"webhooks.allow_private", "true", "false", "true"},
	{"webhooks.retry_schedule", "1s,2s", "3s", "4s,5s,6s"},
	{"webhooks.workers", "7", "8", "9"},
	{"stream.max_per_key", "2", "3", "4"},
	{"changes.retention", "48h0m0s", "72h0m0s", "96h0m0s"},
	{"backup.dir", "b-file", "b-env", "b-flag"},
	{"backup.interval", "30m0s", "2h0m0s", "3h0m0s"},
	{"backup.keep", "3", "4", "5"},
}

// configValue returns the value of key in c, found by the same mapstructure
// tags that decoding uses, as text: durations as 1m0s, data_dir by its last
// element (it is made absolute).
func configValue(t *testing.T, c *Config, key string) string {
	t.Helper()
	v := reflect.ValueOf(*c)
	for _, name := range strings.Split(key, ".") {
		i := slices.IndexFunc(reflect.VisibleFields(v.Type()), func(f reflect.StructField) bool {
			return f.Tag.Get("mapstructure") == name
		})
		if i < 0 {
			t.Fatalf("Config has no field for %s", key)
		}
		v = v.Field(i)
	}
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case []time.Duration:
		parts := make([]string, len(x))
		for i, d := range x {
			parts[i] = d.String()
		}
		return strings.Join(parts, ",")
	case string:
		if key == "data_dir" {
			return filepath.Base(x)
		}
		return x
	}
	return fmt.Sprint(v.Interface())
}

// TestConfigPrecedence sets every key at each level in turn and checks that
// a flag beats the environment, which beats the file, which beats the
// default.
func TestConfigPrecedence(t *testing.T) {
	t.Chdir(t.TempDir()) // no ./config.yaml
	clearEnv(t)

	var keys []string
	for _, k := range configKeys {
		keys = append(keys, k.key)
	}
	if want := sortedDefaultKeys(); !slices.Equal(slices.Sorted(slices.Values(keys)), want) {
		t.Fatalf("the test covers keys %v; the program has %v", keys, want)
	}

	for _, k := range configKeys {
		t.Run(k.key, func(t *testing.T) {
			value := func(file string, flags map[string]*pflag.Flag) string {
				return configValue(t, mustLoad(t, file, flags), k.key)
			}
			if got, want := value("", nil), defaultText(k.key); got != want {
				t.Errorf("default %q, want %q", got, want)
			}

			file := writeYAML(t, map[string]string{k.key: k.file})
			if got := value(file, nil); got != k.file {
				t.Errorf("file sets %q, got %q", k.file, got)
			}

			env := envName(k.key)
			t.Setenv(env, k.env)
			if got := value(file, nil); got != k.env {
				t.Errorf("file %q, env %s=%q: got %q, want the env's", k.file, env, k.env, got)
			}
			if got := value("", nil); got != k.env {
				t.Errorf("env %s=%q alone: got %q", env, k.env, got)
			}

			if got := value(file, flagFor(t, k.key, k.flag)); got != k.flag {
				t.Errorf("file %q, env %q, flag %q: got %q, want the flag's",
					k.file, k.env, k.flag, got)
			}
		})
	}
}

// TestConfigFileListsEveryKey checks that config.yaml at the root of the
// repository lists every key with its built-in default, as it promises.
func TestConfigFileListsEveryKey(t *testing.T) {
	clearEnv(t)
	path, err := filepath.Abs("../../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	v.SetConfigFile(path)
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	for _, k := range sortedDefaultKeys() {
		if !v.InConfig(k) {
			t.Errorf("config.yaml does not list %s", k)
		}
	}

	t.Chdir(t.TempDir())
	fromFile := mustLoad(t, path, nil)
	builtIn := mustLoad(t, "", nil)
	if !reflect.DeepEqual(fromFile, builtIn) {
		t.Errorf("config.yaml gives\n%+v\nthe built-in defaults are\n%+v", fromFile, builtIn)
	}
}

// TestConfigReadsWorkingDirectory checks that ./config.yaml is read when no
// --config is given, and that a section whose keys are all commented out is
// accepted.
func TestConfigReadsWorkingDirectory(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	yaml := "pool:\n  max_open: 3\nserver:\n  # addr: 0.0.0.0:80\nlog:\n"
	if err := os.WriteFile("config.yaml", []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustLoad(t, "", nil)
	if cfg.Pool.MaxOpen != 3 {
		t.Errorf("pool.max_open %d, want 3 from ./config.yaml", cfg.Pool.MaxOpen)
	}
	if cfg.Server.Addr != "127.0.0.1:8080" {
		t.Errorf("server.addr %q, want the default", cfg.Server.Addr)
	}
	if want := filepath.Join(dir, "data"); cfg.DataDir != want {
		if real, _ := filepath.EvalSymlinks(dir); cfg.DataDir != filepath.Join(real, "data") {
			t.Errorf("data_dir %q, want %q", cfg.DataDir, want)
		}
	}
}

// TestConfigRejectsBadValues checks that each bad value stops loading with
// one line that names the key.
func TestConfigRejectsBadValues(t *testing.T) {
	t.Chdir(t.TempDir())
	clearEnv(t)

	tests := []struct {
		name string
		env  map[string]string
		file string // YAML
		flag [2]string
		key  string // the key the error must name
	}{
		{name: "negative pool size", key: "pool.max_open:",
			env: map[string]string{"RUNMERGE_POOL_MAX_OPEN": "-1"}},
		{name: "zero pool size", key: "pool.max_open:",
			env: map[string]string{"RUNMERGE_POOL_MAX_OPEN": "0"}},
		{name: "pool size not a number", key: "pool.max_open:",
			env: map[string]string{"RUNMERGE_POOL_MAX_OPEN": "lots"}},
		{name: "negative pool size in the file", key: "pool.max_open:",
			file: "pool:\n  max_open: -5\n"},
		{name: "negative pool size as a flag", key: "pool.max_open:",
			flag: [2]string{"pool.max_open", "-2"}},
		{name: "unparsable duration", key: "server.read_timeout:",
			env: map[string]string{"RUNMERGE_SERVER_READ_TIMEOUT": "soon"}},
		{name: "duration without a unit", key: "server.shutdown_timeout:",
			file: "server:\n  shutdown_timeout: 30\n"},
		{name: "zero duration", key: "sqlite.busy_timeout:",
			env: map[string]string{"RUNMERGE_SQLITE_BUSY_TIMEOUT": "0s"}},
		{name: "negative idle timeout", key: "pool.idle_timeout:",
			env: map[string]string{"RUNMERGE_POOL_IDLE_TIMEOUT": "-1s"}},
		{name: "unknown log level", key: "log.level:",
			env: map[string]string{"RUNMERGE_LOG_LEVEL": "loud"}},
		{name: "unknown log format", key: "log.format:",
			file: "log:\n  format: xml\n"},
		{name: "unknown synchronous", key: "sqlite.synchronous:",
			env: map[string]string{"RUNMERGE_SQLITE_SYNCHRONOUS": "SOMETIMES"}},
		{name: "short root key", key: "auth.root_key:",
			env: map[string]string{"RUNMERGE_AUTH_ROOT_KEY": "hunter2"}},
		{name: "tiny body limit", key: "limits.max_body_bytes:",
			env: map[string]string{"RUNMERGE_LIMITS_MAX_BODY_BYTES": "10"}},
		{name: "negative rate", key: "limits.rate_per_key:",
			env: map[string]string{"RUNMERGE_LIMITS_RATE_PER_KEY": "-1"}},
		{name: "rate not a number", key: "limits.rate_per_key:",
			env: map[string]string{"RUNMERGE_LIMITS_RATE_PER_KEY": "fast"}},
		{name: "boolean not a boolean", key: "metrics.enabled:",
			env: map[string]string{"RUNMERGE_METRICS_ENABLED": "maybe"}},
		{name: "too many readers", key: "pool.readers:", file: "pool:\n  readers: 65\n"},
		{name: "negative memory limit", key: "sqlite.memory_limit_mib:",
			env: map[string]string{"RUNMERGE_SQLITE_MEMORY_LIMIT_MIB": "-1"}},
		{name: "retry schedule not durations", key: "webhooks.retry_schedule:",
			env: map[string]string{"RUNMERGE_WEBHOOKS_RETRY_SCHEDULE": "5s,soon"}},
		{name: "retry schedule with a zero wait", key: "webhooks.retry_schedule:",
			file: "webhooks:\n  retry_schedule: [5s, 0s]\n"},
		{name: "no webhook workers", key: "webhooks.workers:",
			env: map[string]string{"RUNMERGE_WEBHOOKS_WORKERS": "0"}},
		{name: "allow_private not a boolean", key: "webhooks.allow_private:",
			env: map[string]string{"RUNMERGE_WEBHOOKS_ALLOW_PRIVATE": "sometimes"}},
		{name: "no streams per key", key: "stream.max_per_key:", file: "stream:\n  max_per_key: 0\n"},
		{name: "retention shorter than the retries", key: "changes.retention:",
			env: map[string]string{"RUNMERGE_CHANGES_RETENTION": "24h"}},
		{name: "empty address", key: "server.addr:", flag: [2]string{"server.addr", ""}},
		{name: "unknown key in the file", key: `"server.adr"`, file: "server:\n  adr: 0.0.0.0:80\n"},
		{name: "unknown section in the file", key: `"webhook.url"`, file: "webhook:\n  url: x\n"},
		{name: "value where a section belongs", key: "pool:", file: "pool: 5\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			file := ""
			if tt.file != "" {
				file = filepath.Join(t.TempDir(), "config.yaml")
				if err := os.WriteFile(file, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var flags map[string]*pflag.Flag
			if tt.flag[0] != "" {
				flags = flagFor(t, tt.flag[0], tt.flag[1])
			}
			cfg, err := loadConfig(file, flags)
			if err == nil {
				t.Fatalf("loaded %+v, want an error naming %s", cfg, tt.key)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.key) {
				t.Errorf("error %q does not name %s", msg, tt.key)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error is more than one line: %q", msg)
			}
		})
	}
}

// TestConfigFileErrors checks that a config file that cannot be used is
// reported with its name.
func TestConfigFileErrors(t *testing.T) {
	clearEnv(t)
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("pool: [\n"), 0o600)

	for _, file := range []string{filepath.Join(dir, "missing.yaml"), broken} {
		_, err := loadConfig(file, nil)
		if err == nil || !strings.Contains(err.Error(), file) {
			t.Errorf("config %s: error %v, want one naming the file", file, err)
		}
	}
}

func mustLoad(t *testing.T, file string, flags map[string]*pflag.Flag) *Config {
	t.Helper()
	cfg, err := loadConfig(file, flags)
	if err != nil {
		t.Fatalf("load config: %v", err)
	}
	return cfg
}

// flagFor returns a command-line flag set to value, bound to key.
func flagFor(t *testing.T, key, value string) map[string]*pflag.Flag {
	t.Helper()
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	fs.String(key, "", "")
	if err := fs.Parse([]string{"--" + key + "=" + value}); err != nil {
		t.Fatal(err)
	}
	return map[string]*pflag.Flag{key: fs.Lookup(key)}
}

// writeYAML writes a config file setting the dotted keys of values.
func writeYAML(t *testing.T, values map[string]string) string {
	t.Helper()
	var b strings.Builder
	for key, v := range values {
		section, name, nested := strings.Cut(key, ".")
		if nested {
			fmt.Fprintf(&b, "%s:\n  %s: %q\n", section, name, v)
		} else {
			fmt.Fprintf(&b, "%s: %q\n", key, v)
		}
	}
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// envName is the environment variable of key, as API.md names it.
func envName(key string) string {
	return "RUNMERGE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// clearEnv unsets every RUNMERGE_ variable for the test, so that the
// environment the tests run in cannot change what they see.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "RUNMERGE_") {
			t.Setenv(name, "")
			os.Unsetenv(name)
		}
	}
}

func sortedDefaultKeys() []string {
	var keys []string
	for k := range defaults {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// defaultText is the default of key as configValue prints it.
func defaultText(key string) string {
	d := defaults[key]
	if s, ok := d.(string); ok && (strings.HasSuffix(key, "timeout") ||
		key == "webhooks.retry_schedule" || key == "changes.retention") {
		var parts []string
		for _, p := range strings.Split(s, ",") {
			dur, err := time.ParseDuration(p)
			if err != nil {
				panic(err)
			}
			parts = append(parts, dur.String())
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(d)
}
