// Command report turns the acceptance benchmark's raw results (the load tool's JSON files and the
// store's BenchmarkCommitCeiling output, in one directory) into a markdown table on stdout.
//
//	go run ./integration/bench/report -out /tmp/cafgate-bench-DATE
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	out := flag.String("out", "", "directory holding SERVER-SIZE-cCONNS.json and ceiling.txt")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "report: -out is required")
		os.Exit(2)
	}
	if err := report(os.Stdout, os.DirFS(*out)); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// report writes the comparison table, the error list and the commit ceiling found in dir.
func report(w io.Writer, dir fsys) error {
	runs, err := loadRuns(dir)
	if err != nil {
		return err
	}
	ceil, err := loadCeiling(dir)
	if err != nil {
		return err
	}
	writeTable(w, runs, ceil)
	writeCPUTable(w, runs)
	writeLoad(w, runs)
	writeErrors(w, runs)
	writeCeiling(w, ceil)
	return nil
}
