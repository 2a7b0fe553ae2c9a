package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/console"
)

// The environment variables keel ui reads its credentials from, so that
// they never show in a process listing.
const (
	envUIUser     = "KEEL_UI_USER"
	envUIPassword = "KEEL_UI_PASSWORD"
	envUIToken    = "KEEL_UI_TOKEN"
)

func uiFlags(fs *flag.FlagSet) action {
	addr := fs.String("addr", "127.0.0.1:8080", "listen on this `address` (port 0 picks a free port)")
	readOnly := fs.Bool("read-only", false, "refuse every action; show no buttons (default: off)")
	refresh := fs.Duration("refresh", 2*time.Second, "how often an open page updates itself")
	return func(c *cli, ctx context.Context, _ []string) error {
		cfg := console.Config{ReadOnly: *readOnly, RefreshInterval: *refresh, BearerToken: c.getenv(envUIToken)}
		user, password := c.getenv(envUIUser), c.getenv(envUIPassword)
		if user != "" || password != "" {
			if user == "" || password == "" {
				return usageError{envUIUser + " and " + envUIPassword + " go together"}
			}
			cfg.BasicAuth = &console.BasicAuth{User: user, Password: password}
		}
		if *refresh <= 0 {
			return usageError{"--refresh must be positive"}
		}
		return c.withDB(ctx, func(pool *pgxpool.Pool) error { return c.serveUI(ctx, pool, *addr, cfg) })
	}
}

// serveUI serves the console until ctx ends (Ctrl-C), then shuts down.
func (c *cli) serveUI(ctx context.Context, pool *pgxpool.Pool, addr string, cfg console.Config) error {
	h, err := console.New(pool, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.out, "keel console on http://%s/ (Ctrl-C stops it)\n", ln.Addr())
	if cfg.BasicAuth == nil && cfg.BearerToken == "" && !loopback(ln.Addr()) {
		fmt.Fprintf(c.errOut, "keel: warning: the console is open to anyone who can reach %s; set %s and %s, or %s\n",
			ln.Addr(), envUIUser, envUIPassword, envUIToken)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func loopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}
