package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/runmerge/runmerge/tenantstore"
	"github.com/runmerge/runmerge/webhook"
)

// Config is the whole configuration of Runmerge. It is read from, in order
// of precedence, command-line flags, RUNMERGE_* environment variables,
// config.yaml and the defaults below. config.yaml at the repository root
// lists every key with its default.
type Config struct {
	DataDir string        `mapstructure:"data_dir"`
	Server  ServerConfig  `mapstructure:"server"`
	Log     LogConfig     `mapstructure:"log"`
	Pool    PoolConfig    `mapstructure:"pool"`
	SQLite  SQLiteConfig  `mapstructure:"sqlite"`
	Auth    AuthConfig    `mapstructure:"auth"`
	Limits  LimitsConfig  `mapstructure:"limits"`
	Metrics MetricsConfig `mapstructure:"metrics"`

	Webhooks WebhooksConfig `mapstructure:"webhooks"`
	Stream   StreamConfig   `mapstructure:"stream"`
	Changes  ChangesConfig  `mapstructure:"changes"`
	Backup   BackupConfig   `mapstructure:"backup"`
}

// ServerConfig is the HTTP listener.
type ServerConfig struct {
	Addr              string        `mapstructure:"addr"`
	ReadHeaderTimeout time.Duration `mapstructure:"read_header_timeout"`
	ReadTimeout       time.Duration `mapstructure:"read_timeout"`
	IdleTimeout       time.Duration `mapstructure:"idle_timeout"`
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
}

// LogConfig is the server's log.
type LogConfig struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// PoolConfig is the pool of open tenant files.
type PoolConfig struct {
	MaxOpen     int           `mapstructure:"max_open"`
	IdleTimeout time.Duration `mapstructure:"idle_timeout"`
	Readers     int           `mapstructure:"readers"`
}

// SQLiteConfig is how every SQLite connection is set up.
type SQLiteConfig struct {
	Synchronous string        `mapstructure:"synchronous"`
	BusyTimeout time.Duration `mapstructure:"busy_timeout"`
	CacheKiB    int           `mapstructure:"cache_kib"`
	MemoryMiB   int           `mapstructure:"memory_limit_mib"`
}

// AuthConfig is authentication.
type AuthConfig struct {
	RootKey string `mapstructure:"root_key"`
}

// LimitsConfig bounds what clients may send.
type LimitsConfig struct {
	MaxBodyBytes   int64   `mapstructure:"max_body_bytes"`
	MaxImportBytes int64   `mapstructure:"max_import_bytes"`
	RatePerKey     float64 `mapstructure:"rate_per_key"`
	RateBurst      int     `mapstructure:"rate_burst"`
}

// MetricsConfig is the Prometheus endpoint.
type MetricsConfig struct {
	Enabled bool `mapstructure:"enabled"`
}

// WebhooksConfig is webhook delivery.
type WebhooksConfig struct {
	AllowPrivate  bool            `mapstructure:"allow_private"`
	RetrySchedule []time.Duration `mapstructure:"retry_schedule"`
	Workers       int             `mapstructure:"workers"`
}

// StreamConfig is the event stream.
type StreamConfig struct {
	MaxPerKey int `mapstructure:"max_per_key"`
}

// ChangesConfig is the keeping of change events.
type ChangesConfig struct {
	Retention time.Duration `mapstructure:"retention"`
}

// BackupConfig is the scheduled snapshots of changed tenants.
type BackupConfig struct {
	Dir      string        `mapstructure:"dir"`
	Interval time.Duration `mapstructure:"interval"`
	Keep     int           `mapstructure:"keep"`
}

// defaults are the built-in values of every key. A key missing here cannot
// be set from the environment, so every key must be listed.
var defaults = map[string]any{
	"data_dir":                   "data",
	"server.addr":                "127.0.0.1:8080",
	"server.read_header_timeout": "5s",
	"server.read_timeout":        "60s",
	"server.idle_timeout":        "120s",
	"server.shutdown_timeout":    "30s",
	"log.level":                  "info",
	"log.format":                 "text",
	"pool.max_open":              1000,
	"pool.idle_timeout":          "10m",
	"pool.readers":               2,
	"sqlite.synchronous":         "NORMAL",
	"sqlite.busy_timeout":        "5s",
	"sqlite.cache_kib":           1024,
	"sqlite.memory_limit_mib":    tenantstore.DefaultMemoryLimitMiB,
	"auth.root_key":              "",
	"limits.max_body_bytes":      1 << 20,
	"limits.max_import_bytes":    1 << 30,
	"limits.rate_per_key":        1000,
	"limits.rate_burst":          2000,
	"metrics.enabled":            true,
	"webhooks.allow_private":     false,
	"webhooks.retry_schedule":    "5s,1m,5m,30m,2h,6h,12h,24h",
	"webhooks.workers":           128,
	"stream.max_per_key":         5,
	"changes.retention":          "168h",
	"backup.dir":                 "",
	"backup.interval":            time.Hour,
	"backup.keep":                24,
}

