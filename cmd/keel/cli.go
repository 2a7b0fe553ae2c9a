package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/validate"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command ran and failed: unreachable database, SQL error
	exitUsage = 2 // the command line is wrong
)

// usageError is a mistake in the command line. run prints it on one line
// after the name of the command it was made in, with a hint to that
// command's help on the next.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// cli holds what one invocation needs.
type cli struct {
	out, errOut io.Writer
	getenv      func(string) string
	databaseURL string
	jsonOut     bool
	// cmd names the command being run ("jobs list"), or its group while the
	// command is being picked ("jobs"); empty before that.
	cmd string
	// now is the database's clock when the command connected: the CLI
	// measures ages against it.
	now time.Time
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c := &cli{out: stdout, errOut: stderr, getenv: getenv}
	err := c.dispatch(ctx, args)
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		c.printUsageError(ue.msg)
		return exitUsage
	case badInput(err):
		c.printUsageError(oneLine(err))
		return exitUsage
	default:
		msg := oneLine(err)
		if !strings.HasPrefix(msg, "keel") { // library errors name their package already
			msg = "keel: " + msg
		}
		fmt.Fprintln(c.errOut, msg)
		return exitError
	}
}

// printUsageError writes the two lines of a usage error: what is wrong, in
// which command, and where its usage is.
func (c *cli) printUsageError(msg string) {
	where, help := "keel: ", "keel --help"
	if c.cmd != "" {
		where, help = "keel: "+c.cmd+": ", "keel "+c.cmd+" --help"
	}
	if strings.HasPrefix(msg, "keel") { // a library's message names its package
		where = ""
	}
	fmt.Fprintf(c.errOut, "%s%s\nrun '%s' for usage\n", where, msg, help)
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

// globalFlags defines the flags every command that connects (db) or prints
// a table (json) takes, before its name as well as after it.
func (c *cli) globalFlags(fs *flag.FlagSet, db, json bool) {
	if db {
		fs.StringVar(&c.databaseURL, "database-url", c.databaseURL, "PostgreSQL connection `URL` (default: $DATABASE_URL)")
	}
	if json {
		fs.BoolVar(&c.jsonOut, "json", c.jsonOut, "print JSON instead of a table, for scripts (default: off)")
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parse reads a command's flags wherever they stand among its arguments
// (keel sagas signal ID NAME --value true), leaving the others in fs.Args.
func parse(fs *flag.FlagSet, args []string) error {
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
		return usageError{flagError(err)}
	}
	return nil
}

// flagError says what the flag package found wrong in the CLI's words,
// where a flag is written --name.
func flagError(err error) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return "unknown flag --" + name
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return "flag --" + name + " needs a value"
	}
	if strings.Contains(msg, " for flag -") { // invalid value "x" for flag -limit: …
		return strings.Replace(msg, " for flag -", " for --", 1)
	}
	return strings.Replace(msg, " for -", " for --", 1) // invalid boolean value "x" for -follow: …
}

// dispatch reads the flags before the command, picks the command the words
// after them name, and runs it; --help at any level prints that level's
// help instead.
func (c *cli) dispatch(ctx context.Context, args []string) error {
	fs := newFlagSet("keel")
	c.globalFlags(fs, true, true)
	if err := parseFlags(fs, args); err != nil { // up to the command; its own flags follow it
		if errors.Is(err, flag.ErrHelp) {
			return c.printHelp(nil)
		}
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		return usageError{"no command given"}
	}
	if args[0] == "help" {
		return c.printHelp(args[1:])
	}
	g := findGroup(args[0])
	if g == nil {
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	c.cmd = g.name
	cmd, rest, err := pickCommand(g, args[1:])
	if errors.Is(err, flag.ErrHelp) {
		writeGroupHelp(c.out, g)
		return nil
	}
	if err != nil {
		return err
	}
	c.cmd = cmd.name
	return c.runCommand(ctx, cmd, rest)
}

// pickCommand finds the command of g that args name, and returns the
// arguments that follow its name. A group that is a command takes args
// whole.
func pickCommand(g *group, args []string) (*command, []string, error) {
	if cmd := g.alone(); cmd != nil {
		return cmd, args, nil
	}
	names := make([]string, len(g.commands))
	for i, cmd := range g.commands {
		names[i] = cmd.verb()
	}
	list := orList(names)
	switch {
	case len(args) == 0:
		return nil, nil, usageError{"needs a subcommand: " + list}
	case isHelp(args[0]):
		return nil, nil, flag.ErrHelp
	case strings.HasPrefix(args[0], "-"):
		return nil, nil, usageError{fmt.Sprintf("needs a subcommand before the flag %s: %s", args[0], list)}
	}
	i := slices.Index(names, args[0])
	if i < 0 {
		return nil, nil, usageError{fmt.Sprintf("unknown subcommand %q; try %s", args[0], list)}
	}
	return &g.commands[i], args[1:], nil
}

// orList joins words as a sentence does: "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func isHelp(arg string) bool {
	return arg == "help" || arg == "-h" || arg == "-help" || arg == "--help"
}

// runCommand parses a command's flags, checks its arguments and runs it.
func (c *cli) runCommand(ctx context.Context, cmd *command, args []string) error {
	fs := newFlagSet("keel " + cmd.name)
	c.globalFlags(fs, cmd.db, cmd.json)
	act := cmd.setup(fs)
	if err := parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return writeCommandHelp(c.out, cmd)
		}
		return err
	}
	if err := storableArgs(fs, cmd.args); err != nil {
		return err
	}
	if err := cmd.checkArgs(fs.Args()); err != nil {
		return err
	}
	return act(c, ctx, fs.Args())
}

// checkArgs checks that the command got each of its arguments, and no more.
func (cmd *command) checkArgs(args []string) error {
	if len(args) > len(cmd.args) {
		return usageError{fmt.Sprintf("unexpected argument %q", args[len(cmd.args)])}
	}
	if len(args) < len(cmd.args) {
		whats := make([]string, len(cmd.args))
		for i, a := range cmd.args {
			whats[i] = a.what
		}
		return usageError{"needs " + strings.Join(whats, " and ")}
	}
	return nil
}

// storableArgs refuses an argument or flag value Postgres could not take as
// text (bytes that are not UTF-8) before the command connects; argv cannot
// hold a NUL. An argument is named as usage names it (ID).
func storableArgs(fs *flag.FlagSet, named []arg) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if err == nil {
			err = validate.Text("--"+f.Name, f.Value.String(), 0)
		}
	})
	for i, a := range fs.Args() {
		name := fmt.Sprintf("argument %d", i+1)
		if i < len(named) {
			name = named[i].name
		}
		if err == nil {
			err = validate.Text(name, a, 0)
		}
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
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
