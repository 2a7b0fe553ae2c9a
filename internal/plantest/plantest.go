// Package plantest checks the plans PostgreSQL picks for keel's hot
// statements, so a statement that is fast on an empty table stays fast when
// the table holds millions of finished rows and whatever its statistics say.
//
// A test calls a generated query on a [Recorder], which keeps the statement
// and its arguments instead of running them, then asks [Explain] for the plan
// PostgreSQL would use — both the custom plan (planned for these argument
// values) and the generic plan (the one a prepared statement settles on after
// a few runs, which pgx's statement cache makes the common case) — and
// checks its shape with [Expect]: which index reaches each table, that
// every reach of a table that holds history is a keyed index lookup, never a
// sequential scan or a walk of a whole index, and that no sort must read
// every row a condition matches before a LIMIT can stop it.
//
// These are tests of plan shape, not of time: they hold on any machine.
package plantest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// errRecorded is what a Recorder's methods return once they kept the
// statement: the generated query gives it back to the test, which ignores it.
var errRecorded = errors.New("plantest: statement recorded, not run")

// Recorder is a DBTX that keeps the last statement handed to it and its
// arguments, and runs nothing.
type Recorder struct {
	SQL  string
	Args []any
}

// Exec records the statement.
func (r *Recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.SQL, r.Args = sql, args
	return pgconn.CommandTag{}, errRecorded
}

// Query records the statement.
func (r *Recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.SQL, r.Args = sql, args
	return nil, errRecorded
}

// QueryRow records the statement.
func (r *Recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.SQL, r.Args = sql, args
	return errorRow{}
}

// CopyFrom is refused: COPY has no plan.
func (r *Recorder) CopyFrom(context.Context, pgx.Identifier, []string, pgx.CopyFromSource) (int64, error) {
	return 0, errors.New("plantest: COPY has no plan")
}

type errorRow struct{}

func (errorRow) Scan(...any) error { return errRecorded }

// Mode picks which plan Explain shows.
type Mode string

// The plans a prepared statement can run with.
const (
	Custom  Mode = "custom"
	Generic Mode = "generic"
)

// Statements Explain runs on its own connection: sqlc cannot express
// session settings, PREPARE or EXPLAIN of a prepared statement. The
// statement is prepared with pgx (the protocol-level PREPARE a statement
// cache does), so its parameter types are inferred exactly as in keel's
// own calls; EXPLAIN EXECUTE then shows the plan under plan_cache_mode.
const (
	setPlanCacheMode     = "SET plan_cache_mode = %s"
	explainExecute       = "EXPLAIN (FORMAT JSON) EXECUTE %s(%s)"
	explainExecuteNoArgs = "EXPLAIN (FORMAT JSON) EXECUTE %s"
	preparedStatement    = "plantest_statement"
)

// Explain returns the plan PostgreSQL picks for the recorded statement in
// the given mode, on conn (which it leaves as it found it).
func Explain(ctx context.Context, conn *pgx.Conn, rec *Recorder, mode Mode) (*Node, error) {
	if rec.SQL == "" {
		return nil, errors.New("plantest: nothing recorded")
	}
	setting := map[Mode]string{Custom: "force_custom_plan", Generic: "force_generic_plan"}[mode]
	if setting == "" {
		return nil, fmt.Errorf("plantest: unknown mode %q", mode)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf(setPlanCacheMode, setting)); err != nil {
		return nil, err
	}
	defer func() { _, _ = conn.Exec(ctx, fmt.Sprintf(setPlanCacheMode, "auto")) }()
	if _, err := conn.Prepare(ctx, preparedStatement, rec.SQL); err != nil {
		return nil, fmt.Errorf("plantest: preparing: %w", err)
	}
	defer func() {
		_ = conn.Deallocate(ctx, preparedStatement)
	}()
	placeholders := make([]string, len(rec.Args))
	args := make([]any, len(rec.Args))
	for i, a := range rec.Args {
		placeholders[i] = fmt.Sprintf("$%d", i+1)
		args[i] = literal(a)
	}
	sql := fmt.Sprintf(explainExecute, preparedStatement, strings.Join(placeholders, ", "))
	if len(args) == 0 {
		sql = fmt.Sprintf(explainExecuteNoArgs, preparedStatement)
	}
	var out []byte
	queryArgs := append([]any{pgx.QueryExecModeSimpleProtocol}, args...)
	if err := conn.QueryRow(ctx, sql, queryArgs...).Scan(&out); err != nil {
		return nil, fmt.Errorf("plantest: explaining: %w", err)
	}
	var plans []struct {
		Plan Node `json:"Plan"`
	}
	if err := json.Unmarshal(out, &plans); err != nil {
		return nil, fmt.Errorf("plantest: reading the plan: %w", err)
	}
	if len(plans) != 1 {
		return nil, fmt.Errorf("plantest: %d plans", len(plans))
	}
	return &plans[0].Plan, nil
}

