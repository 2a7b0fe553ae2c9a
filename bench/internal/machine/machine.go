// Package machine describes where the benchmarks ran, for their reports.
package machine

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// showVersion asks the server its version for the report's machine line.
const showVersion = "SHOW server_version"

// Describe names the CPU, cores, memory, the PostgreSQL server at
// databaseURL and the Go version.
func Describe(databaseURL string) string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			mem = fmt.Sprintf(", %d GiB", (kb+(1<<19))>>20)
		}
	}
	pg := "PostgreSQL (version unknown)"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, databaseURL); err == nil {
		var v string
		if conn.QueryRow(ctx, showVersion).Scan(&v) == nil {
			pg = "PostgreSQL " + v
		}
		_ = conn.Close(ctx)
	}
	return fmt.Sprintf("%d cores (%s)%s, %s, %s", runtime.NumCPU(), cpu, mem, pg, runtime.Version())
}
