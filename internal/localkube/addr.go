package localkube

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
)

// Addresses, mirroring a real cluster's pod and service CIDRs inside 127.0.0.0/8, which Linux
// routes to lo with no setup:
//
//	pods      127.64.0.0/11  (127.64.x.y - 127.95.x.y)
//	services  127.96.0.0/11  (127.96.x.y - 127.127.x.y)
//
// Each Cluster picks one random /24 pair (the same block number in both ranges), so clusters
// in parallel processes almost never meet, and every address:port is checked free before use.
// Pods keep the manifest's container ports; Services keep their ports.
//
// Elsewhere (macOS and others route only 127.0.0.1) everything binds 127.0.0.1 and ports are
// mapped: each pod port and Service port gets a free port chosen by the OS.
const (
	podBase   = 64
	svcBase   = 96
	numBlocks = 32 * 256
)

type addressing struct {
	mapped bool // non-Linux: 127.0.0.1 with mapped ports
	block  int  // 0..numBlocks-1
	next   int  // next pod host number to try, 1..254
}

func newAddressing() *addressing {
	return &addressing{mapped: runtime.GOOS != "linux", block: rand.IntN(numBlocks), next: 1}
}

// reblock moves to another random block (after a Service address turned out to be taken).
func (a *addressing) reblock() { a.block = rand.IntN(numBlocks); a.next = 1 }

func (a *addressing) prefix(base int) string {
	return fmt.Sprintf("127.%d.%d.", base+a.block/256, a.block%256)
}

// serviceIP is the "ClusterIP" of the i-th Service.
func (a *addressing) serviceIP(i int) string {
	if a.mapped {
		return "127.0.0.1"
	}
	return a.prefix(svcBase) + strconv.Itoa(i+1)
}

// allocPod picks the next pod address whose ports are all free and not in inUse. In mapped
// mode it returns 127.0.0.1 and a free host port for each container port.
func (a *addressing) allocPod(ports []int32, inUse map[string]bool) (string, map[int32]int32, error) {
	if a.mapped {
		m := map[int32]int32{}
		for _, p := range ports {
			hp, err := freePort("127.0.0.1")
			if err != nil {
				return "", nil, err
			}
			m[p] = hp
		}
		return "127.0.0.1", m, nil
	}
	for range 254 {
		ip := a.prefix(podBase) + strconv.Itoa(a.next)
		a.next = a.next%254 + 1
		if inUse[ip] || !portsFree(ip, ports) {
			continue
		}
		return ip, nil, nil
	}
	return "", nil, fmt.Errorf("no free pod address left in %s0/24", a.prefix(podBase))
}

func portsFree(ip string, ports []int32) bool {
	for _, p := range ports {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(int(p))))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

func freePort(ip string) (int32, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port), nil
}

// dnsNames are the names cluster DNS resolves for a Service, as seen from a pod in podNS.
func dnsNames(svc, svcNS, podNS string) []string {
	names := []string{svc + "." + svcNS, svc + "." + svcNS + ".svc", svc + "." + svcNS + ".svc.cluster.local"}
	if svcNS == podNS {
		names = append(names, svc)
	}
	return names
}

// resolver rewrites Service references in env values to the Service's proxy address, as
// cluster DNS would resolve them. lookup maps (lower-case name, port) to host:port.
type resolver func(host string, port int) (string, bool)

// rewriteServiceRef rewrites a URL (scheme://host[:port]/...) or a host:port whose host names
// a Service; other values are returned unchanged. A bare name is left alone: it is ambiguous.
func rewriteServiceRef(v string, lookup resolver) string {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return v
		}
		port := u.Port()
		if port == "" {
			switch strings.ToLower(u.Scheme) {
			case "https":
				port = "443"
			default:
				port = "80"
			}
		}
		n, err := strconv.Atoi(port)
		if err != nil {
			return v
		}
		to, ok := lookup(strings.TrimSuffix(strings.ToLower(u.Hostname()), "."), n)
		if !ok {
			return v
		}
		u.Host = to
		return u.String()
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return v
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return v
	}
	if to, ok := lookup(strings.TrimSuffix(strings.ToLower(host), "."), n); ok {
		return to
	}
	return v
}

var errAddrInUse = errors.New("address in use")
