package main

import (
	"fmt"
	"strings"
)

// The targets of the history table: keel keeps 90 % of its empty-table
// throughput with a day of history, and stays three times River's with the
// same history.
const (
	historyTarget = 0.9
	riverTarget   = 3
)

// history is the size of the history a case ran with (2M for
// …/history=2M), or "" for a case on empty tables.
func (r result) history() string {
	_, h := splitHistory(r.scenario)
	return h
}

// splitHistory cuts a case into the case without history and the size.
func splitHistory(scenario string) (base, history string) {
	i := strings.LastIndexByte(scenario, '/')
	last := scenario[i+1:]
	size, ok := strings.CutPrefix(last, "history=")
	if !ok {
		return scenario, ""
	}
	return scenario[:max(i, 0)], size
}

// historyRow is one line of the history table: a keel workload empty and
// with history and, when a peer ran the same history, the peer's numbers.
type historyRow struct {
	family, scenario, history, unit string
	empty, full                     float64
	peer                            string
	peerEmpty, peerFull             float64
}

// compareHistory pairs every keel case run with history with the same
// case on empty tables, and with each peer's run of the same history.
func compareHistory(results []result) []historyRow {
	find := func(system, family, scenario, unit string) float64 {
		for _, r := range results {
			if r.system == system && r.family == family && r.scenario == scenario && r.unit == unit {
				return r.value
			}
		}
		return 0
	}
	var rows []historyRow
	for _, k := range results {
		base, size := splitHistory(k.scenario)
		if k.system != "keel" || size == "" {
			continue
		}
		h := historyRow{family: k.family, scenario: base, history: size, unit: k.unit,
			empty: find("keel", k.family, base, k.unit), full: k.value}
		matched := false
		for _, p := range results {
			if p.system == "keel" || p.family != k.family || p.scenario != k.scenario || p.unit != k.unit {
				continue
			}
			matched = true
			withPeer := h
			withPeer.peer, withPeer.peerFull = p.system, p.value
			withPeer.peerEmpty = find(p.system, p.family, base, p.unit)
			rows = append(rows, withPeer)
		}
		if !matched {
			rows = append(rows, h)
		}
	}
	return rows
}

var historyHeader = []string{"benchmark", "case", "history", "unit", "keel empty", "keel with history", "history/empty",
	"peer", "peer empty", "peer with history", "keel/peer with history"}

// ratioCell shows a ratio, marked ✗ when it misses its target (0: none).
func ratioCell(ratio, target float64) string {
	if ratio <= 0 {
		return "—"
	}
	s := fmt.Sprintf("%.2f×", ratio)
	if target > 0 && ratio < target {
		s += " ✗"
	}
	return s
}

func historyCells(rows []historyRow) [][]string {
	var all [][]string
	for _, r := range rows {
		kept, versus := 0.0, 0.0
		if r.empty > 0 {
			kept = r.full / r.empty
		}
		if r.peerFull > 0 {
			versus = r.full / r.peerFull
		}
		target := 0.0
		if r.peer == "river" {
			target = riverTarget
		}
		all = append(all, []string{r.family, r.scenario, r.history, r.unit, format(r.empty), format(r.full),
			ratioCell(kept, historyTarget), r.peer, format(r.peerEmpty), format(r.peerFull), ratioCell(versus, target)})
	}
	return all
}

// historySection is RESULTS.md's part on the history cases.
func historySection(rows []historyRow) string {
	return fmt.Sprintf("\n## With history\n\n"+
		"Each workload again, in a database of its own whose tables first got a day of history: "+
		"completed jobs, delivered outbox messages, events of other categories, finished saga runs "+
		"(as many as the history column says; for sagas, runs), spread over the last 23 hours so "+
		"retention keeps them, then VACUUM ANALYZE. KEEL_BENCH_HISTORY sets the sizes (default 2000000; "+
		"a list such as 2000000,10000000 runs each). history/empty is keel with history over keel on empty "+
		"tables (target ≥ %.2f); keel/peer compares the runs with history (target against River ≥ %d×). "+
		"✗ marks a missed target.\n\n%s", historyTarget, riverTarget, markdown(historyHeader, historyCells(rows)))
}
