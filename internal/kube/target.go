package kube

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// parseTarget checks that a --target is an absolute http(s) URL and returns its host and port
// (the scheme's default port when none is written).
func parseTarget(target string) (host string, port int, err error) {
	u, err := url.Parse(target)
	if err != nil {
		return "", 0, fmt.Errorf("target %q is not a URL: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", 0, fmt.Errorf("target %q must start with http:// or https://", target)
	}
	if u.Hostname() == "" {
		return "", 0, fmt.Errorf("target %q has no host", target)
	}
	port = 80
	if u.Scheme == "https" {
		port = 443
	}
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("target %q has an invalid port %q", target, p)
		}
	}
	return u.Hostname(), port, nil
}

// TargetWarning checks that target reaches svc through the Service itself: its ClusterIP(s) and
// port, a LoadBalancer ingress IP or hostname and port, or a NodePort on any host (node
// addresses are not cheap to know, so a matching NodePort is taken as a match whatever the
// host). It returns "" on a match, else a one-line warning for the output and the report: a
// `kubectl port-forward` looks like any localhost URL, but it pins one pod and bypasses the
// Service, so a rolling restart measured through it means little.
func TargetWarning(target string, svc *corev1.Service) string {
	host, port, err := parseTarget(target)
	if err != nil {
		return err.Error()
	}
	var known []string
	for _, p := range svc.Spec.Ports {
		if p.NodePort != 0 {
			if int(p.NodePort) == port {
				return ""
			}
			known = append(known, fmt.Sprintf("*:%d (NodePort)", p.NodePort))
		}
		ips := svc.Spec.ClusterIPs
		if len(ips) == 0 && svc.Spec.ClusterIP != "" {
			ips = []string{svc.Spec.ClusterIP}
		}
		for _, ip := range ips {
			if ip == corev1.ClusterIPNone {
				continue
			}
			if int(p.Port) == port && sameHost(host, ip) {
				return ""
			}
			known = append(known, net.JoinHostPort(ip, strconv.Itoa(int(p.Port))))
		}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			for _, h := range []string{ing.IP, ing.Hostname} {
				if h == "" {
					continue
				}
				if int(p.Port) == port && sameHost(host, h) {
					return ""
				}
				known = append(known, net.JoinHostPort(h, strconv.Itoa(int(p.Port))))
			}
		}
	}
	return fmt.Sprintf("target %s matches no address of Service %s (%s); a kubectl port-forward pins one pod and bypasses the Service, so the result may be meaningless",
		target, svc.Name, strings.Join(known, ", "))
}

// defaultTarget is the URL to use when none was given: a LoadBalancer ingress if the Service has
// one (Docker Desktop publishes those on localhost), else the ClusterIP, which only works where
// the host routes to the Service network (for example a single-node lab cluster).
func defaultTarget(svc *corev1.Service) (string, error) {
	if len(svc.Spec.Ports) == 0 {
		return "", fmt.Errorf("Service %s has no port; pass --target", svc.Name)
	}
	port := strconv.Itoa(int(svc.Spec.Ports[0].Port))
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			return "http://" + net.JoinHostPort(ing.IP, port) + "/", nil
		}
		if ing.Hostname != "" {
			return "http://" + net.JoinHostPort(ing.Hostname, port) + "/", nil
		}
	}
	if ip := svc.Spec.ClusterIP; ip != "" && ip != corev1.ClusterIPNone {
		return "http://" + net.JoinHostPort(ip, port) + "/", nil
	}
	return "", fmt.Errorf("Service %s has no ClusterIP or LoadBalancer address; pass --target", svc.Name)
}

// sameHost compares hosts literally (IPs by value), except that localhost, 127.0.0.1 and ::1
// are one host: Docker Desktop reports its LoadBalancer as "localhost" while users type
// 127.0.0.1.
func sameHost(a, b string) bool {
	if strings.EqualFold(a, b) {
		return true
	}
	if isLoopback(a) && isLoopback(b) {
		return true
	}
	ipA, ipB := net.ParseIP(a), net.ParseIP(b)
	return ipA != nil && ipB != nil && ipA.Equal(ipB)
}

func isLoopback(h string) bool {
	switch strings.ToLower(h) {
	case "localhost", "127.0.0.1", "::1":
		return true
	}
	return false
}