// literal turns byte slices (jsonb and bytea arguments) into text (nil into
// NULL), which
// the simple protocol sends as a literal the prepared parameter's type
// parses; pgx would send them as bytea escapes.
func literal(a any) any {
	switch v := a.(type) {
	case json.RawMessage:
		if v == nil {
			return nil
		}
		return string(v)
	case []byte:
		if v == nil {
			return nil
		}
		return string(v)
	}
	return a
}

// Node is one node of an EXPLAIN (FORMAT JSON) plan.
type Node struct {
	Type       string  `json:"Node Type"`
	Relation   string  `json:"Relation Name"`
	Alias      string  `json:"Alias"`
	Index      string  `json:"Index Name"`
	IndexCond  string  `json:"Index Cond"`
	RecheckOn  string  `json:"Recheck Cond"`
	Filter     string  `json:"Filter"`
	JoinFilter string  `json:"Join Filter"`
	Plans      []*Node `json:"Plans"`
}

// Scan is one way a plan reaches a table.
type Scan struct {
	Relation string
	Alias    string
	Type     string // Seq Scan, Tid Scan, Index Scan, Index Only Scan, Bitmap Heap Scan
	Index    string // empty for a sequential scan and a TID scan
	Keyed    bool   // the index is searched with a condition, not walked whole
}

// Scans lists every table access in the plan.
func (n *Node) Scans() []Scan {
	var out []Scan
	n.walk(func(m *Node) {
		switch m.Type {
		case "Seq Scan":
			out = append(out, Scan{Relation: m.Relation, Alias: m.Alias, Type: m.Type})
		case "Tid Scan":
			out = append(out, Scan{Relation: m.Relation, Alias: m.Alias, Type: m.Type, Keyed: true})
		case "Index Scan", "Index Only Scan":
			out = append(out, Scan{Relation: m.Relation, Alias: m.Alias, Type: m.Type, Index: m.Index, Keyed: m.IndexCond != ""})
		case "Bitmap Heap Scan":
			m.walk(func(b *Node) {
				if b.Type == "Bitmap Index Scan" {
					out = append(out, Scan{Relation: m.Relation, Alias: m.Alias, Type: m.Type, Index: b.Index, Keyed: b.IndexCond != ""})
				}
			})
		}
	})
	return out
}

// unlimitedScans lists the table accesses below n whose rows n must read
// in full before it can hand out its first: those no Limit stands
// between, except the inner side of a nested loop whose outer side is
// itself limited, which is searched once per outer row.
func (n *Node) unlimitedScans() []Scan {
	var out []Scan
	for _, c := range n.Plans {
		out = append(out, c.unlimited()...)
	}
	return out
}

// unlimited is unlimitedScans of a node, the node's own scan included.
func (n *Node) unlimited() []Scan {
	switch {
	case n.Type == "Limit":
		return nil
	case n.Type == "Bitmap Heap Scan" || len(n.Plans) == 0:
		return n.Scans()
	case n.Type == "Nested Loop" && len(n.Plans) == 2:
		outer := n.Plans[0].unlimited()
		if len(outer) == 0 {
			return nil
		}
		return append(outer, n.Plans[1].unlimited()...)
	}
	return n.unlimitedScans()
}

func (n *Node) walk(f func(*Node)) {
	f(n)
	for _, c := range n.Plans {
		c.walk(f)
	}
}

