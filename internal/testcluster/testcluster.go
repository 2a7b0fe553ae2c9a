// Package testcluster gives a test a PostgreSQL server of its own, which it
// may stop, start and restart: outage tests must never touch the server
// other tests share.
//
// A cluster is made with Debian's postgresql-common tools (pg_createcluster,
// pg_ctlcluster, pg_dropcluster), which need root; where they cannot run the
// test is skipped with the reason. Each cluster listens on a free port of
// 127.0.0.1 with trust authentication and fsync off, holds keel's
// migrations in its postgres database, and is dropped when the test ends.
// NewStandby adds a streaming standby for failover tests. Clusters left
// behind by a killed test binary are dropped by the next New once they are
// an hour old.
package testcluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/migrations"
)

// prefix starts the name of every cluster this package makes; the unix time
// of its making follows the random part.
const prefix = "keeltest_"

// settings are appended to each cluster's postgresql.conf.
const settings = `
listen_addresses = '127.0.0.1'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 100
shared_buffers = 32MB
`

const hba = `local all all trust
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
`

// Cluster is a private PostgreSQL server.
type Cluster struct {
	t       testing.TB
	version string
	name    string
	port    int
}

// New makes, starts and migrates a cluster that is dropped when the test ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	c := create(t)
	c.Start()
	c.migrate()
	return c
}

// NewStandby makes a streaming standby of primary (pg_basebackup) and starts
// it; from then on a commit on the primary waits until the standby has it
// (synchronous_standby_names), so a failover loses nothing committed. The
// standby is dropped when the test ends.
func NewStandby(t testing.TB, primary *Cluster) *Cluster {
	t.Helper()
	c := create(t)
	data := filepath.Join("/var/lib/postgresql", c.version, c.name)
	if err := os.RemoveAll(data); err != nil {
		t.Fatal(err)
	}
	c.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", data, "-R", "-X", "stream", "--checkpoint=fast")
	c.run("chown", "-R", "postgres:postgres", data)
	c.run("chmod", "0700", data)
	c.Start()
	appendFile(t, filepath.Join("/etc/postgresql", primary.version, primary.name, "postgresql.conf"), "synchronous_commit = on\nsynchronous_standby_names = '*'\n")
	primary.run("pg_ctlcluster", primary.version, primary.name, "reload")
	return c
}

// Promote makes a standby the primary.
func (c *Cluster) Promote() { c.run("pg_ctlcluster", c.version, c.name, "promote") }

// create makes a cluster, not started, that is dropped when the test ends.
func create(t testing.TB) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("testcluster: making a private PostgreSQL cluster needs root (pg_createcluster)")
	}
	if _, err := exec.LookPath("pg_createcluster"); err != nil {
		t.Skip("testcluster: pg_createcluster not found (Debian's postgresql-common)")
	}
	version, err := newestVersion()
	if err != nil {
		t.Skipf("testcluster: %v", err)
	}
	dropStale(version)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	c := &Cluster{t: t, version: version, name: fmt.Sprintf("%s%s_%d", prefix, hex.EncodeToString(b[:]), time.Now().Unix()), port: port}
	c.run("pg_createcluster", version, c.name, "--port", strconv.Itoa(port))
	t.Cleanup(func() { c.run("pg_dropcluster", "--stop", version, c.name) })
	conf := filepath.Join("/etc/postgresql", version, c.name)
	appendFile(t, filepath.Join(conf, "postgresql.conf"), settings)
	if err := os.WriteFile(filepath.Join(conf, "pg_hba.conf"), []byte(hba), 0o640); err != nil {
		t.Fatal(err)
	}
	return c
}

// FailoverURL is a multi-host connection string for primary and standby
// that connects only to whichever accepts writes
// (target_session_attrs=read-write), as a client of a highly available
// pair would.
func FailoverURL(primary, standby *Cluster) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write", primary.port, standby.port)
}

// URL is the connection string of the cluster's postgres database, where
// keel's migrations are applied.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Stop shuts the server down at once (fast mode: sessions are ended,
// nothing waits for clients).
func (c *Cluster) Stop() { c.run("pg_ctlcluster", c.version, c.name, "stop", "-m", "fast") }

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() { c.run("pg_ctlcluster", c.version, c.name, "start") }

// Restart stops and starts the server in one go.
func (c *Cluster) Restart() { c.run("pg_ctlcluster", c.version, c.name, "restart", "-m", "fast") }

// Outage stops the server for d, then starts it again.
func (c *Cluster) Outage(d time.Duration) {
	c.Stop()
	time.Sleep(d)
	c.Start()
}

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("testcluster: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func (c *Cluster) migrate() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := pgxpool.New(ctx, c.URL())
	if err != nil {
		c.t.Fatal(err)
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Up(ctx); err != nil {
		c.t.Fatalf("testcluster: migrating: %v", err)
	}
}

// newestVersion is the newest PostgreSQL major version installed.
func newestVersion() (string, error) {
	dirs, err := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if err != nil || len(dirs) == 0 {
		return "", fmt.Errorf("no PostgreSQL server installed under /usr/lib/postgresql")
	}
	versions := make([]int, 0, len(dirs))
	for _, d := range dirs {
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(d)))); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no PostgreSQL server installed under /usr/lib/postgresql")
	}
	sort.Ints(versions)
	return strconv.Itoa(versions[len(versions)-1]), nil
}

// dropStale drops this package's clusters that are over an hour old: a
// killed test binary could not drop its own.
func dropStale(version string) {
	dirs, _ := filepath.Glob(filepath.Join("/etc/postgresql", version, prefix+"*"))
	for _, d := range dirs {
		name := filepath.Base(d)
		i := strings.LastIndexByte(name, '_')
		made, err := strconv.ParseInt(name[i+1:], 10, 64)
		if err == nil && time.Since(time.Unix(made, 0)) > time.Hour {
			_ = exec.Command("pg_dropcluster", "--stop", version, name).Run()
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func appendFile(t testing.TB, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

// Outage is one way for the server to go away mid-test.
type Outage struct {
	Name string
	// Cause takes the server away and brings it back.
	Cause func(c *Cluster)
	// Declared says whether components see it as an outage (logged and
	// reported to their hooks): a fast restart is over before they do.
	Declared bool
}

// Outages are the outages every long-running component is tested against:
// the server stopped for 3s, stopped for 30s, and restarted.
func Outages() []Outage {
	return []Outage{
		{"3s", func(c *Cluster) { c.Outage(3 * time.Second) }, true},
		{"30s", func(c *Cluster) { c.Outage(30 * time.Second) }, true},
		{"restart", (*Cluster).Restart, false},
	}
}
