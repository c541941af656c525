package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// writeTable prints one row per size and connection count: both servers' rate and latency, their
// ratio and cafgate's share of the store's commit ceiling.
func writeTable(w io.Writer, rs runs, ceil ceiling) {
	plain := rs.by["postfix-plain"] != nil
	head := "| size | conns | cafgate msg/s | cafgate p50 / p99 ms | postfix msg/s | postfix p50 / p99 ms | cafgate / postfix | cafgate % of commit ceiling |"
	sep := "|---|---:|---:|---:|---:|---:|---:|---:|"
	if plain {
		head += " postfix no TLS msg/s |"
		sep += "---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, k := range rs.keys() {
		cg, cgAll, hasCG := rs.cell("cafgate", k)
		pf, pfAll, hasPF := rs.cell("postfix", k)
		row := fmt.Sprintf("| %s | %d | %s | %s | %s | %s | %s | %s |", rs.labels[k.size], k.conns,
			rateCell(cg, cgAll, hasCG), latCell(cg, hasCG), rateCell(pf, pfAll, hasPF), latCell(pf, hasPF),
			ratioCell(cg, hasCG, pf, hasPF), ceilingCell(cg, hasCG, ceil, k.size, rs.labels[k.size]))
		if plain {
			pp, ppAll, ok := rs.cell("postfix-plain", k)
			row += " " + rateCell(pp, ppAll, ok) + " |"
		}
		fmt.Fprintln(w, row)
	}
}

// keys lists every cell any server has, by size then connections.
func (rs runs) keys() []key {
	var ks []key
	for _, cells := range rs.by {
		for k := range cells {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	slices.SortFunc(ks, func(a, b key) int {
		if a.size != b.size {
			return a.size - b.size
		}
		return a.conns - b.conns
	})
	return ks
}

func usable(r run, ok bool) bool { return ok && r.Accepted > 0 }

// rateCell is the median rate, with the range over repeats and the failed count when there are any.
func rateCell(r run, all []run, ok bool) string {
	if !ok {
		return "—"
	}
	if r.Accepted == 0 {
		return "failed"
	}
	s := fmt.Sprintf("%.0f", r.Rate)
	if len(all) > 1 {
		s += fmt.Sprintf(" (%.0f–%.0f)", all[0].Rate, all[len(all)-1].Rate)
	}
	failed := 0
	for _, a := range all {
		failed += max(a.Failed, 0)
	}
	if failed > 0 {
		s += fmt.Sprintf(" %d err", failed)
	}
	return s
}

func latCell(r run, ok bool) string {
	if !usable(r, ok) {
		return "—"
	}
	return fmt.Sprintf("%.1f / %.1f", r.Latency.P50, r.Latency.P99)
}

func ratioCell(cg run, hasCG bool, pf run, hasPF bool) string {
	if !usable(cg, hasCG) || !usable(pf, hasPF) {
		return "—"
	}
	return fmt.Sprintf("%.2f", cg.Rate/pf.Rate)
}

func ceilingCell(cg run, hasCG bool, c ceiling, size int, label string) string {
	rate, _, ok := c.forSize(size, label)
	if !usable(cg, hasCG) || !ok {
		return "—"
	}
	return fmt.Sprintf("%.0f%%", 100*cg.Rate/rate)
}

// writeErrors lists failed transactions by server, cell and reply code, with one sample reply each.
func writeErrors(w io.Writer, rs runs) {
	var lines []string
	for _, server := range []string{"cafgate", "postfix", "postfix-plain"} {
		for _, k := range rs.keys() {
			for _, r := range rs.by[server][k] {
				lines = append(lines, errorLines(server, rs.labels[k.size], k.conns, r)...)
			}
		}
	}
	if len(lines) > 0 {
		fmt.Fprintf(w, "\nErrors:\n%s\n", strings.Join(lines, "\n"))
	}
}

// errorLines describes one run's failures by reply code.
func errorLines(server, size string, conns int, r run) []string {
	if r.Failed < 0 {
		return []string{fmt.Sprintf("- %s %s x%d: no result (the load tool failed)", server, size, conns)}
	}
	codes := make([]string, 0, len(r.Errors))
	for code := range r.Errors {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	var lines []string
	for _, code := range codes {
		lines = append(lines, fmt.Sprintf("- %s %s x%d: %d × %s (%s)", server, size, conns, r.Errors[code], code, r.Samples[code]))
	}
	return lines
}

// writeCeiling shows the store benchmark's lines, or why there are none.
func writeCeiling(w io.Writer, c ceiling) {
	fmt.Fprintln(w)
	if len(c.lines) == 0 {
		fmt.Fprintf(w, "Commit ceiling (go test -bench BenchmarkCommitCeiling ./mailbox/): %s\n", c.missing)
		return
	}
	fmt.Fprintln(w, "Commit ceiling (go test -bench BenchmarkCommitCeiling ./mailbox/), commits/s:")
	for _, l := range c.lines {
		fmt.Fprintf(w, "- %s: %.0f/s (%s)\n", l.name, l.rate, l.text)
	}
}

// writeLoad reports the spread of the machine's load average at the end of the runs: other work on
// the machine makes figures unreliable.
func writeLoad(w io.Writer, rs runs) {
	lo, hi, n := 0.0, 0.0, 0
	for _, cells := range rs.by {
		for _, all := range cells {
			for _, r := range all {
				if r.LoadAvg <= 0 {
					continue
				}
				if n == 0 || r.LoadAvg < lo {
					lo = r.LoadAvg
				}
				hi = max(hi, r.LoadAvg)
				n++
			}
		}
	}
	if n > 0 {
		fmt.Fprintf(w, "\n1-minute load average at the end of the %d runs: %.2f–%.2f. It counts processes waiting for the disk "+
			"as well as running ones, so 100 Postfix smtpd processes waiting on fsync raise it by themselves; "+
			"in 1-connection runs, much above 2 means other work on the machine.\n", n, lo, hi)
	}
}
