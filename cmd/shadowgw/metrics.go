package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shadowgw/shadowgw/cmd/internal/config"
	"github.com/shadowgw/shadowgw/uplink"
)

// The monitor sidecar serves, on [metrics] listen:
//
//	/metrics  Prometheus text format, read from the components' Stats at scrape time
//	/healthz  200 while the process serves HTTP; below "ok", a damaged store file replaced at start
//	/readyz   200 while the gateway accepts devices and its store commits; 503 and why if not
//	/status   the JSON that `shadowgw status` prints
//
// Nothing here runs per message: the collector and /status read the components'
// counters when asked, and a sampler reads them every sampleEvery for the rates.

// newMonitorSidecar returns the monitor, or nil when [metrics] listen is empty.
func newMonitorSidecar(cfg config.Config) (sidecar, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	return func(ctx context.Context, p parts) error {
		return runMonitor(ctx, cfg.Metrics.Listen, p)
	}, nil
}

// runMonitor serves HTTP on addr until ctx is done. A listener that cannot be opened is
// logged and leaves the gateway running without the endpoint: devices and the uplink
// matter more than the figures about them.
func runMonitor(ctx context.Context, addr string, p parts) error {
	log := p.Log.With("component", "metrics")
	m := newMonitor(p, time.Now)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		log.Error("metrics, health and status endpoint not started: `shadowgw status` will not work", "addr", addr, "err", err)
		return nil
	}
	srv := &http.Server{
		Handler:           m.handler(),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	log.Info("serving metrics, health and status", "addr", ln.Addr().String())

	var wg sync.WaitGroup
	wg.Go(func() { m.sample(ctx) })
	served := make(chan error, 1)
	wg.Go(func() { served <- srv.Serve(ln) })
	select {
	case <-ctx.Done():
	case err := <-served:
		log.Error("metrics, health and status endpoint stopped", "err", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	wg.Wait()
	return nil
}

// handler returns the monitor's HTTP routes.
func (m *monitor) handler() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collector{m},
		mqttCollector{m.p.MQTT},
		commandCollector{m}, // devicecommands_metrics.go
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		// Alive is alive; what needs attention is said below it, as in the status.
		var b strings.Builder
		b.WriteString("ok\n")
		if rec := m.p.Store.Stats().Recovered; rec != nil {
			b.WriteString("problem: " + recoveredProblem(rec) + "\n")
		}
		plain(w, http.StatusOK, b.String())
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if why := m.notReady(); why != "" {
			plain(w, http.StatusServiceUnavailable, "not ready: "+why+"\n")
			return
		}
		plain(w, http.StatusOK, "ready\n")
	})
	mux.HandleFunc("GET /status", m.serveStatus)
	queueRoutes(mux, m.p.Store)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		plain(w, http.StatusOK, "shadowgw "+versionString()+"\n/metrics  Prometheus metrics\n/healthz  liveness\n/readyz   readiness\n/status   status as JSON (shadowgw status)\n/queue/   queued messages and dead letters (shadowgw queue)\n")
	})
	return mux
}

func plain(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write([]byte(body))
}

// collector is the Prometheus collector of the gateway's own metrics. It reads the
// components' counters at scrape time; nothing is updated per message.
type collector struct{ m *monitor }