// String renders the plan as an indented outline, for failure messages.
func (n *Node) String() string {
	var b strings.Builder
	var write func(m *Node, depth int)
	write = func(m *Node, depth int) {
		fmt.Fprintf(&b, "%s%s", strings.Repeat("  ", depth), m.Type)
		if m.Relation != "" {
			fmt.Fprintf(&b, " on %s", m.Relation)
		}
		if m.Index != "" {
			fmt.Fprintf(&b, " using %s", m.Index)
		}
		for _, kv := range [][2]string{{"cond", m.IndexCond}, {"filter", m.Filter}, {"join filter", m.JoinFilter}} {
			if kv[1] != "" {
				fmt.Fprintf(&b, " [%s: %s]", kv[0], shorten(kv[1]))
			}
		}
		b.WriteByte('\n')
		for _, c := range m.Plans {
			write(c, depth+1)
		}
	}
	write(n, 0)
	return b.String()
}

// shorten cuts a condition to a readable length: a custom plan spells out
// every element of an array parameter.
func shorten(cond string) string {
	const max = 160
	if len(cond) <= max {
		return cond
	}
	return cond[:max] + "…"
}

// Access says how a plan may reach one table.
type Access struct {
	// Indexes the plan may use on the table; a reach through any other
	// index, or a sequential scan, is a failure.
	Indexes []string
	// Walk lists the indexes that may be read from their start without a
	// search condition: partial indexes that hold only live rows (the
	// pending jobs, the pending messages), read in their order.
	Walk []string
	// TID allows reaching rows by tuple id, as a delete of rows just
	// selected by a keyed search does.
	TID bool
	// Seq allows a sequential scan, for a table that never holds history:
	// a row per subscription, or work in flight for milliseconds whose
	// dead rows a fixed vacuum threshold bounds.
	Seq bool
	// Sort allows a sort above the reach of the table: the rows it reads
	// there are bounded by the statement itself (a list of keys, one
	// stream, a window of positions) or are live rows a partial index
	// holds (pending, due, running), never history. Without it, a sort of
	// the rows of a table is a failure: the statement would read every row
	// its condition matches before its LIMIT could stop it, however many
	// that is.
	Sort bool
}

// Expect maps each table a statement touches to how it may be reached.
// A key is a table ("jobs") or a table and the alias the statement gives
// one reach of it ("outbox e"), which then has rules of its own. Tables not
// in it must not be read at all.
type Expect map[string]Access

// Check returns one line per way the plan breaks the expectation, none
// when it keeps it.
func (e Expect) Check(plan *Node) []string {
	var problems []string
	plan.walk(func(m *Node) {
		if m.Type != "Sort" && m.Type != "Incremental Sort" {
			return
		}
		for _, s := range m.unlimitedScans() {
			if a := e.access(s); !a.Sort {
				problems = append(problems, fmt.Sprintf("sorts every row it reads from %s before its limit can stop it", s.Relation))
			}
		}
	})
	for _, s := range plan.Scans() {
		a, ok := e.lookup(s)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("reads %s, which it should not touch (%s)", s.Relation, s.Type))
		case s.Type == "Tid Scan":
			if !a.TID {
				problems = append(problems, fmt.Sprintf("reaches %s by tuple id", s.Relation))
			}
		case s.Index == "" && a.Seq:
		case s.Index == "":
			problems = append(problems, fmt.Sprintf("sequential scan of %s", s.Relation))
		case !slices.Contains(a.Indexes, s.Index):
			problems = append(problems, fmt.Sprintf("reaches %s through %s, not %s", s.Relation, s.Index, strings.Join(a.Indexes, " or ")))
		case !s.Keyed && !slices.Contains(a.Walk, s.Index):
			problems = append(problems, fmt.Sprintf("walks all of %s on %s instead of searching it", s.Index, s.Relation))
		}
	}
	return problems
}

// lookup finds the rules for one reach of a table: those of its alias,
// else those of the table.
func (e Expect) lookup(s Scan) (Access, bool) {
	if a, ok := e[s.Relation+" "+s.Alias]; ok {
		return a, true
	}
	a, ok := e[s.Relation]
	return a, ok
}

// access is lookup without the second result: a table not in e has no
// rules, and Check reports reaching it on its own.
func (e Expect) access(s Scan) Access {
	a, _ := e.lookup(s)
	return a
}
