//go:build linux

package localkube

import "testing"

func TestOwnerMarkRoundTrip(t *testing.T) {
	o := procOwner{PID: 4242, Start: 123456789, Boot: "0f1e2d3c-aaaa-bbbb-cccc-0123456789ab", PIDNS: "pid:[4026531836]"}
	got, err := parseOwnerMark(o.mark())
	if err != nil || got != o {
		t.Fatalf("parseOwnerMark(mark()) = %+v, %v; want %+v", got, err, o)
	}
	for _, bad := range []string{
		"",
		"pid 1\nstart 2\nboot b\npidns p\n", // no version line
		ownerMarkVersion + "\npid 1\nstart 2\nboot b\n",               // truncated while written
		ownerMarkVersion + "\npid x\nstart 2\nboot b\npidns p\n",      // not a PID
		ownerMarkVersion + "\npid 0\nstart 2\nboot b\npidns p\n",      // no process
		ownerMarkVersion + "\npid 1\nstart -2\nboot b\npidns p\n",     // not a start time
		ownerMarkVersion + "\npid 1\nstart 2\nboot b\npidns p\nx y\n", // unknown line
	} {
		if o, err := parseOwnerMark(bad); err == nil {
			t.Errorf("parseOwnerMark(%q) = %+v, want an error", bad, o)
		}
	}
}

func TestMountInside(t *testing.T) {
	mounts := []string{"/", "/proc", "/tmp/gracelab-pods-10"}
	for _, m := range []string{`/tmp/gracelab-pods-3/a\040b`, `/x\134y`} { // as mountinfo writes them
		mounts = append(mounts, unescapeMountinfo(m))
	}
	for dir, want := range map[string]string{
		"/tmp/gracelab-pods-1":  "", // pods-10 is not inside
		"/tmp/gracelab-pods-10": "/tmp/gracelab-pods-10",
		"/tmp/gracelab-pods-3":  "/tmp/gracelab-pods-3/a b",
		`/x\y`:                  `/x\y`,
	} {
		if got := mountInside(dir, mounts); got != want {
			t.Errorf("mountInside(%q) = %q, want %q", dir, got, want)
		}
	}
}