// Metric descriptions. Counters reset when the gateway restarts, as Prometheus expects.
var (
	descBuildInfo = prometheus.NewDesc("shadowgw_build_info",
		"Always 1; the labels name the gateway's version and the Go version it was built with.",
		[]string{"version", "goversion"}, nil)

	descEdgeConnections = prometheus.NewDesc("shadowgw_edge_connections",
		"Device connections open now.", nil, nil)
	descEdgeConnectionsTotal = prometheus.NewDesc("shadowgw_edge_connections_total",
		"Device connections accepted.", nil, nil)
	descEdgeRefused = prometheus.NewDesc("shadowgw_edge_connections_refused_total",
		"Device connections refused by the connection limits or authentication.", nil, nil)
	descEdgeMessages = prometheus.NewDesc("shadowgw_edge_messages_received_total",
		"Messages received from devices and stored durably.", nil, nil)
	descEdgeBytes = prometheus.NewDesc("shadowgw_edge_received_bytes_total",
		"Payload bytes of the messages received from devices and stored.", nil, nil)
	descEdgeRejected = prometheus.NewDesc("shadowgw_edge_messages_rejected_total",
		"Messages answered rejected: malformed, or not storable.", nil, nil)
	descEdgeDropped = prometheus.NewDesc("shadowgw_edge_messages_dropped_total",
		"Pre-settled messages that could not be stored and were lost.", nil, nil)

	descStoreMessages = prometheus.NewDesc("shadowgw_store_messages",
		"Messages stored and waiting to be forwarded (the backlog), per route.", []string{"route"}, nil)
	descStoreBytes = prometheus.NewDesc("shadowgw_store_bytes",
		"Payload bytes of the backlog, per route.", []string{"route"}, nil)
	descStoreOldest = prometheus.NewDesc("shadowgw_store_oldest_message_age_seconds",
		"Age of the oldest message in the route's backlog; 0 when it is empty.", []string{"route"}, nil)
	descStoreDropped = prometheus.NewDesc("shadowgw_store_messages_dropped_total",
		"Queued messages deleted to make room for newer ones (when-full = drop-oldest), per route.", []string{"route"}, nil)
	descStoreFull = prometheus.NewDesc("shadowgw_store_full",
		"1 while the route takes no messages, so devices sending to it get no credit; else 0.", []string{"route"}, nil)
	descStoreRecovered = prometheus.NewDesc("shadowgw_store_recovered",
		"1 when the store file was found damaged at start and replaced by a fresh one (see shadowgw status); else 0.", nil, nil)
	descStoreDead = prometheus.NewDesc("shadowgw_store_dead_letters",
		"Messages the cloud refused, kept in the dead-letter area.", nil, nil)
	descStoreDeadBytes = prometheus.NewDesc("shadowgw_store_dead_letter_bytes",
		"Payload bytes of the dead letters.", nil, nil)
	descStoreAckLatency = prometheus.NewDesc("shadowgw_store_ack_latency_seconds",
		"How long messages waited for the commit that made them durable, over the last one to two minutes, by quantile (1: the longest; power-of-two buckets: at most twice the true value).", []string{"quantile"}, nil)
	descStoreCommits = prometheus.NewDesc("shadowgw_store_commits_total",
		"Store transactions committed and synced to disk.", nil, nil)
	descStoreCommitErrors = prometheus.NewDesc("shadowgw_store_commit_errors_total",
		"Store transactions that failed (disk full, I/O error).", nil, nil)
	descStoreFile = prometheus.NewDesc("shadowgw_store_file_bytes",
		"Size of the store's file; it never shrinks, freed pages are reused.", nil, nil)

	descDiskFree = prometheus.NewDesc("shadowgw_disk_free_bytes",
		"Bytes available to the gateway on the file system of the data directory.", nil, nil)
	descDiskSize = prometheus.NewDesc("shadowgw_disk_size_bytes",
		"Size of the file system of the data directory.", nil, nil)
	descDiskWritten = prometheus.NewDesc("shadowgw_disk_written_bytes_total",
		"Bytes the gateway process caused to be written to storage (write_bytes of /proc/self/io), for SD-card wear.", nil, nil)

	descUplinkUp = prometheus.NewDesc("shadowgw_uplink_up",
		"1 while the connection to the cloud broker works, else 0.", nil, nil)
	descUplinkState = prometheus.NewDesc("shadowgw_uplink_state",
		"1 for the uplink's current state, 0 for the others.", []string{"state"}, nil)
	descUplinkFailures = prometheus.NewDesc("shadowgw_uplink_connection_failures",
		"Consecutive failed connection attempts; 0 once connected.", nil, nil)
	descUplinkForwarded = prometheus.NewDesc("shadowgw_uplink_messages_forwarded_total",
		"Messages the cloud broker accepted.", nil, nil)
	descUplinkDead = prometheus.NewDesc("shadowgw_uplink_messages_dead_lettered_total",
		"Messages the cloud refused or that could not be sent, moved to the dead-letter area.", nil, nil)
	descUplinkReleased = prometheus.NewDesc("shadowgw_uplink_messages_released_total",
		"Messages the cloud released or modified; they are sent again later.", nil, nil)
	descUplinkInFlight = prometheus.NewDesc("shadowgw_uplink_messages_in_flight",
		"Messages sent to the cloud and awaiting its outcome.", nil, nil)

	descReady = prometheus.NewDesc("shadowgw_ready",
		"1 while /readyz reports ready: the device listener is up and the store commits.", nil, nil)
)

