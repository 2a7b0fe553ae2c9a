package main

import (
	"context"
	"flag"
	"strings"

	"github.com/keelpg/keel/migrations"
)

// group is the first word of a command line (keel jobs …) with the commands
// it leads to. A command that stands alone (keel stats) is a group of one
// command of the same name.
type group struct {
	name     string
	summary  string // one line, in keel --help
	commands []command
}

// command is one thing keel does: the words that name it, its arguments,
// what it is for and its flags. Help, usage errors and the package doc are
// all read from these.
type command struct {
	name    string // the words after keel: "jobs list", "stats"
	args    []arg
	summary string // one line, in its group's help and the package doc
	about   string // what its own help says after the summary, if anything
	db      bool   // it connects: --database-url applies
	json    bool   // --json prints JSON instead of its table
	// setup defines the command's flags on fs and returns what runs it with
	// their values once they are parsed.
	setup func(fs *flag.FlagSet) action
}

// action runs a command with its positional arguments. The cli comes
// first, so that a method of cli is an action: (*cli).stats.
type action func(c *cli, ctx context.Context, args []string) error

// arg is a positional argument: how usage shows it (ID) and what it is
// (a job id).
type arg struct{ name, what string }

// alone is the group's command when the group is a command itself (keel
// stats), and nil when its commands are named by a second word.
func (g *group) alone() *command {
	if len(g.commands) == 1 && g.commands[0].name == g.name {
		return &g.commands[0]
	}
	return nil
}

// verb is the command's word within its group: list for keel jobs list.
func (cmd *command) verb() string {
	_, verb, _ := strings.Cut(cmd.name, " ")
	return verb
}

// synopsis is the command as a user types it: "keel jobs show ID".
func (cmd *command) synopsis() string {
	s := "keel " + cmd.name
	for _, a := range cmd.args {
		s += " " + a.name
	}
	return s
}

// noFlags is the setup of a command that takes no flags of its own.
func noFlags(act action) func(*flag.FlagSet) action {
	return func(*flag.FlagSet) action { return act }
}

func findGroup(name string) *group {
	groups := commandGroups()
	for i := range groups {
		if groups[i].name == name {
			return &groups[i]
		}
	}
	return nil
}

