// Command sidecarapp stands in for a team's program and its sidecar proxy in one pod, as the
// sandbox tests run them: not one of gracelab's services. With -role=app it listens at LISTEN
// (":8080", all interfaces, as real programs do) and answers GET / after 50 ms of work with its
// pod's name. With -role=proxy it listens at LISTEN (":9090") and forwards every request to
// UPSTREAM (http://localhost:8080: the app in the same pod), as a mesh or auth sidecar does;
// the Service targets the proxy. Both answer /healthz. With SHUTDOWN=drain a SIGTERM fails
// /healthz and drains in-flight requests before exiting; otherwise SIGTERM kills at once, as
// Go's default does.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	role := flag.String("role", "app", "app or proxy")
	flag.Parse()
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
	switch *role {
	case "app":
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(50 * time.Millisecond) // the work a request does
			fmt.Fprintf(w, "app %s", os.Getenv("POD_NAME"))
		})
	case "proxy":
		upstream, err := url.Parse(os.Getenv("UPSTREAM"))
		if err != nil || upstream.Host == "" {
			fmt.Fprintf(os.Stderr, "sidecarapp: UPSTREAM %q: want a URL such as http://localhost:8080\n", os.Getenv("UPSTREAM"))
			os.Exit(2)
		}
		proxy := httputil.NewSingleHostReverseProxy(upstream)
		// A new connection per request: a draining app closes idle ones, which would race.
		proxy.Transport = &http.Transport{DisableKeepAlives: true}
		proxy.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			http.Error(w, "sidecar: upstream: "+err.Error(), http.StatusBadGateway)
		}
		mux.Handle("/", proxy)
	default:
		fmt.Fprintf(os.Stderr, "sidecarapp: -role %q: want app or proxy\n", *role)
		os.Exit(2)
	}
	srv := &http.Server{Handler: mux}
	drained := make(chan struct{})
	if os.Getenv("SHUTDOWN") == "drain" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM)
		go func() {
			<-sig
			close(stopping)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			close(drained)
		}()
	} else {
		close(drained)
	}
	ln, err := net.Listen("tcp", os.Getenv("LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "sidecarapp:", err)
		os.Exit(1)
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "sidecarapp:", err)
		os.Exit(1)
	}
	<-drained // Serve returns as Shutdown starts; the in-flight requests are not done yet
}
