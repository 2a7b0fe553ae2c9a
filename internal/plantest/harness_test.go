package plantest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/plantest"
	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// stats is how up to date the planner's statistics are when a statement
// runs: each is a way production gets there, and each has fooled a plan.
type stats string

const (
	// neverAnalyzed: no ANALYZE has run since the tables were created.
	neverAnalyzed stats = "never-analyzed"
	// analyzedEmpty: the tables were analyzed while empty, then filled.
	analyzedEmpty stats = "analyzed-empty"
	// analyzedHistory: analyzed while holding only finished rows (history),
	// then given the live rows a statement works on, as autovacuum leaves a
	// busy table between two runs.
	analyzedHistory stats = "analyzed-history"
)

var allStats = []stats{neverAnalyzed, analyzedEmpty, analyzedHistory}

// Statements the fixtures run; sqlc cannot express VACUUM or ALTER TABLE,
// and the history loaders are test data, not keel queries.
const (
	disableAutovacuum = "ALTER TABLE %s SET (autovacuum_enabled = off)"
	vacuumAnalyze     = "VACUUM ANALYZE %s"
	analyze           = "ANALYZE %s"
)

// fixture fills a fresh keel database: history holds the finished rows
// retention keeps, live the rows the statements under test work on.
type fixture struct {
	tables  []string
	history []string
	live    []string
}

// statement is one hot statement: call runs the generated query on the
// recorder, expect says how its plan may reach each table.
type statement struct {
	name   string
	call   func(ctx context.Context, q *db.Queries)
	expect plantest.Expect
}

// checkPlans loads the fixture under every statistics set-up and checks
// the custom and the generic plan of every statement.
func checkPlans(t *testing.T, f fixture, statements []statement) {
	t.Helper()
	for _, st := range allStats {
		t.Run(string(st), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			pool := testdb.New(t)
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Release()
			load(t, conn.Conn(), f, st)
			for _, s := range statements {
				rec := &plantest.Recorder{}
				s.call(ctx, db.New(rec))
				for _, mode := range []plantest.Mode{plantest.Custom, plantest.Generic} {
					plan, err := plantest.Explain(ctx, conn.Conn(), rec, mode)
					if err != nil {
						t.Fatalf("%s (%s): %v", s.name, mode, err)
					}
					if problems := s.expect.Check(plan); len(problems) > 0 {
						t.Errorf("%s, %s plan:\n  %s\n%s", s.name, mode, strings.Join(problems, "\n  "), plan)
					}
				}
			}
		})
	}
}

func load(t *testing.T, conn *pgx.Conn, f fixture, st stats) {
	t.Helper()
	ctx := context.Background()
	run := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(sql, "\n", 2)[0], err)
		}
	}
	for _, table := range f.tables {
		run(fmt.Sprintf(disableAutovacuum, table))
		if st == analyzedEmpty {
			run(fmt.Sprintf(analyze, table))
		}
	}
	for _, sql := range f.history {
		run(sql)
	}
	if st == analyzedHistory {
		for _, table := range f.tables {
			run(fmt.Sprintf(vacuumAnalyze, table))
		}
	}
	for _, sql := range f.live {
		run(sql)
	}
}