// commandGroups is every command of the CLI, in the order help lists them.
func commandGroups() []group {
	jobID, queueName := arg{"ID", "a job id"}, arg{"QUEUE", "a queue name"}
	runID, signalName := arg{"ID", "a run id"}, arg{"SIGNAL", "a signal name"}
	subName, messageID, roleName := arg{"NAME", "a subscription name"}, arg{"ID", "a message id"}, arg{"ROLE", "a role name"}
	return []group{
		{"migrate", "apply, roll back, list and export keel's migrations", []command{
			{name: "migrate up", summary: "apply the migrations not yet applied", db: true, setup: migrateUp},
			{name: "migrate down", summary: "roll back the last migration, or every one above --to", db: true, setup: migrateDown},
			{name: "migrate status", summary: "list keel's migrations and whether each is applied", db: true, setup: noFlags((*cli).migrateStatus)},
			{name: "migrate sql", summary: "print the migrations' SQL, or write them as goose files (--goose DIR)",
				about: "Without --goose it prints the SQL that migrate up runs, for schema tools other than goose. " +
					"With --goose it writes keel's migrations, goose files of the same names and versions, into DIR; " +
					"apply them with the goose CLI: goose -dir DIR -table " + migrations.VersionTable + " postgres \"$DATABASE_URL\" up " +
					"(-table keeps keel's versions apart from yours, in the table keel migrate uses). " +
					"A file already in DIR that differs is left alone and the command fails.",
				setup: migrateSQL},
		}},
		{"schema", "list keel's tables and views with their comments", []command{
			{name: "schema", summary: "list keel's tables and views with their comments", db: true, setup: noFlags((*cli).schema)},
		}},
		{"grant", "give a runtime role keel's privileges (no DDL)", []command{
			{name: "grant", args: []arg{roleName}, summary: "give a runtime role keel's privileges (no DDL)", db: true, setup: grantFlags},
		}},
		{"partition", "convert keel.jobs or keel.outbox to range partitions; list partitions", []command{
			{name: "partition jobs", summary: "convert keel.jobs to range partitions (past ~10^8 rows)", db: true, json: true, setup: partitionFlags(migrations.PartitionJobs)},
			{name: "partition outbox", summary: "convert keel.outbox to range partitions (past ~10^8 rows)", db: true, json: true, setup: partitionFlags(migrations.PartitionOutbox)},
			{name: "partition list", summary: "list the partitions of keel.jobs and keel.outbox", db: true, json: true, setup: noFlags((*cli).partitionList)},
		}},
		{"stats", "one screen of queues, stuck and dead jobs, outbox, sagas and subscriptions", []command{
			{name: "stats", summary: "one screen of queues, stuck and dead jobs, outbox, sagas and subscriptions", db: true, json: true,
				about: "Queue counts include keel's own jobs (the saga engine's), which take the queues' workers too.",
				setup: noFlags((*cli).stats)},
		}},
		{"jobs", "list, show, retry, cancel and delete jobs", []command{
			{name: "jobs list", summary: "jobs, newest first; keel's own jobs only with --all", db: true, json: true,
				about: "keel's own jobs are those whose kind starts with \"keel.\", such as keel.saga.run, the jobs that execute saga runs.",
				setup: jobsList},
			{name: "jobs show", args: []arg{jobID}, summary: "one job with its arguments, output and errors", db: true, json: true, setup: noFlags(jobsShow("show"))},
			{name: "jobs retry", args: []arg{jobID}, summary: "make a job available at once, even a discarded, cancelled or completed one", db: true, json: true, setup: noFlags(jobsShow("retry"))},
			{name: "jobs cancel", args: []arg{jobID}, summary: "cancel a job (a running one is asked to stop)", db: true, json: true, setup: noFlags(jobsShow("cancel"))},
			{name: "jobs delete", args: []arg{jobID}, summary: "delete a job that is not running and that no pending job waits on", db: true, json: true, setup: noFlags(jobsShow("delete"))},
		}},
		{"queues", "list, pause and resume job queues", []command{
			{name: "queues list", summary: "queues and whether each is paused", db: true, json: true, setup: noFlags(queues(""))},
			{name: "queues pause", args: []arg{queueName}, summary: "stop workers from taking jobs of a queue", db: true, json: true, setup: noFlags(queues("pause"))},
			{name: "queues resume", args: []arg{queueName}, summary: "let workers take jobs of a paused queue again", db: true, json: true, setup: noFlags(queues("resume"))},
		}},
		{"sagas", "list, show, cancel and signal workflow runs", []command{
			{name: "sagas list", summary: "workflow runs, newest first", db: true, json: true, setup: sagasList},
			{name: "sagas show", args: []arg{runID}, summary: "a run with its step history", db: true, json: true, setup: noFlags(sagaAction("show"))},
			{name: "sagas cancel", args: []arg{runID}, summary: "cancel a run: its completed steps are compensated", db: true, json: true, setup: noFlags(sagaAction("cancel"))},
			{name: "sagas signal", args: []arg{runID, signalName}, summary: "send a signal to a run", db: true, json: true, setup: sagasSignal},
		}},
		{"events", "print the event feed", []command{
			{name: "events tail", summary: "the global feed (or one category), newest last", db: true, json: true,
				about: "With --json it prints one JSON object per line, so a follower's output can be piped.",
				setup: eventsTail},
		}},
		{"subscriptions", "list, reset and resume event subscriptions", []command{
			{name: "subscriptions list", summary: "subscriptions, their checkpoint and how far behind each is", db: true, json: true, setup: noFlags(subscriptions(""))},
			{name: "subscriptions reset", args: []arg{subName}, summary: "move a subscription's checkpoint, clearing its failure", db: true, json: true, setup: subscriptionsReset},
			{name: "subscriptions resume", args: []arg{subName}, summary: "let a parked subscription retry the event it failed on", db: true, json: true, setup: noFlags(subscriptions("resume"))},
		}},
		{"outbox", "list, show and requeue outbox messages", []command{
			{name: "outbox list", summary: "outbox messages, dead letters first", db: true, json: true, setup: outboxList},
			{name: "outbox show", args: []arg{messageID}, summary: "one message with its attempts and errors", db: true, json: true, setup: noFlags(outboxShow(false))},
			{name: "outbox requeue", args: []arg{messageID}, summary: "put a dead message back in line", db: true, json: true, setup: noFlags(outboxShow(true))},
		}},
		{"ui", "serve the web console: jobs, queues, outbox, sagas and events", []command{
			{name: "ui", summary: "serve the web console: jobs, queues, outbox, sagas and events", db: true,
				about: "It serves until Ctrl-C. Basic authentication is on when " + envUIUser + " and " + envUIPassword +
					" are set, a bearer token when " + envUIToken + " is; without them, keep --addr on a loopback address.",
				setup: uiFlags},
		}},
		{"version", "print keel's version", []command{
			{name: "version", summary: "print keel's version", setup: noFlags((*cli).version)},
		}},
	}
}
