// Package testdb gives every keel test its own PostgreSQL database.
//
// A test binary calls [Main] from TestMain. Main works on the server
// DATABASE_URL names (without it, the run fails with one line telling how to
// set it; `make test` sets it to the server scripts/postgres.sh finds or
// starts: a local one, or a container through tools/pgcontainer when a Docker
// engine answers) and makes sure a template database with every keel
// migration applied exists on it. The template is named after a hash of the
// migration files, so it is built once and re-made only when the migrations
// change, under an advisory lock so that test binaries running in parallel
// build it once between them.
//
// [New] then clones the template into a fresh database for one test (a
// CREATE DATABASE … TEMPLATE, tens of milliseconds) and drops it when the test
// ends, so tests run in parallel and leave nothing behind. Databases left by a
// killed run, and templates of other migrations, are dropped by a later run
// once they are an hour old.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/migrations"
)

// Statements sqlc cannot express: CREATE, DROP and ALTER DATABASE take the
// database name as an identifier, which no query parameter can stand for.
// Each %s is filled with pgx.Identifier.Sanitize.
const (
	createFromTemplate = "CREATE DATABASE %s TEMPLATE %s"
	dropDatabase       = "DROP DATABASE IF EXISTS %s WITH (FORCE)"
	renameDatabase     = "ALTER DATABASE %s RENAME TO %s"
)

const (
	templatePrefix = "keel_tpl_"
	testPrefix     = "keel_test_"
	// templateLockKey serialises template building across test binaries.
	templateLockKey int64 = 0x6b65656c747374 // "keeltst"
	// staleAfter is the age after which a test database is taken to be left
	// over from a killed run.
	staleAfter = time.Hour
)

// examplesDBEnv names the examples' database in the environment of a test
// binary and of every process it starts.
const examplesDBEnv = "KEEL_TEST_EXAMPLES_DB"

// HowToSetURL is the one line printed when no server can be found.
const HowToSetURL = "keel tests need PostgreSQL: set DATABASE_URL, e.g. export DATABASE_URL='postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable' (`make db` finds one), or run them with `make test`, which finds or starts one (a local server, or a container when Docker answers)"

// server is the PostgreSQL server of this test binary; Main sets it once
// before any test runs, so it is shared, read-only state of the binary.
var server struct {
	sync.Mutex
	url      string
	template string
	admin    *pgxpool.Pool
}

