package main

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// What autovacuum does with its default settings, for a server that runs
// without it: once a naptime, a table is vacuumed when its dead tuples pass
// 50 + 20 % of its rows or its inserts since the last vacuum pass 1000 +
// 20 %, and analyzed when its changes since the last analyze pass 50 + 10 %,
// with autovacuum's cost delay.
const (
	naptime        = time.Minute
	vacuumCost     = "SET vacuum_cost_delay = '2ms'"
	vacuumCostUnit = "SET vacuum_cost_limit = 200"
	tableStats     = `SELECT greatest(c.reltuples, 0), s.n_dead_tup, s.n_ins_since_vacuum, s.n_mod_since_analyze
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = $1::regclass`
)

// vacuumed is a table the vacuumer looks after, and what it did to it.
type vacuumed struct {
	name, vacuum, analyze string
	vacuums, analyzes     atomic.Int64
	busy                  atomic.Int64 // nanoseconds spent
}

var vacuumedTables = []*vacuumed{
	{name: "keel.jobs", vacuum: "VACUUM (ANALYZE) keel.jobs", analyze: "ANALYZE keel.jobs"},
	{name: "keel.outbox", vacuum: "VACUUM (ANALYZE) keel.outbox", analyze: "ANALYZE keel.outbox"},
}

// vacuumer does autovacuum's work on one table until ctx ends, on a
// connection of its own, as an autovacuum worker would.
func vacuumer(ctx context.Context, pool *pgxpool.Pool, v *vacuumed, errs chan<- error) {
	fail := func(err error) {
		if ctx.Err() == nil {
			errs <- err
		}
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		fail(err)
		return
	}
	defer conn.Release()
	for _, set := range []string{vacuumCost, vacuumCostUnit} {
		if _, err := conn.Exec(ctx, set); err != nil {
			fail(err)
			return
		}
	}
	t := time.NewTicker(naptime)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var rows float64
		var dead, inserted, modified int64
		if err := conn.QueryRow(ctx, tableStats, v.name).Scan(&rows, &dead, &inserted, &modified); err != nil {
			fail(err)
			return
		}
		stmt, count := "", &v.analyzes
		switch {
		case float64(dead) > 50+0.2*rows || float64(inserted) > 1000+0.2*rows:
			stmt, count = v.vacuum, &v.vacuums
		case float64(modified) > 50+0.1*rows:
			stmt = v.analyze
		default:
			continue
		}
		start := time.Now()
		if _, err := conn.Exec(ctx, stmt); err != nil {
			fail(err)
			return
		}
		v.busy.Add(int64(time.Since(start)))
		count.Add(1)
	}
}

// vacuumSummary says what the vacuumer did.
func vacuumSummary() string {
	s := "soak's autovacuum:"
	for _, v := range vacuumedTables {
		s += fmt.Sprintf(" %s %d vacuums, %d analyzes, %.0fs;", v.name, v.vacuums.Load(), v.analyzes.Load(),
			math.Round(time.Duration(v.busy.Load()).Seconds()))
	}
	return s[:len(s)-1] + "\n"
}
