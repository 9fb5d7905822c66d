package localkube

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Probes and lifecycle hooks as the kubelet runs them: httpGet, tcpSocket, exec and sleep.

// probeLoop runs a probe as the kubelet's prober worker does: first at initialDelaySeconds
// after the container started, then every periodSeconds, each bounded by timeoutSeconds;
// report gets a change after successThreshold successes or failureThreshold failures in a row.
// Readiness starts as failed, liveness as succeeded.
func (c *Cluster) probeLoop(ctx context.Context, p *pod, inst *container, pr *corev1.Probe, report func(ok bool, msg string)) {
	period := seconds(pr.PeriodSeconds, 10)
	timeout := seconds(pr.TimeoutSeconds, 1)
	success := orInt(pr.SuccessThreshold, 1)
	failure := orInt(pr.FailureThreshold, 3)
	start := inst.started.Add(time.Duration(pr.InitialDelaySeconds) * time.Second)
	t := time.NewTimer(time.Until(start))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-t.C:
	}
	tick := time.NewTicker(period)
	defer tick.Stop()
	var okRun, failRun int32
	for {
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.probeOnce(pctx, p, inst.ct, pr.ProbeHandler)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
			if okRun >= success {
				report(true, "ok")
			}
		} else {
			okRun, failRun = 0, failRun+1
			if failRun >= failure {
				report(false, err.Error())
			} else {
				c.mu.Lock()
				p.lastProbe = err.Error()
				c.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func seconds(v int32, def int32) time.Duration {
	if v <= 0 {
		v = def
	}
	return time.Duration(v) * time.Second
}

func orInt(v, def int32) int32 {
	if v <= 0 {
		return def
	}
	return v
}

func (c *Cluster) probeOnce(ctx context.Context, p *pod, ct *ctr, h corev1.ProbeHandler) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(ctx, p, ct, h.HTTPGet)
	case h.TCPSocket != nil:
		port, _ := resolvePort(h.TCPSocket.Port, ct.spec)
		addr := p.addr(port)
		if h.TCPSocket.Host != "" {
			addr = net.JoinHostPort(h.TCPSocket.Host, strconv.Itoa(int(port)))
		}
		conn, err := p.dial(ctx, addr)
		if err != nil {
			return err
		}
		return conn.Close()
	case h.Exec != nil:
		return c.execIn(ctx, p, ct, h.Exec.Command)
	}
	return errors.New("no probe handler")
}

// runHook runs a lifecycle handler (postStart, preStop) of container ct.
func (c *Cluster) runHook(ctx context.Context, p *pod, ct *ctr, h corev1.LifecycleHandler) error {
	switch {
	case h.HTTPGet != nil:
		return c.httpGet(ctx, p, ct, h.HTTPGet)
	case h.Exec != nil:
		return c.execIn(ctx, p, ct, h.Exec.Command)
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep cut short: %w", context.Cause(ctx))
		}
	}
	return errors.New("no handler")
}

func describeHandler(h *corev1.LifecycleHandler) string {
	switch {
	case h.HTTPGet != nil:
		return "httpGet " + h.HTTPGet.Path
	case h.Exec != nil:
		return "exec " + strings.Join(h.Exec.Command, " ")
	case h.Sleep != nil:
		return "sleep " + strconv.FormatInt(h.Sleep.Seconds, 10) + "s"
	}
	return ""
}

// probeClient is the kubelet's HTTP prober: no keep-alive (a probe must not hold a connection
// open on the pod), redirects not followed (a 3xx is a success), TLS not verified.
var probeClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, Proxy: nil},
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	},
}

// sandboxProbeClient is probeClient dialling inside the pod's sandbox.
func (p *pod) sandboxProbeClient() *http.Client {
	t := probeClient.Transport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) { return p.dial(ctx, addr) }
	return &http.Client{Transport: t, CheckRedirect: probeClient.CheckRedirect}
}

func (c *Cluster) httpGet(ctx context.Context, p *pod, ct *ctr, g *corev1.HTTPGetAction) error {
	port, _ := resolvePort(g.Port, ct.spec)
	host := p.addr(port)
	if g.Host != "" {
		host = net.JoinHostPort(g.Host, strconv.Itoa(int(port)))
	}
	scheme := "http"
	if g.Scheme == corev1.URISchemeHTTPS {
		scheme = "https"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+host+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "kube-probe/localkube")
	for _, h := range g.HTTPHeaders {
		req.Header.Add(h.Name, h.Value)
	}
	client := probeClient
	if p.sbClient != nil {
		client = p.sbClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("HTTP probe failed with statuscode: %d", resp.StatusCode)
	}
	return nil
}

// execIn runs a command "in the container" ct: with its environment, in its own process
// group, killed with its group when ctx ends.
func (c *Cluster) execIn(ctx context.Context, p *pod, ct *ctr, argv []string) error {
	if p.sb != nil {
		return c.execInSandbox(ctx, p, ct, argv)
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = ct.env
	cmd.Stdout = &limitedWriter{w: &out, n: 1024}
	cmd.Stderr = cmd.Stdout
	cmd.WaitDelay = time.Second
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, sigKILL) }
	if err := c.spawn.start(cmd); err != nil {
		return err
	}
	err := cmd.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("command timed out: %w", context.Cause(ctx))
	}
	if err != nil {
		if s := strings.TrimSpace(out.String()); s != "" {
			return fmt.Errorf("%w: %s", err, lastLine(s))
		}
		return err
	}
	return nil
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if l.n > 0 {
		k := min(len(b), l.n)
		l.w.Write(b[:k])
		l.n -= k
	}
	return len(b), nil
}
