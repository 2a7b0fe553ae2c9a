// Command benchreport runs keel's benchmarks (the bench module's Benchmark
// functions), prints one table comparing keel with each peer, and writes
// RESULTS.md and results.png (the ratios as a bar chart) next to them.
//
//	cd bench && go run ./cmd/benchreport            # every benchmark
//	cd bench && go run ./cmd/benchreport -bench Outbox
//
// Benchmarks are named Benchmark<Family>/<system>/<case>, where system is
// keel or a peer (river, watermill, dbos, sql …), and report their numbers
// with b.ReportMetric. A unit ending in "/s" is better higher; any other
// (ms, p50-ms …) is better lower. Each keel number is compared with the
// same family, case and unit of every peer.
//
// A case whose last part is history=<size> (JobsWork/keel/defaults/history=2M)
// is the same workload run after a day of history was written to the
// tables. Those go to a table of their own, "With history": keel with
// history against keel empty (the case without the history part), and
// against each peer that ran with the same history.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/keelpg/keel/bench/internal/machine"
)

func main() {
	bench := flag.String("bench", ".", "which benchmarks to run (go test -bench)")
	out := flag.String("out", ".", "folder for RESULTS.md and results.png")
	timeout := flag.Duration("timeout", 90*time.Minute, "limit for the whole run")
	flag.Parse()
	if err := run(*bench, *out, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(bench, out string, timeout time.Duration) error {
	args := []string{"test", "-run", "^$", "-bench", bench, "-benchtime", "1x", "-count", "1", "-timeout", timeout.String(), "."}
	command := "go " + strings.Join(args, " ")
	cmd := exec.Command("go", args...)
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(&buf, os.Stderr)
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", command, err)
	}
	results, err := parse(&buf)
	if err != nil {
		return err
	}
	if len(results) == 0 {
		return fmt.Errorf("no benchmark matched %q", bench)
	}
	rows := compare(results)
	histories := compareHistory(results)
	host := machine.Describe(os.Getenv("DATABASE_URL"))
	fmt.Print("\n" + render(header, tableCells(rows)))
	if len(histories) > 0 {
		fmt.Print("\nWith history:\n" + render(historyHeader, historyCells(histories)))
	}
	md := fmt.Sprintf("# keel benchmarks\n\nMade by `make bench` (`cd bench && %s`) on %s, in %s.\n\n%s\n\n"+
		"Ratio: how many times better keel is than the peer on that line (above 1: keel is ahead). "+
		"Throughput (units ending in /s) compares keel/peer; latency compares peer/keel.\n\n%s\n![ratios](results.png)\n",
		command, time.Now().UTC().Format("2006-01-02"), time.Since(start).Round(time.Second), host, markdown(header, tableCells(rows)))
	if len(histories) > 0 {
		md += historySection(histories)
	}
	if err := os.WriteFile(out+"/RESULTS.md", []byte(md), 0o644); err != nil {
		return err
	}
	return writeChart(out+"/results.png", rows)
}

// result is one number one benchmark reported.
type result struct {
	family, system, scenario, unit string
	value                          float64
}

func parse(r io.Reader) ([]result, error) {
	var out []result
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(fields[0], "Benchmark")
		if i := strings.LastIndexByte(name, '-'); i > 0 && isDigits(name[i+1:]) {
			name = name[:i]
		}
		parts := strings.SplitN(name, "/", 3)
		if len(parts) < 2 {
			continue
		}
		scenario := ""
		if len(parts) == 3 {
			scenario = parts[2]
		}
		for i := 2; i+1 < len(fields); i += 2 {
			var v float64
			if _, err := fmt.Sscan(fields[i], &v); err != nil {
				return nil, fmt.Errorf("reading %q: %w", sc.Text(), err)
			}
			unit := fields[i+1]
			if unit == "ns/op" || unit == "B/op" || unit == "allocs/op" {
				continue
			}
			out = append(out, result{parts[0], parts[1], scenario, unit, v})
		}
	}
	return out, sc.Err()
}

func isDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// row is one line of the report: a keel number and, when a peer measured
// the same thing, the peer's number and the ratio.
type row struct {
	family, scenario, unit string
	keel                   float64
	peer                   string
	peerValue, ratio       float64
}

func higherIsBetter(unit string) bool { return strings.HasSuffix(unit, "/s") }

func compare(results []result) []row {
	var rows []row
	for _, k := range results {
		if k.system != "keel" || k.history() != "" {
			continue
		}
		matched := false
		for _, p := range results {
			if p.system == "keel" || p.history() != "" || p.family != k.family || p.unit != k.unit || !sameScenario(p.scenario, k.scenario) {
				continue
			}
			if p.scenario != k.scenario && keelHas(results, p) {
				continue // a case keel runs too (callers=1): compared there
			}
			matched = true
			ratio := 0.0
			switch {
			case higherIsBetter(k.unit) && p.value > 0:
				ratio = k.value / p.value
			case !higherIsBetter(k.unit) && k.value > 0:
				ratio = p.value / k.value
			}
			rows = append(rows, row{k.family, label(k.scenario, p.scenario), k.unit, k.value, p.system, p.value, ratio})
		}
		if !matched {
			rows = append(rows, row{family: k.family, scenario: k.scenario, unit: k.unit, keel: k.value})
		}
	}
	return rows
}

// keelHas reports whether keel ran the peer's case itself, so that the
// peer's number is compared with that case and no other.
func keelHas(results []result, p result) bool {
	for _, k := range results {
		if k.system == "keel" && k.family == p.family && k.unit == p.unit && k.scenario == p.scenario {
			return true
		}
	}
	return false
}

// sameScenario matches a peer's case to keel's: equal, or the peer's adds
// its own tuning after keel's (relays=1 and relays=1/batch=1000).
func sameScenario(peer, keel string) bool {
	return peer == keel || keel == "" || strings.HasPrefix(peer, keel+"/")
}

func label(keel, peer string) string {
	if peer == keel {
		return keel
	}
	tuning := strings.TrimPrefix(strings.TrimPrefix(peer, keel), "/")
	return strings.TrimSpace(keel + " (peer " + tuning + ")")
}

func format(v float64) string {
	switch {
	case v == 0:
		return "—"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func cells(r row) []string {
	ratio := "—"
	if r.ratio > 0 {
		ratio = fmt.Sprintf("%.2f×", r.ratio)
	}
	return []string{r.family, r.scenario, r.unit, format(r.keel), r.peer, format(r.peerValue), ratio}
}

var header = []string{"benchmark", "case", "unit", "keel", "peer", "peer value", "ratio"}

func tableCells(rows []row) [][]string {
	var all [][]string
	for _, r := range rows {
		all = append(all, cells(r))
	}
	return all
}

// render lays a table out in columns for the terminal.
func render(header []string, rows [][]string) string {
	all := append([][]string{header}, rows...)
	widths := make([]int, len(header))
	for _, c := range all {
		for i, s := range c {
			widths[i] = max(widths[i], len([]rune(s)))
		}
	}
	var b strings.Builder
	for _, c := range all {
		for i, s := range c {
			fmt.Fprintf(&b, "%-*s  ", widths[i], s)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func markdown(header []string, rows [][]string) string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(header, " | ") + " |\n")
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}
