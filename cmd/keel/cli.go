package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/migrations"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: unreachable database, SQL error
	exitUsage = 2 // the command line is wrong
)

const usage = `keel applies keel's migrations and inspects a keel database.

Usage:
  keel [--database-url URL] migrate up [--to VERSION]    apply pending migrations
  keel [--database-url URL] migrate down [--to VERSION]  roll back one migration, or all above VERSION
  keel [--database-url URL] migrate status               list migrations and whether each is applied
  keel migrate sql                                       print the migrations' SQL, for other schema tools
  keel [--database-url URL] schema                       list keel's tables and views with their comments
  keel grant ROLE [--print]                              give a runtime role keel's privileges (no DDL)
  keel partition jobs|outbox [--rows N]                  convert the table to range partitions (past ~10^8 rows)
  keel partition list                                    the partitions of keel.jobs and keel.outbox
  keel stats                                             one screen: queues, stuck and dead jobs, outbox lag,
                                                         sagas, subscription lag
  keel jobs list [--state S] [--queue Q] [--kind K] [--limit N]
                                                         jobs, newest first
  keel jobs show|retry|cancel ID                         one job; retry or cancel it first
  keel queues list|pause NAME|resume NAME                queues and whether they are paused
  keel sagas list [--status S] [--workflow W] [--limit N]
                                                         workflow runs, newest first
  keel sagas show|cancel ID                              a run with its step history (cancel it first)
  keel sagas signal ID NAME [--value JSON] [--key K]     send a signal to a run
  keel events tail [--category C] [--from POS] [--limit N] [--follow]
                                                         the global feed (or one category), newest last
  keel subscriptions list|reset NAME [--position N]|resume NAME
                                                         subscriptions, their checkpoint and lag
  keel outbox list [--state dead|pending|delivered] [--limit N]
                                                         outbox messages, dead letters first
  keel outbox show ID                                    one message with its attempts and errors
  keel outbox requeue ID                                 put a dead message back in line
  keel version                                           print keel's version

The database comes from --database-url, or else from DATABASE_URL.
--json prints JSON instead of a table, for scripts.
`

// usageError is a mistake in the command line.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// cli holds what one invocation needs.
type cli struct {
	out, errOut io.Writer
	getenv      func(string) string
	databaseURL string
	jsonOut     bool
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{out: stdout, errOut: stderr, getenv: getenv}
	err := c.dispatch(ctx, args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, usage)
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "keel: %s (keel --help shows usage)\n", oneLine(ue))
		return exitUsage
	default:
		msg := oneLine(err)
		if !strings.HasPrefix(msg, "keel") { // library errors name their package already
			msg = "keel: " + msg
		}
		fmt.Fprintln(stderr, msg)
		if badInput(err) {
			return exitUsage
		}
		return exitError
	}
}

// badInput reports whether a library refused an argument of the command
// line before writing anything: the command line is wrong, as with a usage
// error, but the library's message says best what is wrong with it.
func badInput(err error) bool {
	var invalid *validate.Error
	return errors.As(err, &invalid) ||
		errors.Is(err, jobs.ErrInvalidOptions) ||
		errors.Is(err, saga.ErrInvalidOptions) ||
		errors.Is(err, saga.ErrEncode) ||
		errors.Is(err, events.ErrInvalidArgument) ||
		errors.Is(err, outbox.ErrInvalidMessage)
}

func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.databaseURL, "database-url", c.databaseURL, "PostgreSQL connection string (default: $DATABASE_URL)")
	fs.BoolVar(&c.jsonOut, "json", c.jsonOut, "print JSON instead of a table")
	return fs
}

// parse reads a command's flags wherever they stand among its arguments
// (keel sagas signal ID NAME --value true), leaving the others in fs.Args.
func (c *cli) parse(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return parseFlags(fs, append([]string{"--"}, positional...))
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	return nil
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	fs := c.flags("keel")
	if err := parseFlags(fs, args); err != nil { // up to the command; its own flags follow it
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	switch args[0] {
	case "migrate":
		return c.migrate(ctx, args[1:])
	case "schema":
		return c.schema(ctx, args[1:])
	case "outbox":
		return c.outbox(ctx, args[1:])
	case "stats":
		return c.stats(ctx, args[1:])
	case "grant":
		return c.grant(ctx, args[1:])
	case "partition":
		return c.partition(ctx, args[1:])
	case "jobs":
		return c.jobs(ctx, args[1:])
	case "queues":
		return c.queues(ctx, args[1:])
	case "sagas":
		return c.sagas(ctx, args[1:])
	case "events":
		return c.events(ctx, args[1:])
	case "subscriptions":
		return c.subscriptions(ctx, args[1:])
	case "version":
		return c.version(args[1:])
	case "help", "-h", "--help":
		return flag.ErrHelp
	default:
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
}

// connect opens a pool on the chosen database and checks that it answers,
// turning the usual failures into one readable line.
func (c *cli) connect(ctx context.Context) (*pgxpool.Pool, error) {
	url := c.databaseURL
	if url == "" {
		url = c.getenv("DATABASE_URL")
	}
	if url == "" {
		return nil, usageError{"no database: pass --database-url or set DATABASE_URL"}
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	cfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("invalid database URL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("cannot connect to %s:%d/%s: %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, oneLine(err))
	}
	return pool, nil
}

func (c *cli) migrate(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"migrate needs a subcommand: up, down, status or sql"}
	}
	sub := args[0]
	fs := c.flags("migrate " + sub)
	to := fs.Int64("to", -1, "target version")
	if err := c.parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("migrate %s: unexpected argument %q", sub, fs.Arg(0))}
	}
	switch sub {
	case "sql":
		return migrations.WriteSQL(c.out)
	case "up", "down", "status":
	default:
		return usageError{fmt.Sprintf("unknown migrate subcommand %q", sub)}
	}
	if *to < -1 || (*to == 0 && sub == "up") {
		return usageError{fmt.Sprintf("migrate %s: --to must be a migration version", sub)}
	}
	pool, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := migrations.New(pool, migrations.Config{})
	if err != nil {
		return err
	}
	defer m.Close()

	switch sub {
	case "up":
		var res []migrations.Result
		if *to >= 0 {
			res, err = m.UpTo(ctx, *to)
		} else {
			res, err = m.Up(ctx)
		}
		c.printResults(res)
		if err == nil && len(res) == 0 {
			fmt.Fprintln(c.out, "keel schema is up to date")
		}
		return err
	case "down":
		if *to >= 0 {
			res, err := m.DownTo(ctx, *to)
			c.printResults(res)
			return err
		}
		res, err := m.Down(ctx)
		if err != nil {
			return err
		}
		c.printResults([]migrations.Result{res})
		return nil
	default:
		return c.status(ctx, m)
	}
}

