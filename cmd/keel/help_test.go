package main

import (
	"flag"
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
)

// Each level of help describes that level only, on stdout, with exit 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		args   []string
		want   []string // lines, after flatten
		absent []string
	}{
		{"keel --help", []string{"--help"}, []string{
			"Usage: keel [flags] COMMAND [SUBCOMMAND] [ARGS] [flags]",
			"migrate apply, roll back, list and export keel's migrations",
			"jobs list, show, retry, cancel and delete jobs",
			"subscriptions list, reset and resume event subscriptions",
			"--database-url URL PostgreSQL connection URL (default: $DATABASE_URL)",
		}, []string{"--state", "retry ID"}},
		{"keel -h", []string{"-h"}, []string{"sagas list, show, cancel and signal workflow runs"}, nil},
		{"keel help", []string{"help"}, []string{"version print keel's version"}, nil},
		{"keel jobs --help", []string{"jobs", "--help"}, []string{
			"Usage: keel jobs SUBCOMMAND [ARGS] [flags]",
			"list jobs, newest first; keel's own jobs only with --all",
			"show ID one job with its arguments, output and errors",
			"retry ID make a job available at once, even a discarded, cancelled or completed one",
			"cancel ID cancel a job (a running one is asked to stop)",
			"delete ID delete a job that is not running and that no pending job waits on",
		}, []string{"--limit", "sagas", "--database-url"}},
		{"keel help jobs", []string{"help", "jobs"}, []string{"Usage: keel jobs SUBCOMMAND [ARGS] [flags]"}, nil},
		{"keel jobs list --help", []string{"jobs", "list", "--help"}, []string{
			"Usage: keel jobs list [flags]",
			"--all also list keel's own jobs, whose kinds start with \"keel.\" (default: off)",
			"--kind KIND only jobs of this kind (default: every kind)",
			"--limit N show at most n jobs, the newest (default: 50)",
			"--queue QUEUE only jobs of this queue (default: every queue)",
			"--state STATE only jobs in this state: pending, scheduled, available, running, retryable, completed, cancelled or discarded (default: every state)",
			"--json print JSON instead of a table, for scripts (default: off)",
		}, []string{"--status", "--value", "retry ID", "sagas"}},
		{"flags before --help", []string{"jobs", "list", "--state", "running", "-h"}, []string{"Usage: keel jobs list [flags]"}, nil},
		{"keel help jobs list", []string{"help", "jobs", "list"}, []string{"Usage: keel jobs list [flags]"}, nil},
		{"a command that is a group", []string{"stats", "--help"}, []string{"Usage: keel stats [flags]"}, []string{"SUBCOMMAND"}},
		{"keel sagas signal --help", []string{"sagas", "signal", "--help"}, []string{
			"Usage: keel sagas signal ID SIGNAL [flags]",
			"ID is a run id.",
			"--value VALUE the signal's value, as JSON (default: null)",
		}, []string{"--status", "--limit"}},
	}
	for _, tc := range tests {
		code, out, errOut := keel(t, nil, tc.args...)
		if code != exitOK || errOut != "" {
			t.Errorf("%s: exit %d, stderr %q", tc.name, code, errOut)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			lines[flatten(l)] = true
		}
		for _, w := range tc.want {
			if !lines[w] {
				t.Errorf("%s: no line %q in:\n%s", tc.name, w, out)
			}
		}
		for _, a := range tc.absent {
			if strings.Contains(out, a) {
				t.Errorf("%s: help shows %q, which is not this level's:\n%s", tc.name, a, out)
			}
		}
	}
}

// Every command's help shows how to type it, what it does, and each flag
// it takes with its default.
func TestEveryCommandHelpListsItsFlags(t *testing.T) {
	t.Parallel()
	for _, g := range commandGroups() {
		for _, cmd := range g.commands {
			args := append(strings.Fields(cmd.name), "--help")
			code, out, errOut := keel(t, nil, args...)
			if code != exitOK || !strings.HasPrefix(out, "Usage: "+cmd.synopsis()) || !strings.Contains(flatten(out), flatten(sentence(cmd.summary))) {
				t.Errorf("keel %s --help: exit %d, stderr %q:\n%s", cmd.name, code, errOut, out)
			}
			fs := newFlagSet(cmd.name)
			cmd.setup(fs)
			(&cli{}).globalFlags(fs, cmd.db, cmd.json)
			fs.VisitAll(func(f *flag.Flag) {
				re := regexp.MustCompile(`(?m)^  --` + regexp.QuoteMeta(f.Name) + `\b.*\(default[: ].*\)$`)
				if !re.MatchString(out) {
					t.Errorf("keel %s --help has no line for --%s with its default:\n%s", cmd.name, f.Name, out)
				}
			})
		}
	}
}

