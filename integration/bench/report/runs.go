package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

type fsys = fs.FS

// run is the part of the load tool's JSON result the report uses.
type run struct {
	Server    string
	SizeLabel string
	Size      int                        `json:"size_bytes"`
	Conns     int                        `json:"conns"`
	Connected int                        `json:"connected"`
	Accepted  int                        `json:"accepted"`
	Failed    int                        `json:"failed"`
	Rate      float64                    `json:"rate_msgs_per_s"`
	Latency   struct{ P50, P99 float64 } `json:"latency_ms"`
	LoadAvg   float64                    `json:"loadavg_1m"`
	CPU       float64                    // server CPU seconds during the run, from the .cpu file; -1 unknown
	Errors    map[string]int             `json:"errors"`
	Samples   map[string]string          `json:"error_samples"`
}

// key names one cell of the table: a message size and a connection count.
type key struct {
	size  int
	conns int
}

// runs maps server → cell → the repeated results of that cell.
type runs struct {
	by     map[string]map[key][]run
	labels map[int]string // size in bytes → label from the file name
}

// cell returns the median run by rate (the lower one of an even count) and every run of the cell.
func (rs runs) cell(server string, k key) (median run, all []run, ok bool) {
	all = slices.Clone(rs.by[server][k])
	if len(all) == 0 {
		return run{}, nil, false
	}
	slices.SortFunc(all, func(a, b run) int { return cmp.Compare(a.Rate, b.Rate) })
	return all[(len(all)-1)/2], all, true
}

var runName = regexp.MustCompile(`^([a-z-]+)-([0-9]+[A-Za-z]*)-c([0-9]+)(-r[0-9]+)?\.json$`)

// loadRuns reads every SERVER-SIZE-cCONNS[-rN].json in dir.
func loadRuns(dir fs.FS) (runs, error) {
	rs := runs{by: map[string]map[key][]run{}, labels: map[int]string{}}
	names, err := fs.Glob(dir, "*.json")
	if err != nil {
		return rs, err
	}
	for _, name := range names {
		m := runName.FindStringSubmatch(path.Base(name))
		if m == nil {
			continue
		}
		b, err := fs.ReadFile(dir, name)
		if err != nil {
			return rs, err
		}
		var r run
		if err := json.Unmarshal(b, &r); err != nil {
			r = run{Failed: -1} // the load tool died before printing: shown as "failed"
			r.Size, _ = sizeBytes(m[2])
			r.Conns, _ = strconv.Atoi(m[3])
		}
		r.Server, r.SizeLabel = m[1], m[2]
		r.CPU = readCPU(dir, strings.TrimSuffix(name, ".json")+".cpu")
		if rs.by[r.Server] == nil {
			rs.by[r.Server] = map[key][]run{}
		}
		k := key{r.Size, r.Conns}
		rs.by[r.Server][k] = append(rs.by[r.Server][k], r)
		rs.labels[r.Size] = r.SizeLabel
	}
	if len(rs.by) == 0 {
		return rs, fmt.Errorf("no SERVER-SIZE-cCONNS.json results found")
	}
	return rs, nil
}

// sizeBytes converts a label like 10KiB or 1MiB to bytes.
func sizeBytes(label string) (int, error) {
	l := strings.ToLower(label)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"kb", 1 << 10}, {"mb", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}, {"b", 1}} {
		if strings.HasSuffix(l, u.suffix) {
			n, err := strconv.Atoi(strings.TrimSuffix(l, u.suffix))
			return n * u.mult, err
		}
	}
	return strconv.Atoi(l)
}

// readCPU reads the server CPU seconds run.sh wrote beside a result; -1 when absent or unreadable.
func readCPU(dir fs.FS, name string) float64 {
	b, err := fs.ReadFile(dir, name)
	if err != nil {
		return -1
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
	if err != nil || v < 0 {
		return -1
	}
	return v
}
