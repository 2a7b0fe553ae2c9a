// Package bench measures keel against its peers (River, Watermill, DBOS) and
// against the SQL floor, on the same PostgreSQL, with `make bench`. It is a
// module of its own so the peers' dependencies stay out of keel's go.mod.
//
// Benchmarks read DATABASE_URL and work in databases of their own that they
// create and drop. Numbers are reported, never asserted.
package bench