// Main prepares the server and the template database, runs the tests and
// exits. Call it from TestMain:
//
//	func TestMain(m *testing.M) { testdb.Main(m) }
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctx := context.Background()
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		fmt.Fprintln(os.Stderr, HowToSetURL)
		return 1
	}
	admin, err := connect(ctx, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keel tests: cannot reach DATABASE_URL: %v\n", err)
		return 1
	}
	defer admin.Close()
	template, err := ensureTemplate(ctx, admin, url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "keel tests: preparing the template database: %v\n", err)
		return 1
	}
	server.Lock()
	server.url, server.template, server.admin = url, template, admin
	server.Unlock()

	// A test binary started by a test (a crash test's child, which may be
	// killed) inherits the examples' database from its parent and makes
	// none: a database it made would outlive it.
	if os.Getenv(examplesDBEnv) != "" {
		return m.Run()
	}
	// Runnable examples read DATABASE_URL like a user's program would; they
	// get a migrated database of their own.
	exampleDB := newName()
	if err := execOn(ctx, admin, createFromTemplate, exampleDB, template); err != nil {
		fmt.Fprintf(os.Stderr, "keel tests: creating the examples' database: %v\n", err)
		return 1
	}
	defer func() { _ = execOn(ctx, admin, dropDatabase, exampleDB) }()
	if err := os.Setenv("DATABASE_URL", withDatabase(url, exampleDB)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := os.Setenv(examplesDBEnv, exampleDB); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func execOn(ctx context.Context, admin *pgxpool.Pool, format string, names ...string) error {
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	return exec(ctx, conn.Conn(), format, names...)
}

func connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// migrationsHash names the template after the migrations it holds.
func migrationsHash() (string, error) {
	fsys := migrations.FS()
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ensureTemplate makes sure a template for the current migrations exists and
// drops what earlier runs left: templates of other migrations and test
// databases, once they are an hour old.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool, serverURL string) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	prefix := templatePrefix + hash + "_"
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Release()
	q := db.New(conn)
	if err := q.AdvisoryLock(ctx, templateLockKey); err != nil {
		return "", err
	}
	defer func() { _, _ = q.AdvisoryUnlock(context.WithoutCancel(ctx), templateLockKey) }()

	if err := dropLeftovers(ctx, q, conn.Conn(), prefix); err != nil {
		return "", err
	}
	existing, err := q.ListDatabases(ctx, prefix)
	if err != nil {
		return "", err
	}
	building := prefix + "build"
	for _, name := range existing {
		if name != building {
			return name, nil
		}
	}
	// Build under another name and rename when complete, so a run killed
	// half-way never leaves a template that looks finished.
	if err := exec(ctx, conn.Conn(), dropDatabase, building); err != nil {
		return "", err
	}
	if err := exec(ctx, conn.Conn(), createFromTemplate, building, "template0"); err != nil {
		return "", err
	}
	if err := migrateDatabase(ctx, withDatabase(serverURL, building)); err != nil {
		return "", fmt.Errorf("migrating %s: %w", building, err)
	}
	name := prefix + strconv.FormatInt(time.Now().Unix(), 10)
	if err := exec(ctx, conn.Conn(), renameDatabase, building, name); err != nil {
		return "", err
	}
	return name, nil
}

// dropLeftovers drops templates of other migrations and test databases once
// they are an hour old; younger ones may still be in use by another run.
func dropLeftovers(ctx context.Context, q *db.Queries, conn *pgx.Conn, keepPrefix string) error {
	for _, prefix := range []string{templatePrefix, testPrefix} {
		names, err := q.ListDatabases(ctx, prefix)
		if err != nil {
			return err
		}
		for _, name := range names {
			if strings.HasPrefix(name, keepPrefix) {
				continue
			}
			if made, ok := createdAt(name); ok && time.Since(made) > staleAfter {
				if err := exec(ctx, conn, dropDatabase, name); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func migrateDatabase(ctx context.Context, url string) error {
	pool, err := connect(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = m.Up(ctx)
	return err
}

func exec(ctx context.Context, conn *pgx.Conn, format string, names ...string) error {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = pgx.Identifier{n}.Sanitize()
	}
	_, err := conn.Exec(ctx, fmt.Sprintf(format, args...))
	return err
}

// withDatabase returns the connection string with its database replaced.
func withDatabase(connString, database string) string {
	if u, err := url.Parse(connString); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		u.Path = "/" + database
		return u.String()
	}
	// A keyword/value string: a later dbname overrides an earlier one.
	return connString + " dbname=" + database
}

// newName returns a test database name that records when it was made.
func newName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%s_%d", testPrefix, hex.EncodeToString(b[:]), time.Now().Unix())
}

// createdAt reads the creation time a template or test database carries as
// the number after its last underscore.
func createdAt(name string) (time.Time, bool) {
	i := strings.LastIndexByte(name, '_')
	if i < 0 {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}

// New returns a pool on a fresh database with every keel migration applied.
// The database is dropped when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return open(t, NewURL(t))
}

// NewURL returns the connection string of a fresh database with every keel
// migration applied, for tests that start subprocesses or run the CLI. The
// database is dropped when the test ends.
func NewURL(t testing.TB) string {
	t.Helper()
	return create(t, template(t))
}

// NewEmptyURL returns the connection string of a fresh database with no keel
// migration applied, for tests of the migrations themselves.
func NewEmptyURL(t testing.TB) string {
	t.Helper()
	return create(t, "template0")
}

// NewSized returns a pool of at most maxConns connections on a fresh
// database with every keel migration applied, for tests of what a small
// pool does. The database is dropped when the test ends.
func NewSized(t testing.TB, maxConns int32) *pgxpool.Pool {
	t.Helper()
	return OpenSized(t, NewURL(t), maxConns)
}

// OpenSized is Open with a pool of at most maxConns connections.
func OpenSized(t testing.TB, connString string, maxConns int32) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		t.Fatalf("testdb: %v", err)
	}
	cfg.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("testdb: connecting: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Open returns a pool on the database the connection string names, closed
// when the test ends.
func Open(t testing.TB, connString string) *pgxpool.Pool {
	t.Helper()
	return open(t, connString)
}

func open(t testing.TB, connString string) *pgxpool.Pool {
	t.Helper()
	pool, err := connect(context.Background(), connString)
	if err != nil {
		t.Fatalf("testdb: connecting: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func template(t testing.TB) string {
	t.Helper()
	server.Lock()
	defer server.Unlock()
	if server.admin == nil {
		t.Fatal("testdb: call testdb.Main(m) from TestMain before testdb.New")
	}
	return server.template
}

func create(t testing.TB, from string) string {
	t.Helper()
	server.Lock()
	admin, serverURL := server.admin, server.url
	server.Unlock()
	if admin == nil {
		t.Fatal("testdb: call testdb.Main(m) from TestMain before testdb.New")
	}
	ctx := context.Background()
	name := newName()
	if err := execOn(ctx, admin, createFromTemplate, name, from); err != nil {
		t.Fatalf("testdb: creating %s: %v", name, err)
	}
	// Registered before the caller's own cleanups, so it runs after them:
	// pools opened on the database are closed by the time it is dropped.
	t.Cleanup(func() {
		if err := execOn(ctx, admin, dropDatabase, name); err != nil {
			t.Errorf("testdb: dropping %s: %v", name, err)
		}
	})
	return withDatabase(serverURL, name)
}
