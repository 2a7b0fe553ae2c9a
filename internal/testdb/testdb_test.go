package testdb_test

import (
	"context"
	"testing"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// Two parallel tests each get their own database, with the migrations
// applied, and writes in one are invisible in the other.
func TestParallelTestsGetDistinctDatabases(t *testing.T) {
	t.Parallel()
	names := make(chan string, 2)
	for _, tc := range []struct{ name string }{{"first"}, {"second"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := testdb.New(t)
			var name string
			if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
				t.Fatal(err)
			}
			ok, err := db.New(pool).SchemaExists(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				t.Errorf("database %s has no keel schema: the template was not migrated", name)
			}
			if _, err := pool.Exec(ctx, "CREATE TABLE public.marker (test text)"); err != nil {
				t.Fatalf("a fresh database must not have the other test's table: %v", err)
			}
			names <- name
		})
	}
	t.Cleanup(func() {
		close(names)
		a, b := <-names, <-names
		if a == "" || b == "" || a == b {
			t.Errorf("parallel tests shared a database: %q and %q", a, b)
		}
	})
}

// A test database is gone once its test ends.
func TestDatabaseDroppedAfterTest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var name string
	t.Run("user", func(t *testing.T) {
		pool := testdb.New(t)
		if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	probe := testdb.Open(t, testdb.NewEmptyURL(t))
	exists, err := db.New(probe).DatabaseExists(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

// An empty database has no keel schema.
func TestNewEmptyURLHasNoMigrations(t *testing.T) {
	t.Parallel()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	ok, err := db.New(pool).SchemaExists(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Error("an empty test database has the keel schema")
	}
}
