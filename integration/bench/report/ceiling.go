package main

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
)

// benchLine is one result line of `go test -bench`.
type benchLine struct {
	name string
	rate float64 // commits per second: a custom */s metric if reported, else 1e9 / ns/op
	text string
}

// ceiling is what BenchmarkCommitCeiling reported; missing says why there is none.
type ceiling struct {
	lines   []benchLine
	missing string
}

// loadCeiling parses ceiling.txt; a missing file or benchmark is reported, not an error.
func loadCeiling(dir fs.FS) (ceiling, error) {
	b, err := fs.ReadFile(dir, "ceiling.txt")
	if errors.Is(err, fs.ErrNotExist) {
		return ceiling{missing: "not run"}, nil
	}
	if err != nil {
		return ceiling{}, err
	}
	var c ceiling
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l, ok := parseBenchLine(sc.Text()); ok {
			c.lines = append(c.lines, l)
		}
	}
	if len(c.lines) == 0 {
		c.missing = strings.TrimSpace(firstLine(b))
	}
	c.lines = medians(c.lines)
	return c, nil
}

// medians keeps one line per benchmark name (from -count N): the median by rate, with the range.
func medians(lines []benchLine) []benchLine {
	byName := map[string][]benchLine{}
	var order []string
	for _, l := range lines {
		if byName[l.name] == nil {
			order = append(order, l.name)
		}
		byName[l.name] = append(byName[l.name], l)
	}
	out := make([]benchLine, 0, len(order))
	for _, name := range order {
		ls := byName[name]
		slices.SortFunc(ls, func(a, b benchLine) int { return cmp.Compare(a.rate, b.rate) })
		m := ls[(len(ls)-1)/2]
		if len(ls) > 1 {
			m.text = fmt.Sprintf("median of %d, %.0f–%.0f/s; %s", len(ls), ls[0].rate, ls[len(ls)-1].rate, m.text)
		}
		out = append(out, m)
	}
	return out
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// parseBenchLine reads "BenchmarkX/sub-2  N  V unit  V unit ...".
func parseBenchLine(s string) (benchLine, bool) {
	f := strings.Fields(s)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return benchLine{}, false
	}
	if _, err := strconv.Atoi(f[1]); err != nil {
		return benchLine{}, false
	}
	l := benchLine{name: f[0], text: strings.Join(f, " ")}
	var nsop float64
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		switch unit := f[i+1]; {
		case unit == "ns/op":
			nsop = v
		case strings.HasSuffix(unit, "/s") && !strings.HasSuffix(unit, "B/s"):
			l.rate = max(l.rate, v)
		}
	}
	if l.rate == 0 && nsop > 0 {
		l.rate = 1e9 / nsop
	}
	return l, l.rate > 0
}

// forSize is the best rate among the lines whose name carries this size (10KiB, 10240, 10k, 10kb...),
// or, when no line names a size at all, the best rate overall; ok is false when there is none.
func (c ceiling) forSize(size int, label string) (rate float64, name string, ok bool) {
	want := sizeTokens(size, label)
	named := false
	for _, l := range c.lines {
		for _, tok := range nameTokens(l.name) {
			if _, err := sizeBytes(tok); err == nil && strings.IndexFunc(tok, isLetter) > 0 {
				named = true
			}
			if want[tok] && l.rate > rate {
				rate, name, ok = l.rate, l.name, true
			}
		}
	}
	if ok || named {
		return rate, name, ok
	}
	for _, l := range c.lines {
		if l.rate > rate {
			rate, name, ok = l.rate, l.name, true
		}
	}
	return rate, name, ok
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' }

func sizeTokens(size int, label string) map[string]bool {
	l := strings.ToLower(label)
	base := strings.TrimSuffix(strings.TrimSuffix(l, "ib"), "b")
	return map[string]bool{l: true, strconv.Itoa(size): true, base: true, base + "b": true, base + "ib": true}
}

// nameTokens splits "BenchmarkCommitCeiling/size=10KiB/batch=1-2" into lower-case words.
func nameTokens(name string) []string {
	return strings.FieldsFunc(strings.ToLower(name), func(r rune) bool {
		return strings.ContainsRune("/=_-,: ", r)
	})
}
