package handlers

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runmerge/runmerge"
	"github.com/runmerge/runmerge/tenantstore"
)

// metrics are the server's Prometheus metrics, in a registry of the
// server's own, so that several servers in one process (in tests) do not
// clash. No label takes a value per tenant, key or record: every label's
// values are bounded by the routes and statuses the server has.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(store *tenantstore.Store) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "runmerge_http_requests_total",
			Help: "HTTP requests answered, by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "runmerge_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method and route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"method", "route"}),
	}
	m.registry.MustRegister(
		m.requests,
		m.duration,
		poolCollector{store.Pool},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Metrics returns the registry behind /metrics, for other parts of the
// server (the webhook dispatcher, backups) to register their collectors in.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.registry }

// MonitorBackups adds the backup scheduler's counters to /metrics.
func (s *Server) MonitorBackups(b *tenantstore.Backups) error {
	return s.metrics.registry.Register(backupCollector{b})
}

func (s *Server) registerMetricsRoutes() {
	if !s.cfg.MetricsEnabled {
		return
	}
	h := promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})
	s.route(http.MethodGet, "/metrics", runmerge.ActionPublic, echo.WrapHandler(h))
}

// observe counts every request and times it, once it is answered. It runs
// outside the access log, which answers errors, so the status it sees is
// the one sent.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		route := c.Path()
		if _, ok := s.routes[c.Request().Method+" "+route]; !ok {
			// No route matches: one series for every such request.
			route = "unmatched"
		}
		method := c.Request().Method
		if !knownMethods[method] {
			method = "other"
		}
		status := c.Response().Status
		if err != nil && !c.Response().Committed {
			status = http.StatusInternalServerError
		}
		s.metrics.requests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
		s.metrics.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
		return err
	}
}

// knownMethods are the methods counted under their own name.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// poolCollector reports the tenant pool's counters as they are at each
// scrape.
type poolCollector struct{ pool *tenantstore.Pool }

var (
	poolOpenDesc = prometheus.NewDesc("runmerge_pool_open_tenants",
		"Tenant files open now, leased or not.", nil, nil)
	poolLeasedDesc = prometheus.NewDesc("runmerge_pool_leased_tenants",
		"Open tenant files leased by a request right now.", nil, nil)
	poolHitsDesc = prometheus.NewDesc("runmerge_pool_hits_total",
		"Acquires that found the tenant file open.", nil, nil)
	poolMissesDesc = prometheus.NewDesc("runmerge_pool_misses_total",
		"Acquires that had to open the tenant file.", nil, nil)
	poolEvictionsDesc = prometheus.NewDesc("runmerge_pool_evictions_total",
		"Tenant files closed to make room for another.", nil, nil)
	poolIdleClosesDesc = prometheus.NewDesc("runmerge_pool_idle_closes_total",
		"Tenant files closed for being idle.", nil, nil)
	poolOpensDesc = prometheus.NewDesc("runmerge_pool_opens_total",
		"Tenant files opened.", nil, nil)
	poolOpenErrorsDesc = prometheus.NewDesc("runmerge_pool_open_errors_total",
		"Opens of tenant files that failed.", nil, nil)
	poolCloseErrorsDesc = prometheus.NewDesc("runmerge_pool_close_errors_total",
		"Closes of tenant files that failed.", nil, nil)
	poolOpenSecondsDesc = prometheus.NewDesc("runmerge_pool_open_seconds_total",
		"Time spent opening tenant files; divided by runmerge_pool_opens_total, "+
			"the mean open latency.", nil, nil)
	poolWaitSecondsDesc = prometheus.NewDesc("runmerge_pool_lease_wait_seconds_total",
		"Time acquires spent waiting for another's open of the same tenant, or for a close.", nil, nil)
	sqliteMemoryDesc = prometheus.NewDesc("runmerge_sqlite_memory_bytes",
		"Memory SQLite holds for every open database: page caches, schemas, statements.", nil, nil)
)

func (c poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{poolOpenDesc, poolLeasedDesc, poolHitsDesc, poolMissesDesc,
		poolEvictionsDesc, poolIdleClosesDesc, poolOpensDesc, poolOpenErrorsDesc, poolCloseErrorsDesc,
		poolOpenSecondsDesc, poolWaitSecondsDesc, sqliteMemoryDesc} {
		ch <- d
	}
}

func (c poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.pool.Stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(poolOpenDesc, float64(st.Open))
	gauge(poolLeasedDesc, float64(st.Leased))
	counter(poolHitsDesc, float64(st.Hits))
	counter(poolMissesDesc, float64(st.Misses))
	counter(poolEvictionsDesc, float64(st.Evictions))
	counter(poolIdleClosesDesc, float64(st.IdleCloses))
	counter(poolOpensDesc, float64(st.Opens))
	counter(poolOpenErrorsDesc, float64(st.OpenErrors))
	counter(poolCloseErrorsDesc, float64(st.CloseErrors))
	counter(poolOpenSecondsDesc, st.OpenTime.Seconds())
	counter(poolWaitSecondsDesc, st.WaitTime.Seconds())
	gauge(sqliteMemoryDesc, float64(tenantstore.SQLiteMemory()))
}

// backupCollector reports the backup scheduler's counters.
type backupCollector struct{ b *tenantstore.Backups }

var (
	backupCyclesDesc = prometheus.NewDesc("runmerge_backup_cycles_total",
		"Backup cycles run.", nil, nil)
	backupSnapshotsDesc = prometheus.NewDesc("runmerge_backup_snapshots_total",
		"Tenant snapshots made.", nil, nil)
	backupFailuresDesc = prometheus.NewDesc("runmerge_backup_failures_total",
		"Tenant snapshots that failed after every retry of their cycle; the next cycle tries again.", nil, nil)
	backupRetriesDesc = prometheus.NewDesc("runmerge_backup_retries_total",
		"Snapshot attempts that failed and were retried.", nil, nil)
	backupPendingDesc = prometheus.NewDesc("runmerge_backup_pending_snapshots",
		"Snapshots still to make in the current cycle.", nil, nil)
	backupLastSuccessDesc = prometheus.NewDesc("runmerge_backup_last_success_timestamp_seconds",
		"When the last snapshot was made, as a Unix time; 0 before the first.", nil, nil)
	backupCycleSecondsDesc = prometheus.NewDesc("runmerge_backup_cycle_duration_seconds",
		"How long the last complete backup cycle took.", nil, nil)
)

func (c backupCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{backupCyclesDesc, backupSnapshotsDesc, backupFailuresDesc,
		backupRetriesDesc, backupPendingDesc, backupLastSuccessDesc, backupCycleSecondsDesc} {
		ch <- d
	}
}

func (c backupCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.b.Stats()
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(backupCyclesDesc, st.Cycles)
	counter(backupSnapshotsDesc, st.Snapshots)
	counter(backupFailuresDesc, st.Failures)
	counter(backupRetriesDesc, st.Retries)
	ch <- prometheus.MustNewConstMetric(backupPendingDesc, prometheus.GaugeValue, float64(st.Pending))
	var last float64
	if !st.LastSuccess.IsZero() {
		last = float64(st.LastSuccess.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(backupLastSuccessDesc, prometheus.GaugeValue, last)
	ch <- prometheus.MustNewConstMetric(backupCycleSecondsDesc, prometheus.GaugeValue, st.CycleTime.Seconds())
}
