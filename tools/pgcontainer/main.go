// Command pgcontainer runs PostgreSQL in a throwaway Docker container through
// testcontainers-go, for keel's tests and demo on a machine with a Docker
// engine and no PostgreSQL server of its own. scripts/postgres.sh builds and
// runs it (`make test`, `make demo`, `make db`); it is a Go module of its own
// so that keel's go.mod, which every user of the library downloads, carries
// none of Docker's client libraries.
//
//	pgcontainer [-image IMAGE] [-export]
//	pgcontainer [-image IMAGE] -- COMMAND [ARG...]
//
// Without a command it starts the container, prints its connection string
// (or, with -export, a shell line that exports it as DATABASE_URL) on one
// line of standard output and keeps the container until it receives SIGINT
// or SIGTERM; then it removes the container and exits.
//
// With a command it starts the container, runs the command with
// DATABASE_URL set to the container's connection string, removes the
// container when the command ends and exits with the command's status.
// SIGINT and SIGTERM are passed on to the command, and the container is
// removed once the command has ended.
//
// The role is postgres (password postgres), a superuser that may create
// databases, on database postgres, over a port Docker maps on the host. A
// pgcontainer that is killed outright (SIGKILL) leaves its container to
// testcontainers' reaper (Ryuk), which removes it soon after.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// defaultImage is the server the container runs.
const defaultImage = "postgres:16-alpine"

func main() {
	os.Exit(run())
}

func run() int {
	image := flag.String("image", defaultImage, "the PostgreSQL image to run")
	export := flag.Bool("export", false, "print an export DATABASE_URL='…' line instead of the bare connection string")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: pgcontainer [-image IMAGE] [-export]\n       pgcontainer [-image IMAGE] -- COMMAND [ARG...]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	command := flag.Args()

	// Signals that arrive while the container starts end the start-up; the
	// container, if made, is removed all the same.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	url, stop, err := start(ctx, *image)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgcontainer:", err)
		return 1
	}
	defer stop()

	if len(command) == 0 {
		if *export {
			fmt.Printf("export DATABASE_URL='%s'\n", url)
		} else {
			fmt.Println(url)
		}
		fmt.Fprintln(os.Stderr, "pgcontainer: PostgreSQL runs in a container until this process is interrupted (Ctrl-C) or terminated")
		<-signals
		return 0
	}

	fmt.Fprintf(os.Stderr, "pgcontainer: PostgreSQL in a container at %s (removed when %s ends)\n", url, command[0])
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pgcontainer:", err)
		return 127
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-signals:
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			return exitStatus(err)
		}
	}
}

// start runs the container and returns its connection string and a function
// that removes it.
func start(ctx context.Context, image string) (string, func(), error) {
	fmt.Fprintf(os.Stderr, "pgcontainer: starting %s in Docker\n", image)
	ctr, err := tcpostgres.Run(ctx, image,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
	)
	stop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := testcontainers.TerminateContainer(ctr, testcontainers.StopContext(ctx)); err != nil {
			fmt.Fprintln(os.Stderr, "pgcontainer: removing the container:", err)
		}
	}
	if err != nil {
		stop() // TerminateContainer accepts a nil container
		return "", nil, fmt.Errorf("starting a PostgreSQL container (is a Docker engine running?): %w", err)
	}
	url, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("the container's connection string: %w", err)
	}
	return url, stop, nil
}

// exitStatus is the status to exit with after the command ended with err: its
// own, or 128 plus the signal that ended it, as a shell reports it.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	fmt.Fprintln(os.Stderr, "pgcontainer:", err)
	return 1
}
