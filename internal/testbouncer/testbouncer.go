// Package testbouncer puts a private PgBouncer in transaction pooling mode
// in front of a test's database, the way many deployments reach Postgres.
//
// Each call starts its own pgbouncer process (Debian's, 1.18) on a free port
// of 127.0.0.1 with trust authentication and stops it when the test ends.
// PgBouncer refuses to run as root, so under root it runs as the postgres
// user. Where pgbouncer is not installed the test is skipped with the
// reason; .ci/run installs it.
package testbouncer

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// ExecMode is the pgx query mode that works through PgBouncer 1.18 in
// transaction mode: each statement is parsed, bound and executed unnamed in
// one round trip, so no prepared statement outlives the server connection
// it was made on.
const ExecMode = "exec"

const config = `[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
server_reset_query =
log_connections = 0
log_disconnections = 0
`

// New starts a PgBouncer in front of the server dbURL names and returns
// dbURL rewritten to go through it, with default_query_exec_mode set to
// ExecMode.
func New(t testing.TB, dbURL string) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		t.Skip("testbouncer: pgbouncer not found (apt-get install pgbouncer)")
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatalf("testbouncer: %v", err)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "5432"
	}
	name := "postgres"
	if u.User != nil && u.User.Username() != "" {
		name = u.User.Username()
	}
	// Not t.TempDir: its parent is private to root, and pgbouncer may run
	// as postgres.
	dir, err := os.MkdirTemp("", "keel-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(dir, "users.txt")
	write(t, users, fmt.Sprintf("%q \"\"\n", name))
	listen, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	ini := filepath.Join(dir, "pgbouncer.ini")
	write(t, ini, fmt.Sprintf(config, host, port, listen, users))

	cmd := exec.Command(bin, ini)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if os.Geteuid() == 0 {
		cred, err := postgresUser()
		if err != nil {
			t.Skipf("testbouncer: pgbouncer will not run as root and %v", err)
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testbouncer: starting pgbouncer: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(listen))
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("testbouncer: pgbouncer did not listen within 10s")
		}
	}
	u.Host = addr
	q := u.Query()
	q.Set("default_query_exec_mode", ExecMode)
	u.RawQuery = q.Encode()
	return u.String()
}

func postgresUser() (*syscall.Credential, error) {
	pg, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("there is no postgres user: %w", err)
	}
	uid, err := strconv.ParseUint(pg.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(pg.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func write(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
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