func (c *cli) printResults(res []migrations.Result) {
	for _, r := range res {
		fmt.Fprintf(c.out, "%-4s %s (%s)\n", r.Direction, r.Name, r.Duration.Round(time.Millisecond))
	}
}

func (c *cli) status(ctx context.Context, m *migrations.Migrator) error {
	sts, err := m.Status(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "VERSION\tMIGRATION\tAPPLIED AT")
	for _, s := range sts {
		at := "pending"
		if s.Applied {
			at = s.AppliedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%d\t%s\t%s\n", s.Version, s.Name, at)
	}
	return w.Flush()
}

func (c *cli) schema(ctx context.Context, args []string) error {
	fs := c.flags("schema")
	if err := c.parse(fs, args); err != nil {
		return err
	}
	pool, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	q := db.New(pool)
	ok, err := q.SchemaExists(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("no keel schema in this database: run keel migrate up")
	}
	rels, err := q.ListRelations(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tKIND\tCOMMENT")
	for _, r := range rels {
		fmt.Fprintf(w, "keel.%s\t%s\t%s\n", r.Name, r.Kind, firstLine(r.Comment))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "%d tables and views in schema keel\n", len(rels))
	return nil
}

// oneLine folds pgx's multi-line connection errors (one line per address
// tried) into one line, without repeats.
func oneLine(err error) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(l), ":"))
		if l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, ": ")
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func (c *cli) version(args []string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("version: unexpected argument %q", args[0])}
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		v = bi.Main.Version
	}
	fmt.Fprintf(c.out, "keel %s %s\n", v, runtime.Version())
	return nil
}

// verb is one subcommand of a command (keel jobs show ID): its name and
// what each of its arguments is.
type verb struct {
	name string
	args []string
}

// subcommand picks the verb args[0] names, parses the flags define adds to
// its flag set, and checks that the verb got its arguments.
func (c *cli) subcommand(command string, args []string, verbs []verb, define func(fs *flag.FlagSet)) (string, *flag.FlagSet, error) {
	names := make([]string, len(verbs))
	for i, v := range verbs {
		names[i] = v.name
	}
	list := strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	if len(names) == 1 {
		list = names[0]
	}
	if len(args) == 0 {
		return "", nil, usageError{fmt.Sprintf("%s needs a subcommand: %s", command, list)}
	}
	i := slices.Index(names, args[0])
	if i < 0 {
		return "", nil, usageError{fmt.Sprintf("unknown %s subcommand %q", command, args[0])}
	}
	v := verbs[i]
	fs := c.flags(command + " " + v.name)
	if define != nil {
		define(fs)
	}
	if err := c.parse(fs, args[1:]); err != nil {
		return "", nil, err
	}
	if err := storableArgs(fs); err != nil {
		return "", nil, err
	}
	switch {
	case len(v.args) == 0 && fs.NArg() > 0:
		return "", nil, usageError{fmt.Sprintf("%s %s: unexpected argument %q", command, v.name, fs.Arg(0))}
	case len(v.args) == 1 && fs.NArg() != 1:
		return "", nil, usageError{fmt.Sprintf("%s %s needs one %s", command, v.name, v.args[0])}
	case len(v.args) > 1 && fs.NArg() != len(v.args):
		return "", nil, usageError{fmt.Sprintf("%s %s needs a %s", command, v.name, strings.Join(v.args, " and a "))}
	}
	return v.name, fs, nil
}

// storableArgs refuses an argument or flag value Postgres could not take as
// text (bytes that are not UTF-8) before the command connects; argv cannot
// hold a NUL.
func storableArgs(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil {
			err = validate.Text("--"+f.Name, f.Value.String(), 0)
		}
	})
	for i, a := range fs.Args() {
		if err == nil {
			err = validate.Text(fmt.Sprintf("argument %d", i+1), a, 0)
		}
	}
	if err != nil {
		return usageError{fmt.Sprintf("%s: %s", fs.Name(), err)}
	}
	return nil
}
