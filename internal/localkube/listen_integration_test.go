//go:build linux

package localkube

import (
	"strconv"
	"testing"
)

// TestIntegrationFixedPortOnAllInterfacesIsNamed: a program that ignores HOST and binds its
// port on all interfaces collides with the Service listening on that port (and with its
// other replica): Up fails with one line naming the pod, the port and the remedy.
func TestIntegrationFixedPortOnAllInterfacesIsNamed(t *testing.T) {
	integration(t)
	t.Parallel()
	a := app{name: "wildcard", replicas: 2, env: map[string]string{"POD_BIND": "all"}}
	upFails(t, a, "pod wildcard-", "could not listen on port 8080: it is taken", "$(POD_IP)", "sandboxes")
}

// TestIntegrationListeningElsewhereIsNamed: a program that listens on 127.0.0.1 instead of its
// pod's address is caught as soon as it listens, not after the ready timeout.
func TestIntegrationListeningElsewhereIsNamed(t *testing.T) {
	integration(t)
	t.Parallel()
	port, err := freePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a := app{name: "loopback", replicas: 1, port: int(port), env: map[string]string{"POD_BIND": "localhost"}}
	upFails(t, a, "pod loopback-", "listens on 127.0.0.1:"+strconv.Itoa(int(port))+", not at its address", "$(POD_IP)")
}
