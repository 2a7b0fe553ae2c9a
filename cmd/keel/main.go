// Command keel applies keel's migrations and inspects and repairs a keel
// database: its jobs and queues, saga runs, events and subscriptions, and
// outbox.
//
// Usage:
//
//	keel [--database-url URL] [--json] COMMAND [SUBCOMMAND] [ARGS] [flags]
//
// The commands:
//
//	keel migrate up                 apply the migrations not yet applied
//	keel migrate down               roll back the last migration, or every one above --to
//	keel migrate status             list keel's migrations and whether each is applied
//	keel migrate sql                print the migrations' SQL, or write them as goose files (--goose DIR)
//	keel schema                     list keel's tables and views with their comments
//	keel grant ROLE                 give a runtime role keel's privileges (no DDL)
//	keel partition jobs             convert keel.jobs to range partitions (past ~10^8 rows)
//	keel partition outbox           convert keel.outbox to range partitions (past ~10^8 rows)
//	keel partition list             list the partitions of keel.jobs and keel.outbox
//	keel stats                      one screen of queues, stuck and dead jobs, outbox, sagas and subscriptions
//	keel jobs list                  jobs, newest first; keel's own jobs only with --all
//	keel jobs show ID               one job with its arguments, output and errors
//	keel jobs retry ID              make a job available at once, even a discarded, cancelled or completed one
//	keel jobs cancel ID             cancel a job (a running one is asked to stop)
//	keel jobs delete ID             delete a job that is not running and that no pending job waits on
//	keel queues list                queues and whether each is paused
//	keel queues pause QUEUE         stop workers from taking jobs of a queue
//	keel queues resume QUEUE        let workers take jobs of a paused queue again
//	keel sagas list                 workflow runs, newest first
//	keel sagas show ID              a run with its step history
//	keel sagas cancel ID            cancel a run: its completed steps are compensated
//	keel sagas signal ID SIGNAL     send a signal to a run
//	keel events tail                the global feed (or one category), newest last
//	keel subscriptions list         subscriptions, their checkpoint and how far behind each is
//	keel subscriptions reset NAME   move a subscription's checkpoint, clearing its failure
//	keel subscriptions resume NAME  let a parked subscription retry the event it failed on
//	keel outbox list                outbox messages, dead letters first
//	keel outbox show ID             one message with its attempts and errors
//	keel outbox requeue ID          put a dead message back in line
//	keel ui                         serve the web console: jobs, queues, outbox, sagas and events
//	keel version                    print keel's version
//
// keel --help lists the commands, keel COMMAND --help a command's
// subcommands, and keel COMMAND SUBCOMMAND --help one's arguments and flags,
// each with its default. The command table in commands.go is the one source
// of all three, and of the list above (a test keeps them in step).
//
// The database comes from --database-url or, when that is not given, from
// the DATABASE_URL environment variable. --json prints JSON instead of a
// table, for scripts; every table has a header row.
//
// A mistake in the command line prints two lines on stderr, what is wrong
// and the help to read, and exits with status 2; a command that runs and
// fails prints one line and exits with 1; help exits with 0.
//
// Every time keel prints is the database's: keel stores times from the
// database's clock, and ages ("3s ago") are measured against that clock
// too, never against the clock of the machine the CLI runs on.
//
// keel jobs list leaves out keel's own jobs, whose kinds start with "keel."
// (keel.saga.run executes saga runs); --all lists them too, with "-" for
// their attempt limit, as they retry without one.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