// loadConfig reads the configuration. file is the --config flag (empty for
// ./config.yaml when present); flags are bound to their keys.
func loadConfig(file string, flags map[string]*pflag.Flag) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("RUNMERGE")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, f := range flags {
		if err := v.BindPFlag(key, f); err != nil {
			return nil, err
		}
	}

	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", file, err)
		}
	} else if _, err := os.Stat("config.yaml"); err == nil {
		v.SetConfigFile("config.yaml")
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config config.yaml: %w", err)
		}
	}
	if err := checkKnownKeys(v); err != nil {
		return nil, err
	}

	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			durationListHook,
			durationHook,
			scalarHook,
			mapstructure.StringToSliceHookFunc(","),
		)
	})
	if err != nil {
		return nil, fmt.Errorf("invalid config: %s", decodeErrorText(err))
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.DataDir, err = filepath.Abs(cfg.DataDir); err != nil {
		return nil, fmt.Errorf("invalid config: data_dir: %w", err)
	}
	return &cfg, nil
}

// checkKnownKeys refuses a config file that sets a key Runmerge does not
// have, which is almost always a typo that would otherwise be ignored. A
// section left empty (every key under it commented out) is fine.
func checkKnownKeys(v *viper.Viper) error {
	for _, k := range v.AllKeys() {
		if _, ok := defaults[k]; ok {
			continue
		}
		if isSection(k) {
			if _, ok := v.Get(k).(map[string]any); ok {
				continue
			}
			return fmt.Errorf("invalid config: %s: must be a section of keys, not a value", k)
		}
		return fmt.Errorf("invalid config: unknown key %q", k)
	}
	return nil
}

// isSection reports whether name is a section of keys, such as "pool".
func isSection(name string) bool {
	for k := range defaults {
		if strings.HasPrefix(k, name+".") {
			return true
		}
	}
	return false
}

// durationHook decodes durations from strings, naming the bad value.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(time.Duration(0)) {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		v, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (use forms like 500ms, 30s, 5m, 2h)", d)
		}
		return v, nil
	case int, int64:
		return nil, fmt.Errorf("%v is not a duration (use forms like 500ms, 30s, 5m, 2h)", d)
	}
	return data, nil
}

// durationListHook decodes a list of durations from comma-separated text,
// as the environment gives it: "5s,1m,5m".
func durationListHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok || to != reflect.TypeOf([]time.Duration(nil)) {
		return data, nil
	}
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		d, err := time.ParseDuration(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (use forms like 500ms, 30s, 5m, 2h)", part)
		}
		out = append(out, d)
	}
	return out, nil
}

// scalarHook decodes numbers and booleans given as strings (as every
// environment variable and flag is), naming the bad value in plain words.
func scalarHook(from, to reflect.Type, data any) (any, error) {
	s, ok := data.(string)
	if !ok {
		return data, nil
	}
	s = strings.TrimSpace(s)
	switch to.Kind() {
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, nil
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	}
	return data, nil
}

// decoderKey is how the decoder names a key: 'pool.max_open'.
var decoderKey = regexp.MustCompile(`'([a-z0-9_.]+)' `)

// decodeErrorText trims the decoder's wording down to "key: problem" lines,
// the form validate uses too.
func decodeErrorText(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "decoding failed due to the following error(s):\n\n")
	msg = decoderKey.ReplaceAllString(msg, "$1: ")
	return strings.ReplaceAll(msg, "\n", "; ")
}

