package node

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/procfs"
)

// The kubelet's /metrics/resource: what metrics-server scrapes for
// kubectl top and the HorizontalPodAutoscaler. A container's usage is that
// of its process group (every container is started as a group leader, see
// package proc), read from /proc at scrape time:
//   - CPU: user+system time of the live members plus the time of children
//     they reaped, in seconds (clock-tick precision);
//   - memory working set: the members' resident set. The kubelet subtracts
//     inactive file pages from the cgroup's usage; without a cgroup per
//     container, resident memory is the closest measure.
//
// Nodes share the host, so each reports the host's busy CPU time and used
// memory (MemTotal - MemAvailable): never zero, which metrics-server
// requires of a node. Samples carry the scrape time, as the kubelet's do.

var (
	containerLabels = []string{"container", "pod", "namespace"}
	podLabels       = []string{"pod", "namespace"}

	nodeCPUDesc = prometheus.NewDesc("node_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the node in core-seconds", nil, nil)
	nodeMemDesc = prometheus.NewDesc("node_memory_working_set_bytes",
		"Current working set of the node in bytes", nil, nil)
	containerCPUDesc = prometheus.NewDesc("container_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the container in core-seconds", containerLabels, nil)
	containerMemDesc = prometheus.NewDesc("container_memory_working_set_bytes",
		"Current working set of the container in bytes", containerLabels, nil)
	containerStartDesc = prometheus.NewDesc("container_start_time_seconds",
		"Start time of the container since unix epoch in seconds", containerLabels, nil)
	podCPUDesc = prometheus.NewDesc("pod_cpu_usage_seconds_total",
		"Cumulative cpu time consumed by the pod in core-seconds", podLabels, nil)
	podMemDesc = prometheus.NewDesc("pod_memory_working_set_bytes",
		"Current working set of the pod in bytes", podLabels, nil)
	scrapeErrorDesc = prometheus.NewDesc("resource_scrape_error",
		"1 if there was an error while getting container metrics, 0 otherwise", nil, nil)
)

// userHZ is the unit of the times in /proc/<pid>/stat on Linux.
const userHZ = 100

// resourceMetrics collects the usage of one node's containers.
type resourceMetrics struct {
	a    *Agent
	node string
	proc procfs.FS
}

// resourceMetricsHandler serves the node's /metrics/resource.
func (a *Agent) resourceMetricsHandler(node string) (http.Handler, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(&resourceMetrics{a: a, node: node, proc: fs}); err != nil {
		return nil, err
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

func (m *resourceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{nodeCPUDesc, nodeMemDesc, containerCPUDesc, containerMemDesc,
		containerStartDesc, podCPUDesc, podMemDesc, scrapeErrorDesc} {
		ch <- d
	}
}

// runningContainer is a container of this node with a live process.
type runningContainer struct {
	namespace, pod, name string
	pgid                 int
	started              time.Time
}

// usage is what a process group used.
type usage struct {
	cpuSeconds float64
	memBytes   float64
}

func (m *resourceMetrics) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	emit := func(desc *prometheus.Desc, kind prometheus.ValueType, v float64, labels ...string) {
		ch <- prometheus.NewMetricWithTimestamp(now, prometheus.MustNewConstMetric(desc, kind, v, labels...))
	}
	scrapeError := 0.0
	if cpu, mem, err := m.host(); err == nil {
		emit(nodeCPUDesc, prometheus.CounterValue, cpu)
		emit(nodeMemDesc, prometheus.GaugeValue, mem)
	} else {
		scrapeError = 1
	}

	containers := m.containers()
	groups, err := m.groups()
	if err != nil {
		scrapeError = 1
	}
	type podKey struct{ namespace, name string }
	pods := map[podKey]usage{}
	for _, c := range containers {
		u, ok := groups[c.pgid]
		if !ok {
			continue // exited since the list was taken
		}
		emit(containerCPUDesc, prometheus.CounterValue, u.cpuSeconds, c.name, c.pod, c.namespace)
		emit(containerMemDesc, prometheus.GaugeValue, u.memBytes, c.name, c.pod, c.namespace)
		emit(containerStartDesc, prometheus.GaugeValue, float64(c.started.UnixNano())/1e9, c.name, c.pod, c.namespace)
		k := podKey{c.namespace, c.pod}
		sum := pods[k]
		sum.cpuSeconds += u.cpuSeconds
		sum.memBytes += u.memBytes
		pods[k] = sum
	}
	for k, u := range pods {
		emit(podCPUDesc, prometheus.CounterValue, u.cpuSeconds, k.name, k.namespace)
		emit(podMemDesc, prometheus.GaugeValue, u.memBytes, k.name, k.namespace)
	}
	emit(scrapeErrorDesc, prometheus.GaugeValue, scrapeError)
}

// containers lists this node's containers that have a process.
func (m *resourceMetrics) containers() []runningContainer {
	m.a.mu.Lock()
	runners := make([]*podRunner, 0, len(m.a.pods))
	for _, r := range m.a.pods {
		if r.pod.Spec.NodeName == m.node {
			runners = append(runners, r)
		}
	}
	m.a.mu.Unlock()
	var out []runningContainer
	for _, r := range runners {
		for _, c := range r.containers {
			c.mu.Lock()
			if c.p != nil {
				out = append(out, runningContainer{
					namespace: r.pod.Namespace, pod: r.pod.Name, name: c.spec.Name,
					pgid: c.p.Pid(), started: c.startedAt,
				})
			}
			c.mu.Unlock()
		}
	}
	return out
}

// groups sums the usage of every process group on the host.
func (m *resourceMetrics) groups() (map[int]usage, error) {
	procs, err := m.proc.AllProcs()
	if err != nil {
		return nil, err
	}
	out := map[int]usage{}
	for _, p := range procs {
		st, err := p.Stat()
		if err != nil {
			continue // exited meanwhile
		}
		u := out[st.PGRP]
		u.cpuSeconds += float64(st.UTime+st.STime) / userHZ
		u.cpuSeconds += float64(st.CUTime+st.CSTime) / userHZ
		u.memBytes += float64(st.ResidentMemory())
		out[st.PGRP] = u
	}
	return out, nil
}

// host is the host's busy CPU time and used memory.
func (m *resourceMetrics) host() (cpuSeconds, memBytes float64, err error) {
	st, err := m.proc.Stat()
	if err != nil {
		return 0, 0, err
	}
	c := st.CPUTotal
	cpuSeconds = c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	mi, err := m.proc.Meminfo()
	if err != nil {
		return 0, 0, err
	}
	if mi.MemTotalBytes == nil || mi.MemAvailableBytes == nil {
		return cpuSeconds, 0, nil
	}
	return cpuSeconds, float64(*mi.MemTotalBytes - *mi.MemAvailableBytes), nil
}
