package main

import (
	"context"
	"fmt"
	"maps"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// What autovacuum does, for a server that runs without it: once a naptime,
// a table is vacuumed when its dead tuples pass its vacuum threshold plus
// its scale factor times its rows, or its inserts since the last vacuum
// pass the insert threshold plus the insert scale factor times its rows,
// and analyzed when its changes since the last analyze pass the analyze
// threshold plus scale factor; each setting is the table's own storage
// parameter (keel's migrations set them on its busy tables) or, without
// one, autovacuum's default. Vacuums run with autovacuum's cost delay and
// the soak's cost limit.
const (
	naptime        = time.Minute
	vacuumCost     = "SET vacuum_cost_delay = '2ms'"
	vacuumCostUnit = "SET vacuum_cost_limit = %d"
	tableStats     = `SELECT greatest(c.reltuples, 0), s.n_dead_tup, s.n_ins_since_vacuum, s.n_mod_since_analyze
FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.oid = $1::regclass`
	tableOptions = `SELECT o.option_name, o.option_value
FROM pg_class c, pg_options_to_table(c.reloptions) o
WHERE c.oid = $1::regclass`
)

// autovacuumDefaults are the server's defaults of the settings a table may
// override.
var autovacuumDefaults = map[string]float64{
	"autovacuum_vacuum_threshold":           50,
	"autovacuum_vacuum_scale_factor":        0.2,
	"autovacuum_vacuum_insert_threshold":    1000,
	"autovacuum_vacuum_insert_scale_factor": 0.2,
	"autovacuum_analyze_threshold":          50,
	"autovacuum_analyze_scale_factor":       0.1,
}

// tableSettings returns autovacuumDefaults with the table's own storage
// parameters in place of the defaults it overrides.
func tableSettings(ctx context.Context, conn *pgxpool.Conn, table string) (map[string]float64, error) {
	settings := maps.Clone(autovacuumDefaults)
	rows, err := conn.Query(ctx, tableOptions, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var name, value string
		if err := rows.Scan(&name, &value); err != nil {
			return nil, err
		}
		if _, ok := settings[name]; !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return nil, fmt.Errorf("%s of %s: %w", name, table, err)
		}
		settings[name] = v
	}
	return settings, rows.Err()
}

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
func vacuumer(ctx context.Context, pool *pgxpool.Pool, v *vacuumed, costLimit int, errs chan<- error) {
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
	for _, set := range []string{vacuumCost, fmt.Sprintf(vacuumCostUnit, costLimit)} {
		if _, err := conn.Exec(ctx, set); err != nil {
			fail(err)
			return
		}
	}
	set, err := tableSettings(ctx, conn, v.name)
	if err != nil {
		fail(err)
		return
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
		case float64(dead) > set["autovacuum_vacuum_threshold"]+set["autovacuum_vacuum_scale_factor"]*rows ||
			float64(inserted) > set["autovacuum_vacuum_insert_threshold"]+set["autovacuum_vacuum_insert_scale_factor"]*rows:
			stmt, count = v.vacuum, &v.vacuums
		case float64(modified) > set["autovacuum_analyze_threshold"]+set["autovacuum_analyze_scale_factor"]*rows:
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
