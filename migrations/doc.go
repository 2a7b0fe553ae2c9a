// Package migrations holds keel's schema as goose SQL migrations, embedded in
// the binary, and a small API to apply them.
//
// Every table, index, function and trigger keel uses is created here, in the
// Postgres schema "keel". keel records the versions it applied in its own
// table, [VersionTable], so its migrations never collide with the
// application's own goose (or other) migrations in the same database.
// Concurrent callers are safe: each run holds a Postgres advisory lock.
//
// Apply them at start-up:
//
//	m, err := migrations.New(pool, migrations.Config{})
//	if err != nil { ... }
//	defer m.Close()
//	if _, err := m.Up(ctx); err != nil { ... }
//
// or with the keel CLI (keel migrate up), or with the plain goose CLI in CI:
//
//	goose -dir migrations -table public.keel_db_version postgres "$DATABASE_URL" up
//
// Teams that apply schema with another tool can print the SQL with
// [WriteSQL] (keel migrate sql).
package migrations
