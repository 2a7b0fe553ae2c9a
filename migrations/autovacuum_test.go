package migrations_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
)

// The tables keel churns carry their own autovacuum settings, and rolling
// the migration back leaves the server's defaults (and any other option).
func TestAutovacuumSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.Open(t, testdb.NewEmptyURL(t))
	m := newMigrator(t, pool)
	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	options := func(table string) []string {
		t.Helper()
		var opts []string
		err := pool.QueryRow(ctx, "SELECT coalesce(reloptions, '{}') FROM pg_class WHERE oid = $1::regclass", table).Scan(&opts)
		if err != nil {
			t.Fatal(err)
		}
		return opts
	}
	churned := []string{
		"autovacuum_vacuum_scale_factor=0.02", "autovacuum_vacuum_threshold=10000",
		"autovacuum_vacuum_insert_scale_factor=0.02", "autovacuum_analyze_scale_factor=0.05",
	}
	tests := []struct {
		table string
		want  []string
	}{
		{"keel.jobs", churned},
		{"keel.outbox", churned},
		{"keel.saga_runs", churned},
		{"keel.unsequenced", []string{"autovacuum_vacuum_scale_factor=0", "autovacuum_vacuum_threshold=10000"}},
	}
	for _, tt := range tests {
		got := options(tt.table)
		for _, w := range tt.want {
			if !slices.Contains(got, w) {
				t.Errorf("%s: reloptions %v lack %s", tt.table, got, w)
			}
		}
	}
	if _, err := m.DownTo(ctx, 8); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		for _, opt := range options(tt.table) {
			if strings.HasPrefix(opt, "autovacuum_") {
				t.Errorf("%s after rolling back: %s is still set", tt.table, opt)
			}
		}
	}
}
