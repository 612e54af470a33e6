package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"konductor.dev/sim/cluster/proc"
)

// probe drives the startup, readiness and liveness probes of one process
// instance of the container until ctx ends.
func (c *containerRun) probe(ctx context.Context, p *proc.Process) {
	if sp := c.spec.StartupProbe; sp != nil {
		ok := runProbeLoop(ctx, sp, c.check, func(success bool) bool {
			return success // stop at the first success
		}, false)
		if ctx.Err() != nil {
			return
		}
		if !ok {
			c.kill(p, "startup probe failed")
			return
		}
		c.mu.Lock()
		c.started = true
		c.mu.Unlock()
		c.r.markDirty()
	}
	if rp := c.spec.ReadinessProbe; rp != nil {
		go runProbeLoop(ctx, rp, c.check, func(ready bool) bool {
			c.setReady(p, ready)
			return false
		}, true)
	} else {
		c.setReady(p, true)
	}
	if lp := c.spec.LivenessProbe; lp != nil {
		ok := runProbeLoop(ctx, lp, c.check, func(alive bool) bool {
			return !alive // stop once the failure threshold is reached
		}, false)
		if ctx.Err() == nil && !ok {
			c.kill(p, "liveness probe failed")
		}
	}
}

func (c *containerRun) setReady(p *proc.Process, ready bool) {
	c.mu.Lock()
	changed := c.p == p && c.ready != ready
	if changed {
		c.ready = ready
	}
	c.mu.Unlock()
	if changed {
		c.r.markDirty()
	}
}

// runProbeLoop runs probe every period after the initial delay and reports
// each state change (after the success or failure threshold) to onResult,
// which returns true to end the loop. It returns the last reported state.
// With eager set, it probes every 100 ms until the first success, so a pod
// becomes ready as soon as it can serve rather than a period later (the
// kubelet has the same aim with its 1 s minimum period).
func runProbeLoop(ctx context.Context, pr *corev1.Probe, check func(context.Context, *corev1.Probe) error, onResult func(bool) bool, eager bool) bool {
	period := seconds(pr.PeriodSeconds, 10)
	successes, failures := 0, 0
	successThreshold := int(max(pr.SuccessThreshold, 1))
	failureThreshold := int(max(pr.FailureThreshold, 1))
	if pr.FailureThreshold == 0 {
		failureThreshold = 3
	}
	state, reported := false, false
	if !sleep(ctx, seconds(pr.InitialDelaySeconds, 0)) {
		return state
	}
	everSucceeded := false
	for {
		err := check(ctx, pr)
		if ctx.Err() != nil {
			return state
		}
		if err == nil {
			everSucceeded = true
			successes++
			failures = 0
			if successes >= successThreshold && (!state || !reported) {
				state, reported = true, true
				if onResult(true) {
					return true
				}
			}
		} else {
			failures++
			successes = 0
			if failures >= failureThreshold && (state || !reported) {
				state, reported = false, true
				if onResult(false) {
					return false
				}
			}
		}
		wait := period
		if eager && !everSucceeded {
			wait = min(period, 100*time.Millisecond)
		}
		if !sleep(ctx, wait) {
			return state
		}
	}
}

func seconds(v int32, def int) time.Duration {
	if v <= 0 {
		return time.Duration(def) * time.Second
	}
	return time.Duration(v) * time.Second
}

func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// check runs one probe against the container; nil means success.
func (c *containerRun) check(ctx context.Context, pr *corev1.Probe) error {
	ctx, cancel := context.WithTimeout(ctx, seconds(pr.TimeoutSeconds, 1))
	defer cancel()
	host := ""
	if sb := c.r.sandboxOrNil(); sb != nil {
		host = sb.IP.String()
	}
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		port, err := resolvePort(g.Port, c.spec)
		if err != nil {
			return err
		}
		if g.Host != "" {
			host = g.Host
		}
		return httpProbe(ctx, probeURL(g.Scheme, host, port, g.Path), g.HTTPHeaders)
	case pr.TCPSocket != nil:
		port, err := resolvePort(pr.TCPSocket.Port, c.spec)
		if err != nil {
			return err
		}
		if pr.TCPSocket.Host != "" {
			host = pr.TCPSocket.Host
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	case pr.Exec != nil:
		return c.execProbe(ctx, pr.Exec.Command)
	case pr.GRPC != nil:
		return errors.New("gRPC probes are not supported by the process kubelet")
	}
	return errors.New("probe has no handler")
}

func probeURL(scheme corev1.URIScheme, host string, port int, path string) string {
	s := "http"
	if scheme == corev1.URISchemeHTTPS {
		s = "https"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := url.URL{Scheme: s, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	return u.String() + path
}

// probeTransport skips certificate checks as the kubelet does, and keeps no
// idle connections: a probe must see a fresh connect every time.
var probeTransport = &http.Transport{
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // as the kubelet
	DisableKeepAlives: true,
}

func httpProbe(ctx context.Context, target string, headers []corev1.HTTPHeader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/1.37")
	for _, h := range headers {
		req.Header.Set(h.Name, h.Value)
	}
	resp, err := (&http.Client{Transport: probeTransport}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", target, resp.Status)
	}
	return nil
}

// execProbe runs command inside the pod's network namespace; exit 0 is
// success.
func (c *containerRun) execProbe(ctx context.Context, probeCmd []string) error {
	if len(probeCmd) == 0 {
		return errors.New("exec probe has no command")
	}
	bin, err := c.r.a.cfg.Images.Resolve(c.spec.Image)
	if err != nil {
		return err
	}
	_, env, vars, err := c.commandLine()
	if err != nil {
		return err
	}
	probeArgv := command(bin, probeCmd, nil)
	cmd, err := c.wrap(probeArgv, vars)
	if err != nil {
		return err
	}
	cmd.Env = env
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		return err
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return ctx.Err()
	}
}

// resolvePort turns a numeric or named port into a number.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal <= 0 {
			return 0, fmt.Errorf("container %s probe: port %d is not valid", c.Name, port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil {
		return n, nil
	}
	return 0, fmt.Errorf("container %s probe: no port named %q", c.Name, port.StrVal)
}
