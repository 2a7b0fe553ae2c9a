// Command keel applies keel's migrations and inspects a keel database.
//
//	keel [--database-url URL] migrate up [--to VERSION]
//	keel [--database-url URL] migrate down [--to VERSION]
//	keel [--database-url URL] migrate status
//	keel migrate sql
//	keel [--database-url URL] schema
//	keel [--database-url URL] partition jobs|outbox [--rows N]
//	keel [--database-url URL] partition list
//	keel version
//
// The database comes from --database-url or, when that is not given, from
// the DATABASE_URL environment variable.
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
