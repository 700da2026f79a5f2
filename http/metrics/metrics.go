// Package metrics exposes the service's Prometheus metrics: HTTP requests
// by route and status with their latency, and, read at every scrape, the
// event store's head and each read model's position and lag.
package metrics

import (
	"context"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coinledger/coinledger/projections"
)

// Source is what a scrape reads: the store's head and the read models.
type Source interface {
	Head(ctx context.Context) (uint64, error)
	Status(ctx context.Context) ([]projections.Status, error)
}

// Metrics is a registry with the service's metrics.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// Leadership is what the leadership gauges read: the roles this instance
// stands for, and the elector that says which it leads.
type Leadership struct {
	Elector interface{ Self() projections.Instance }
	Roles   []string
}

var leaderDesc = prometheus.NewDesc("coinledger_leader",
	"1 when this instance leads the role (a singleton worker), 0 while another does.", []string{"role"}, nil)

func (l Leadership) Describe(ch chan<- *prometheus.Desc) { ch <- leaderDesc }

func (l Leadership) Collect(ch chan<- prometheus.Metric) {
	held := l.Elector.Self().Roles
	for _, r := range l.Roles {
		ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, is(slices.Contains(held, r)), r)
	}
}

// New registers the metrics; src is read at every scrape (bounded to 2 s),
// lead at every scrape too.
func New(version string, src Source, lead Leadership) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coinledger_http_requests_total", Help: "HTTP requests by method, route and status.",
		}, []string{"method", "route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coinledger_http_request_duration_seconds", Help: "HTTP request latency by method and route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method", "route"}),
	}
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "coinledger_build_info", Help: "Always 1; the version is a label.",
		ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.duration, build, &storeCollector{src: src}, lead,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Middleware counts and times requests by route pattern (never by raw
// path: wallet names and ids would explode the label set).
func (m *Metrics) Middleware() echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			if err != nil {
				c.Error(err) // writes the problem document, so the status is known
			}
			route := c.Path()
			if route == "" {
				route = "unmatched"
			}
			method := c.Request().Method
			m.requests.WithLabelValues(method, route, strconv.Itoa(c.Response().Status)).Inc()
			m.duration.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			return nil
		}
	}
}

var (
	headDesc  = prometheus.NewDesc("coinledger_event_store_head", "Position of the newest event.", nil, nil)
	posDesc   = prometheus.NewDesc("coinledger_projection_position", "Position a read model has applied.", []string{"projection"}, nil)
	lagDesc   = prometheus.NewDesc("coinledger_projection_lag", "Events a read model is behind the store.", []string{"projection"}, nil)
	upDesc    = prometheus.NewDesc("coinledger_projection_running", "1 when the read model's runner runs.", []string{"projection"}, nil)
	stateDesc = prometheus.NewDesc("coinledger_projection_state",
		"1 for the read model's current state (catching_up, running, retrying, parked, stopped, standby), 0 for the others.",
		[]string{"projection", "state"}, nil)
	parkedDesc = prometheus.NewDesc("coinledger_projection_parked",
		"1 when the read model is parked at an event that keeps failing (see /api/v1/status).", []string{"projection"}, nil)
	errorsDesc = prometheus.NewDesc("coinledger_projection_errors_total",
		"Failed attempts to apply (or read) the read model's events.", []string{"projection"}, nil)
	readyDesc = prometheus.NewDesc("coinledger_projection_ready",
		"1 once the read model or follower has caught up to the head the store had at start.", []string{"projection", "kind"}, nil)
)

// states are the values of coinledger_projection_state's state label.
var states = []projections.State{projections.StateCatchingUp, projections.StateRunning, projections.StateRetrying,
	projections.StateParked, projections.StateStopped, projections.StateStandby}

// storeCollector reads the store and the read models at scrape time.
type storeCollector struct{ src Source }

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- headDesc
	ch <- posDesc
	ch <- lagDesc
	ch <- upDesc
	ch <- stateDesc
	ch <- parkedDesc
	ch <- errorsDesc
	ch <- readyDesc
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if head, err := c.src.Head(ctx); err == nil {
		ch <- prometheus.MustNewConstMetric(headDesc, prometheus.GaugeValue, float64(head))
	}
	st, err := c.src.Status(ctx)
	if err != nil {
		return
	}
	for _, s := range st {
		ch <- prometheus.MustNewConstMetric(posDesc, prometheus.GaugeValue, float64(s.Position), s.Name)
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(s.Lag), s.Name)
		up := 0.0
		if s.Running {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.Name)
		for _, state := range states {
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, is(s.State == state), s.Name, string(state))
		}
		ch <- prometheus.MustNewConstMetric(parkedDesc, prometheus.GaugeValue, is(s.State == projections.StateParked), s.Name)
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(s.Failures), s.Name)
		ch <- prometheus.MustNewConstMetric(readyDesc, prometheus.GaugeValue, is(s.Ready), s.Name, s.Kind)
	}
}

func is(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
