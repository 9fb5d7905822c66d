package sandbox

import (
	"encoding/binary"
	"fmt"
	"net"
	"strconv"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Service addresses inside a pod. A program that listens on all interfaces at port P takes P
// on every local address, the Service addresses included, so the shim cannot listen there.
// Instead, as kube-proxy does, a DNAT rule in the pod's own network namespace sends a
// connection for a Service address and port to a port the shim listens on at 127.0.0.1.

// redirect listens at 127.0.0.1 on a port the kernel picks for each Service address, and
// installs the DNAT rules. It returns the listeners by the Service address they stand for.
func redirect(addrs []string) (map[string]net.Listener, error) {
	if len(addrs) == 0 {
		return nil, nil
	}
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "gracelab"})
	chain := c.AddChain(&nftables.Chain{Name: "services", Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityNATDest})
	lns := map[string]net.Listener{}
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, a := range addrs {
		host, portText, err := net.SplitHostPort(a)
		ip := net.ParseIP(host).To4()
		port, perr := strconv.Atoi(portText)
		if err != nil || ip == nil || perr != nil || port <= 0 || port > 65535 {
			closeAll()
			return nil, fmt.Errorf("service address %q: want IPv4:port", a)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll()
			return nil, err
		}
		lns[a] = ln
		to := uint16(ln.Addr().(*net.TCPAddr).Port)
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}, // ip daddr
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ip},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}, // tcp dport
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: be16(uint16(port))},
			&expr.Immediate{Register: 1, Data: net.IPv4(127, 0, 0, 1).To4()},
			&expr.Immediate{Register: 2, Data: be16(to)},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}})
	}
	if err := c.Flush(); err != nil {
		closeAll()
		return nil, fmt.Errorf("installing the Service address rules (nftables): %w", err)
	}
	return lns, nil
}

func be16(v uint16) []byte {
	b := make([]byte, 2)
	binary.BigEndian.PutUint16(b, v)
	return b
}