// validate checks every value, naming the key of the first bad one.
func (c *Config) validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalid config: %s: "+format, append([]any{key}, args...)...))
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.Server.Addr == "" {
		bad("server.addr", "must not be empty")
	}
	for key, d := range map[string]time.Duration{
		"server.read_header_timeout": c.Server.ReadHeaderTimeout,
		"server.read_timeout":        c.Server.ReadTimeout,
		"server.idle_timeout":        c.Server.IdleTimeout,
		"server.shutdown_timeout":    c.Server.ShutdownTimeout,
		"sqlite.busy_timeout":        c.SQLite.BusyTimeout,
	} {
		if d <= 0 {
			bad(key, "must be a positive duration, got %s", d)
		}
	}
	if _, err := parseLevel(c.Log.Level); err != nil {
		bad("log.level", "%v", err)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "must be text or json, got %q", c.Log.Format)
	}
	if c.Pool.MaxOpen < 1 {
		bad("pool.max_open", "must be at least 1, got %d", c.Pool.MaxOpen)
	}
	if c.Pool.IdleTimeout < 0 {
		bad("pool.idle_timeout", "must not be negative, got %s", c.Pool.IdleTimeout)
	}
	if c.Pool.Readers < 1 || c.Pool.Readers > 64 {
		bad("pool.readers", "must be from 1 to 64, got %d", c.Pool.Readers)
	}
	if !tenantstore.ValidSynchronous(c.SQLite.Synchronous) {
		bad("sqlite.synchronous", "must be OFF, NORMAL, FULL or EXTRA, got %q", c.SQLite.Synchronous)
	}
	if c.SQLite.CacheKiB < 64 {
		bad("sqlite.cache_kib", "must be at least 64, got %d", c.SQLite.CacheKiB)
	}
	if c.SQLite.MemoryMiB < 0 {
		bad("sqlite.memory_limit_mib", "must not be negative, got %d", c.SQLite.MemoryMiB)
	}
	if k := c.Auth.RootKey; k != "" && len(k) < 32 {
		bad("auth.root_key", "must be at least 32 characters when set")
	}
	if c.Limits.MaxBodyBytes < 1024 {
		bad("limits.max_body_bytes", "must be at least 1024, got %d", c.Limits.MaxBodyBytes)
	}
	if c.Limits.RatePerKey < 0 {
		bad("limits.rate_per_key", "must not be negative (0 means no limit), got %v", c.Limits.RatePerKey)
	}
	if c.Limits.RateBurst < 0 {
		bad("limits.rate_burst", "must not be negative, got %d", c.Limits.RateBurst)
	}
	if c.Limits.MaxImportBytes < 1024 {
		bad("limits.max_import_bytes", "must be at least 1024, got %d", c.Limits.MaxImportBytes)
	}
	errs = append(errs, c.validateChanges()...)
	return errors.Join(errs...)
}

// validateChanges checks the webhook, stream and change event settings.
func (c *Config) validateChanges() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invalid config: %s: "+format, append([]any{key}, args...)...))
	}
	var total time.Duration
	if n := len(c.Webhooks.RetrySchedule); n < 1 || n > 20 {
		bad("webhooks.retry_schedule", "must list 1 to 20 durations, got %d", n)
	}
	for _, d := range c.Webhooks.RetrySchedule {
		if d <= 0 {
			bad("webhooks.retry_schedule", "every wait must be a positive duration, got %s", d)
			break
		}
		total += d
	}
	if c.Webhooks.Workers < 1 || c.Webhooks.Workers > 4096 {
		bad("webhooks.workers", "must be from 1 to 4096, got %d", c.Webhooks.Workers)
	}
	if c.Stream.MaxPerKey < 1 || c.Stream.MaxPerKey > 1000 {
		bad("stream.max_per_key", "must be from 1 to 1000, got %d", c.Stream.MaxPerKey)
	}
	if c.Changes.Retention < time.Hour {
		bad("changes.retention", "must be at least 1h, got %s", c.Changes.Retention)
	} else if c.Changes.Retention <= total {
		bad("changes.retention", "must be longer than the whole webhooks.retry_schedule (%s), "+
			"or retries would find their change pruned; got %s", total, c.Changes.Retention)
	}
	if c.Backup.Interval < time.Minute {
		bad("backup.interval", "must be at least 1m, got %s", c.Backup.Interval)
	}
	if c.Backup.Keep < 1 || c.Backup.Keep > 10000 {
		bad("backup.keep", "must be from 1 to 10000, got %d", c.Backup.Keep)
	}
	return errs
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}

// newLogger builds the process's logger from the log settings.
func newLogger(c LogConfig, w *os.File) *slog.Logger {
	level, _ := parseLevel(c.Level)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// storeConfig is the part of the configuration the tenant store needs.
func (c *Config) storeConfig(log *slog.Logger) tenantstore.Config {
	return tenantstore.Config{
		DataDir:     c.DataDir,
		MaxOpen:     c.Pool.MaxOpen,
		IdleTimeout: c.Pool.IdleTimeout,
		MemoryLimit: int64(c.SQLite.MemoryMiB) << 20,
		Options: tenantstore.Options{
			Synchronous: c.SQLite.Synchronous,
			BusyTimeout: c.SQLite.BusyTimeout,
			Readers:     c.Pool.Readers,
			CacheKiB:    c.SQLite.CacheKiB,
		},
		Logger: log,
	}
}

// webhookConfig is the part of the configuration webhook delivery needs.
func (c *Config) webhookConfig(log *slog.Logger) webhook.Config {
	return webhook.Config{
		DataDir:       c.DataDir,
		AllowPrivate:  c.Webhooks.AllowPrivate,
		RetrySchedule: c.Webhooks.RetrySchedule,
		Workers:       c.Webhooks.Workers,
		Retention:     c.Changes.Retention,
		Logger:        log,
	}
}
