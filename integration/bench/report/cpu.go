package main

import (
	"fmt"
	"io"
	"slices"
)

// writeCPUTable prints the server CPU time per accepted message: less sensitive than the rates to
// other work on the machine, since it counts only the server's own processes.
func writeCPUTable(w io.Writer, rs runs) {
	servers := []string{"cafgate", "postfix", "postfix-plain"}
	found := false
	for _, s := range servers {
		for _, all := range rs.by[s] {
			for _, r := range all {
				found = found || r.CPU >= 0
			}
		}
	}
	if !found {
		return
	}
	fmt.Fprintln(w, "\nServer CPU time per accepted message, ms (median over repeats; all the server's processes):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| size | conns | cafgate | postfix | postfix no TLS |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|")
	for _, k := range rs.keys() {
		fmt.Fprintf(w, "| %s | %d |", rs.labels[k.size], k.conns)
		for _, s := range servers {
			fmt.Fprintf(w, " %s |", cpuCell(rs.by[s][k]))
		}
		fmt.Fprintln(w)
	}
}

// cpuCell is the median of CPU milliseconds per accepted message over the runs that have both.
func cpuCell(all []run) string {
	var per []float64
	for _, r := range all {
		if r.CPU >= 0 && r.Accepted > 0 {
			per = append(per, 1000*r.CPU/float64(r.Accepted))
		}
	}
	if len(per) == 0 {
		return "—"
	}
	slices.Sort(per)
	return fmt.Sprintf("%.2f", per[(len(per)-1)/2])
}