// A usage error is one line saying what is wrong and where, and one naming
// the help to read; it exits with 2 and prints nothing on stdout.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string // the first line; the second names the help of the command before the colon
		help string
	}{
		{nil, "keel: no command given", "keel --help"},
		{[]string{"frobnicate"}, `keel: unknown command "frobnicate"`, "keel --help"},
		{[]string{"--foo", "stats"}, "keel: unknown flag --foo", "keel --help"},
		{[]string{"jobs"}, "keel: jobs: needs a subcommand: list, show, retry, cancel or delete", "keel jobs --help"},
		{[]string{"jobs", "frob"}, `keel: jobs: unknown subcommand "frob"; try list, show, retry, cancel or delete`, "keel jobs --help"},
		{[]string{"jobs", "--json", "list"}, "keel: jobs: needs a subcommand before the flag --json: list, show, retry, cancel or delete", "keel jobs --help"},
		{[]string{"jobs", "list", "--foo"}, "keel: jobs list: unknown flag --foo", "keel jobs list --help"},
		{[]string{"jobs", "list", "--limit", "many"}, `keel: jobs list: invalid value "many" for --limit: parse error`, "keel jobs list --help"},
		{[]string{"jobs", "list", "--limit"}, "keel: jobs list: flag --limit needs a value", "keel jobs list --help"},
		{[]string{"jobs", "list", "running"}, `keel: jobs list: unexpected argument "running"`, "keel jobs list --help"},
		{[]string{"jobs", "show"}, "keel: jobs show: needs a job id", "keel jobs show --help"},
		{[]string{"jobs", "show", "1", "2"}, `keel: jobs show: unexpected argument "2"`, "keel jobs show --help"},
		{[]string{"sagas", "signal", "run-1"}, "keel: sagas signal: needs a run id and a signal name", "keel sagas signal --help"},
		{[]string{"sagas", "list", "--value", "1"}, "keel: sagas list: unknown flag --value", "keel sagas list --help"},
		{[]string{"version", "--json"}, "keel: version: unknown flag --json", "keel version --help"},
		{[]string{"stats", "now"}, `keel: stats: unexpected argument "now"`, "keel stats --help"},
		{[]string{"help", "frobnicate"}, `keel: help: unknown command "frobnicate"`, "keel --help"},
		{[]string{"events", "tail", "--follow=maybe"}, `keel: events tail: invalid boolean value "maybe" for --follow: parse error`, "keel events tail --help"},
	}
	for _, tc := range tests {
		code, out, errOut := keel(t, nil, tc.args...)
		want := tc.want + "\nrun '" + tc.help + "' for usage\n"
		if code != exitUsage || errOut != want || out != "" {
			t.Errorf("keel %q: exit %d, stdout %q, stderr\n%s\nwant exit 2 and\n%s", tc.args, code, out, errOut, want)
		}
	}
}

// The package doc lists every command of the command table, with the
// synopsis and summary its help shows, and no command the table lacks.
func TestDocListsEveryCommand(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "main.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	listed := map[string]bool{}
	for _, l := range strings.Split(doc, "\n") {
		if strings.HasPrefix(l, "\tkeel ") && !strings.Contains(l, "COMMAND") {
			listed[strings.Join(strings.Fields(l), " ")] = true
		}
	}
	for _, g := range commandGroups() {
		for _, cmd := range g.commands {
			line := cmd.synopsis() + " " + cmd.summary
			if !listed[line] {
				t.Errorf("the package doc (main.go) does not list %q; add the line\n//\t%s", cmd.name, line)
			}
			delete(listed, line)
		}
	}
	for l := range listed {
		t.Errorf("the package doc lists %q, which is no command of the table or has another summary", l)
	}
}
