//go:build linux

package sandbox_test

import (
	"context"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/gracelab/gracelab/internal/sandbox"
)

// BenchmarkSandboxStart measures what a pod sandbox adds to a pod's start: the shim re-executed
// into new namespaces, loopback up, mounts, one process started in it and reaped.
func BenchmarkSandboxStart(b *testing.B) {
	exe, _ := os.Executable()
	for b.Loop() {
		dir := b.TempDir()
		sb, err := sandbox.Start(context.Background(), "", sandbox.Config{Name: "bench", Dir: dir,
			Listen: []string{"127.96.0.1:80"}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		p, err := sb.Run(context.Background(), sandbox.ProcSpec{Path: exe, Args: []string{exe}, Env: []string{"GRACELAB_SANDBOX_SHIM=probe"}})
		if err != nil {
			b.Fatal(err)
		}
		<-p.Done
		sb.Close()
	}
}

// BenchmarkSandboxDial measures a connection made inside a pod and handed back (the Service
// proxy's dial to a sandboxed pod), against a plain dial on the host.
func BenchmarkSandboxDial(b *testing.B) {
	sb, err := sandbox.Start(context.Background(), "", sandbox.Config{Name: "bench", Dir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer sb.Close()
	exe, _ := os.Executable()
	if _, err := sb.Run(context.Background(), sandbox.ProcSpec{Path: exe, Args: []string{exe},
		Env: []string{"GRACELAB_SANDBOX_TEST_PROG=serve"}}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := sb.Dial(context.Background(), "127.0.0.1:8080")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
	b.Run("sandbox", func(b *testing.B) {
		for b.Loop() {
			c, err := sb.Dial(context.Background(), "127.0.0.1:8080")
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	b.Run("host", func(b *testing.B) {
		for b.Loop() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}
