package handlers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runmerge/runmerge/webhook"
)

// webhookCollector reports the webhook dispatcher's work on /metrics.
type webhookCollector struct{ d *webhook.Dispatcher }

var (
	changesLoggedDesc = prometheus.NewDesc("runmerge_change_events_logged_total",
		"Change events taken from tenant files into the change log.", nil, nil)
	changeLogPositionDesc = prometheus.NewDesc("runmerge_change_log_position",
		"The position of the latest change event in the change log.", nil, nil)
	deliveryResultsDesc = prometheus.NewDesc("runmerge_webhook_attempts_total",
		"Webhook delivery attempts by result: succeeded, retried (failed, to be tried again), failed (for good).",
		[]string{"result"}, nil)
	deliveryQueuedDesc = prometheus.NewDesc("runmerge_webhook_deliveries_queued",
		"Deliveries held in memory waiting for a worker.", nil, nil)
	deliveryInFlightDesc = prometheus.NewDesc("runmerge_webhook_deliveries_in_flight",
		"Delivery attempts under way.", nil, nil)
	deliveryOldestDesc = prometheus.NewDesc("runmerge_webhook_oldest_due_seconds",
		"How long the longest-waiting due delivery (not yet taken by a worker) has been due; 0 when none is.",
		nil, nil)
)

func (c webhookCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{changesLoggedDesc, changeLogPositionDesc, deliveryResultsDesc,
		deliveryQueuedDesc, deliveryInFlightDesc, deliveryOldestDesc} {
		ch <- d
	}
}

func (c webhookCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.d.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(changesLoggedDesc, st.Logged)
	gauge(changeLogPositionDesc, float64(st.Position))
	counter(deliveryResultsDesc, st.Succeeded, "succeeded")
	counter(deliveryResultsDesc, st.Retried, "retried")
	counter(deliveryResultsDesc, st.Failed, "failed")
	gauge(deliveryQueuedDesc, float64(st.Queued))
	gauge(deliveryInFlightDesc, float64(st.InFlight))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if lag, err := c.d.DueLag(ctx); err == nil {
		gauge(deliveryOldestDesc, lag.Seconds())
	}
}
