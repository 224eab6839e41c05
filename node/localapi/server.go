// Package localapi is syncnode's local API: HTTP/JSON on 127.0.0.1 or a
// Unix socket, for the syncnode CLI and for apps in any language. Every
// request carries the bearer token kept in the data directory (owner-only
// permissions); record payloads are JSON here and CBOR in the node. The
// same server serves a server-sent-events stream of record events and
// Prometheus metrics, and the dashboard, a web page at the API's root that
// a browser signs in to (see session.go). docs/API.md lists every endpoint.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/syncnode/syncnode/node"
)

// DefaultMaxBodyBytes is the largest request body accepted: a record's
// payload is at most 1 MiB of CBOR, and its JSON form may be larger.
const DefaultMaxBodyBytes = 4 << 20

// Config configures a Server.
type Config struct {
	// Addr is where the server listens: "host:port" for TCP (keep it on
	// loopback) or "unix:/path/to/socket". Required.
	Addr string
	// Token is the bearer token every request must carry. Required.
	Token string
	// MaxBodyBytes bounds request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Warnings, if set, returns the daemon's recent warnings, oldest first
	// (GET /v1/warnings); without it that endpoint answers an empty list.
	// It is called from request goroutines.
	Warnings func() []Warning
}

// Server serves the local API of one node.
type Server struct {
	n     *node.Node
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	srv   *http.Server
	ln    net.Listener
	unix  bool          // ln is a Unix socket: no browser reaches it
	stop  chan struct{} // closed by Close: ends event streams
	once  sync.Once
	wg    sync.WaitGroup
	start time.Time

	sessions *sessions
	assets   map[string]asset
}

// New prepares a server for n. It starts nothing.
func New(n *node.Node, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.Addr == "" {
		return nil, errors.New("localapi: an address is required")
	}
	if len(cfg.Token) < 16 {
		return nil, errors.New("localapi: a token of at least 16 characters is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Server{n: n, cfg: cfg, log: log, mux: http.NewServeMux(), stop: make(chan struct{}),
		sessions: newSessions(), assets: loadAssets()}
	s.routes()
	reg := prometheus.NewRegistry()
	reg.MustRegister(newCollector(n), prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	s.mux.Handle("GET /metrics", s.authed(false, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}})))
	s.srv = &http.Server{
		Handler:           s.guard(s.mux),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	return s, nil
}

// Listen opens the listener; a TCP address whose port is taken falls back
// to a port the system picks when fallback is set.
func (s *Server) Listen(fallback bool) error {
	if path, ok := strings.CutPrefix(s.cfg.Addr, "unix:"); ok {
		_ = os.Remove(path) // a socket left by a crashed daemon
		ln, err := net.Listen("unix", path)
		if err != nil {
			return fmt.Errorf("localapi: listening on %s: %w", s.cfg.Addr, err)
		}
		if err := os.Chmod(path, 0o600); err != nil {
			ln.Close()
			return fmt.Errorf("localapi: restricting %s: %w", path, err)
		}
		s.ln, s.unix = ln, true
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil && fallback {
		host, _, _ := net.SplitHostPort(s.cfg.Addr)
		ln, err = net.Listen("tcp", net.JoinHostPort(host, "0"))
	}
	if err != nil {
		return fmt.Errorf("localapi: listening on %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns where the server listens ("127.0.0.1:7655" or
// "unix:/path"), valid after Listen.
func (s *Server) Addr() string {
	if s.ln == nil {
		return ""
	}
	if s.ln.Addr().Network() == "unix" {
		return "unix:" + s.ln.Addr().String()
	}
	return s.ln.Addr().String()
}

// Start serves on the listener opened by Listen (opening it first if
// needed, without fallback) in a goroutine that Close stops.
func (s *Server) Start() error {
	if s.ln == nil {
		if err := s.Listen(false); err != nil {
			return err
		}
	}
	s.start = time.Now()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("local API stopped", "err", err)
		}
	}()
	return nil
}

// Close ends event streams, stops accepting requests and waits (until ctx
// ends) for those in flight.
func (s *Server) Close(ctx context.Context) error {
	s.once.Do(func() { close(s.stop) })
	err := s.srv.Shutdown(ctx)
	if err != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
	return err
}

// Handler returns the API's handler (token, session, Host and Origin checks
// included), for tests and for apps that serve it on their own server.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	// Answers hold secrets (invite codes) and change: no cache keeps them.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorBody{Error: msg, Code: code})
}

// slogPrinter adapts a slog.Logger to promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics", "err", fmt.Sprint(v...)) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