var uplinkStates = []uplink.State{uplink.StateStopped, uplink.StateConnecting, uplink.StateConnected, uplink.StateWaiting}

// Describe implements prometheus.Collector.
func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descBuildInfo,
		descEdgeConnections, descEdgeConnectionsTotal, descEdgeRefused, descEdgeMessages, descEdgeBytes, descEdgeRejected, descEdgeDropped,
		descStoreMessages, descStoreBytes, descStoreOldest, descStoreDropped, descStoreFull, descStoreRecovered, descStoreDead, descStoreDeadBytes, descStoreAckLatency, descStoreCommits, descStoreCommitErrors, descStoreFile,
		descDiskFree, descDiskSize, descDiskWritten,
		descUplinkUp, descUplinkState, descUplinkFailures, descUplinkForwarded, descUplinkDead, descUplinkReleased, descUplinkInFlight,
		descReady, descDirectInFlight, descDirectOutcomes, descDirectLinks,
		descDirectCmdInFlight, descDirectCmdOutcomes, descDirectCmdReceived, descDirectCmdLinks,
	} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge(descBuildInfo, 1, versionString(), runtime.Version())

	e := m.p.Edge.Stats()
	gauge(descEdgeConnections, float64(e.Connections))
	counter(descEdgeConnectionsTotal, e.ConnectionsTotal)
	counter(descEdgeRefused, e.Refused)
	counter(descEdgeMessages, e.Messages)
	counter(descEdgeBytes, e.Bytes)
	counter(descEdgeRejected, e.Rejected)
	counter(descEdgeDropped, e.Dropped)

	s := m.p.Store.Stats()
	oldest, oldestErr := m.p.Store.Oldest()
	if oldestErr != nil {
		ch <- prometheus.NewInvalidMetric(descStoreOldest, oldestErr)
	}
	for _, r := range s.Routes {
		gauge(descStoreMessages, float64(r.Messages), r.Name)
		gauge(descStoreBytes, float64(r.Bytes), r.Name)
		if oldestErr == nil {
			gauge(descStoreOldest, age(m.now(), oldest[r.Name]).Seconds(), r.Name)
		}
		counter(descStoreDropped, r.Dropped, r.Name)
		gauge(descStoreFull, flag(r.FullReason != ""), r.Name)
	}
	gauge(descStoreRecovered, flag(s.Recovered != nil))
	gauge(descStoreDead, float64(s.DeadLetters))
	gauge(descStoreDeadBytes, float64(s.DeadLetterBytes))
	if l := s.AckLatency; l.Count > 0 {
		gauge(descStoreAckLatency, l.P50.Seconds(), "0.5")
		gauge(descStoreAckLatency, l.P99.Seconds(), "0.99")
		gauge(descStoreAckLatency, l.Max.Seconds(), "1")
	}
	counter(descStoreCommits, s.Commits)
	counter(descStoreCommitErrors, s.CommitErrors)
	if size, err := fileSize(m.p.Store.Path()); err == nil {
		gauge(descStoreFile, float64(size))
	}
	if free, size, err := diskSpace(m.dir); err == nil {
		gauge(descDiskFree, float64(free))
		gauge(descDiskSize, float64(size))
	}
	if n, err := readWriteBytes(); err == nil {
		counter(descDiskWritten, n)
	}

	if m.p.Uplink != nil {
		u := m.p.Uplink.Status()
		gauge(descUplinkUp, flag(u.State == uplink.StateConnected))
		for _, st := range uplinkStates {
			gauge(descUplinkState, flag(u.State == st), st.String())
		}
		gauge(descUplinkFailures, float64(u.Failures))
		counter(descUplinkForwarded, u.Forwarded)
		counter(descUplinkDead, u.DeadLettered)
		counter(descUplinkReleased, u.Released)
		gauge(descUplinkInFlight, float64(u.InFlight))
	}

	gauge(descReady, flag(m.notReady() == ""))
	collectDirect(ch, m.p)
}

// age returns how long ago t was, 0 for the zero Time or a time in the future.
func age(now, t time.Time) time.Duration {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return now.Sub(t)
}
