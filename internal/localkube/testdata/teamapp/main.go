// Command teamapp stands in for a team's own service in the drill tests: not one of gracelab's
// services, configured the way teams configure theirs. It listens at $(LISTEN_HOST):$(PORT)
// (the manifest sets LISTEN_HOST from status.podIP), names itself from POD_NAME (downward
// API), and as -role=front answers GET / by calling BACKEND_URL (a Service DNS name). With
// SHUTDOWN=drain it fails readiness on SIGTERM and drains in-flight requests before exiting;
// otherwise SIGTERM kills it at once, as Go's default does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	role := flag.String("role", "front", "front or back")
	flag.Parse()
	name := os.Getenv("POD_NAME")
	addr := net.JoinHostPort(os.Getenv("LISTEN_HOST"), os.Getenv("PORT"))
	backend := os.Getenv("BACKEND_URL")
	// A new connection per call, so a drained backend never leaves a stale one in a pool.
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	stopping := make(chan struct{})

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stopping:
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		default:
			io.WriteString(w, "ok")
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if *role == "back" {
			time.Sleep(50 * time.Millisecond) // the work a request does
			fmt.Fprintf(w, "%s", name)
			return
		}
		resp, err := client.Get(backend)
		if err != nil {
			http.Error(w, "backend: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			http.Error(w, "backend answered "+resp.Status, http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%s via %s", name, b)
	})
	srv := &http.Server{Handler: mux}
	if os.Getenv("SHUTDOWN") == "drain" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			close(stopping)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "teamapp:", err)
		os.Exit(1)
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "teamapp:", err)
		os.Exit(1)
	}
}
