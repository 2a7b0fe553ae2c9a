package migrations

import (
	"bufio"
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var files embed.FS

// VersionTable is the table in which keel records its applied migrations. It
// is keel's own, so keel's versions never mix with an application's
// goose_db_version (or any other migration tool's table) in the same
// database. It lives in schema public because migration 1 creates the keel
// schema and rolling everything back drops it.
const VersionTable = "public.keel_db_version"

// lockID is the Postgres advisory lock key under which keel migrates, so that
// processes starting at once apply each migration exactly once. It differs
// from goose's default key so keel never waits on the application's goose.
const lockID int64 = 0x6b65656c6d6967 // "keelmig"

// FS returns keel's migration files: goose SQL migrations, one per version.
func FS() fs.FS { return files }

// ErrNoMigration is returned by Down when no migration is applied, and by
// UpTo and DownTo when the target version is not one of keel's migrations.
var ErrNoMigration = errors.New("keel migrations: no such migration")

// Config configures a Migrator. The zero value is ready to use.
type Config struct {
	// Logger receives one record per applied or rolled back migration.
	// Default: nothing is logged.
	Logger *slog.Logger
}

// Migrator applies and rolls back keel's migrations on one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// Result is what happened to one migration.
type Result struct {
	Version   int64
	Name      string
	Direction string // "up" or "down"
	Duration  time.Duration
	// Empty reports a migration that had no statements in that direction.
	Empty bool
}

// Status is the state of one migration in a database.
type Status struct {
	Version   int64
	Name      string
	Applied   bool
	AppliedAt time.Time // zero when not applied
}

// New returns a Migrator for the database the pool connects to. It does not
// touch the database until a method is called. Close releases it; the pool
// stays open.
func New(pool *pgxpool.Pool, cfg Config) (*Migrator, error) {
	if pool == nil {
		return nil, errors.New("keel migrations: pool is nil")
	}
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID), lock.WithLockTimeout(1, 600))
	if err != nil {
		return nil, fmt.Errorf("keel migrations: %w", err)
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, db, files,
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSlog(logger),
	)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("keel migrations: %w", err)
	}
	return &Migrator{db: db, provider: provider}, nil
}

// Close releases the Migrator's handle on the pool. The pool stays open.
func (m *Migrator) Close() error {
	return m.db.Close()
}

// Up applies every migration not yet applied, in order.
func (m *Migrator) Up(ctx context.Context) ([]Result, error) {
	res, err := m.provider.Up(ctx)
	return results(res), wrap("up", err)
}

// UpTo applies the pending migrations up to and including version.
func (m *Migrator) UpTo(ctx context.Context, version int64) ([]Result, error) {
	if err := m.known(version); err != nil {
		return nil, err
	}
	res, err := m.provider.UpTo(ctx, version)
	return results(res), wrap("up", err)
}

// Down rolls back the most recently applied migration. It returns
// ErrNoMigration when none is applied.
func (m *Migrator) Down(ctx context.Context) (Result, error) {
	res, err := m.provider.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return Result{}, fmt.Errorf("%w: nothing is applied", ErrNoMigration)
	}
	if err != nil {
		return Result{}, wrap("down", err)
	}
	return results([]*goose.MigrationResult{res})[0], nil
}

// DownTo rolls back every applied migration newer than version; version 0
// rolls back all of them.
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]Result, error) {
	if version != 0 {
		if err := m.known(version); err != nil {
			return nil, err
		}
	}
	res, err := m.provider.DownTo(ctx, version)
	return results(res), wrap("down", err)
}

// Status reports every keel migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]Status, error) {
	sts, err := m.provider.Status(ctx)
	if err != nil {
		return nil, wrap("status", err)
	}
	out := make([]Status, 0, len(sts))
	for _, s := range sts {
		out = append(out, Status{
			Version:   s.Source.Version,
			Name:      baseName(s.Source.Path),
			Applied:   s.State == goose.StateApplied,
			AppliedAt: s.AppliedAt,
		})
	}
	return out, nil
}

// Version reports the newest applied version in the database (0 when none)
// and the newest version this build of keel knows.
func (m *Migrator) Version(ctx context.Context) (current, latest int64, err error) {
	current, latest, err = m.provider.GetVersions(ctx)
	return current, latest, wrap("version", err)
}

func (m *Migrator) known(version int64) error {
	for _, s := range m.provider.ListSources() {
		if s.Version == version {
			return nil
		}
	}
	return fmt.Errorf("%w: version %d", ErrNoMigration, version)
}

func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("keel migrations %s: %w", op, err)
}

func results(in []*goose.MigrationResult) []Result {
	out := make([]Result, 0, len(in))
	for _, r := range in {
		out = append(out, Result{
			Version:   r.Source.Version,
			Name:      baseName(r.Source.Path),
			Direction: r.Direction,
			Duration:  r.Duration,
			Empty:     r.Empty,
		})
	}
	return out
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}

// WriteSQL writes the "up" part of every keel migration, in order, as plain
// SQL for teams that apply schema changes with a tool other than goose. The
// goose annotations are left out; each migration starts with a comment that
// names it. Record what you applied yourself: the output does not touch
// VersionTable.
func WriteSQL(w io.Writer) error {
	entries, err := fs.ReadDir(files, ".")
	if err != nil {
		return fmt.Errorf("keel migrations: %w", err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		body, err := files.ReadFile(e.Name())
		if err != nil {
			return fmt.Errorf("keel migrations: %w", err)
		}
		if _, err := fmt.Fprintf(w, "-- keel migration %s\n", e.Name()); err != nil {
			return err
		}
		if err := writeUp(w, string(body)); err != nil {
			return fmt.Errorf("keel migrations: %s: %w", e.Name(), err)
		}
	}
	return nil
}

// writeUp copies the lines between "-- +goose Up" and "-- +goose Down",
// leaving out goose's own annotations.
func writeUp(w io.Writer, body string) error {
	inUp := false
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "-- +goose Up"):
			inUp = true
			continue
		case strings.HasPrefix(trimmed, "-- +goose Down"):
			inUp = false
			continue
		case strings.HasPrefix(trimmed, "-- +goose "):
			continue
		}
		if inUp {
			if _, err := fmt.Fprintln(w, line); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}
