package migrations

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/keeltype"
)

// grantStatements give a runtime role what keel needs at run time and
// nothing more: no DDL, no ownership. GRANT takes the role as an
// identifier, which sqlc cannot bind as a parameter; %[1]s is filled with
// pgx.Identifier.Sanitize. The ALTER DEFAULT PRIVILEGES lines cover tables
// that later keel migrations create, when the same owner role applies them.
// The two functions are the retention of a partitioned keel.jobs or
// keel.outbox; they run as their owner, who may create and drop partitions.
// Reading VersionTable lets the role call Migrator.Up at start-up (a no-op
// when nothing is pending), Version and Status.
const grantStatements = `GRANT USAGE ON SCHEMA keel TO %[1]s
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA keel TO %[1]s
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA keel TO %[1]s
GRANT EXECUTE ON FUNCTION keel.partition_extend(text), keel.partition_drop_expired(text, timestamptz[]) TO %[1]s
GRANT SELECT ON ` + VersionTable + ` TO %[1]s
ALTER DEFAULT PRIVILEGES IN SCHEMA keel GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %[1]s
ALTER DEFAULT PRIVILEGES IN SCHEMA keel GRANT USAGE, SELECT ON SEQUENCES TO %[1]s`

// GrantStatements returns the SQL that lets role run every keel feature —
// workers, relays, subscriptions, the CLI's inspection — without owning
// keel's schema or being able to change it. Run it as the role that applied
// the migrations, after applying them.
func GrantStatements(role string) ([]string, error) {
	if role == "" {
		return nil, errors.New("keel migrations: role is empty")
	}
	id := pgx.Identifier{role}.Sanitize()
	lines := strings.Split(grantStatements, "\n")
	out := make([]string, len(lines))
	for i, s := range lines {
		out[i] = fmt.Sprintf(s, id) + ";"
	}
	return out, nil
}

// versionGrant starts the statement on VersionTable, which Grant leaves out
// where keel's schema was applied by another tool and the table is absent.
const versionGrant = "GRANT SELECT ON " + VersionTable + " "

// Grant runs GrantStatements(role) through tx; the grant on VersionTable
// only where that table exists.
func Grant(ctx context.Context, tx keeltype.DBTX, role string) error {
	stmts, err := GrantStatements(role)
	if err != nil {
		return err
	}
	schema, table, _ := strings.Cut(VersionTable, ".")
	versioned, err := db.New(tx).TableExists(ctx, db.TableExistsParams{SchemaName: schema, TableName: table})
	if err != nil {
		return fmt.Errorf("keel migrations: grant to %s: %w", role, err)
	}
	for _, s := range stmts {
		if !versioned && strings.HasPrefix(s, versionGrant) {
			continue
		}
		if _, err := tx.Exec(ctx, s); err != nil {
			return fmt.Errorf("keel migrations: grant to %s: %w", role, err)
		}
	}
	return nil
}
