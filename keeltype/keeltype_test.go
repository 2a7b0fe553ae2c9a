package keeltype_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/keeltype"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// A pgx.Tx, a *pgx.Conn and a *pgxpool.Pool are all a keeltype.DBTX, and a DBTX
// drives keel's generated queries; a write through a rolled-back Tx is gone.
func TestDBTXImplementations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	conn, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(ctx) })
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) })

	tests := []struct {
		name string
		dbtx keeltype.DBTX
	}{
		{"pool", pool},
		{"conn", conn},
		{"tx", tx},
	}
	for _, tc := range tests {
		ok, err := db.New(tc.dbtx).SchemaExists(ctx)
		if err != nil || !ok {
			t.Errorf("%s: SchemaExists = %v, %v", tc.name, ok, err)
		}
	}
}

var (
	_ keeltype.DBTX = (pgx.Tx)(nil)
	_ keeltype.DBTX = (*pgx.Conn)(nil)
	_ keeltype.DBTX = (*pgxpool.Pool)(nil)
)
