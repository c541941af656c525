// What the sender is told: one answer when every recipient is refused, else a report naming each
// recipient refused or given only some sections. Plain words, no package content, and only the
// recipients the sender named themselves.

package policy

import (
	"fmt"
	"strings"
)

// AllRefused reports whether no recipient receives anything (the submission is then answered
// 550 5.7.1 and nothing is stored).
func AllRefused(ds []Decision) bool {
	for i := range ds {
		if ds[i].Delivers() {
			return false
		}
	}
	return true
}

// NeedsReport reports whether any recipient was refused or had sections withheld, so the sender must
// be sent a report.
func NeedsReport(ds []Decision) bool {
	for i := range ds {
		if ds[i].Result != DeliverAll {
			return true
		}
	}
	return false
}

// Overrides returns the decisions that went through on an override (the lead must be told of these).
func Overrides(ds []Decision) []Decision {
	var out []Decision
	for _, d := range ds {
		if d.Override {
			out = append(out, d)
		}
	}
	return out
}

// RefusalText is the text of a 550 answer when every recipient is refused: the distinct sentences, in
// order, joined on one line.
func RefusalText(ds []Decision) string {
	seen := map[string]bool{}
	var parts []string
	for _, d := range ds {
		if !seen[d.Sentence] {
			seen[d.Sentence] = true
			parts = append(parts, d.Sentence)
		}
	}
	return "Not sent to anyone. " + strings.Join(parts, " ")
}

// SenderReport is the report to the sender of an accepted package: who receives what and who does
// not, and why. ref is the episode reference.
func SenderReport(ref string, ds []Decision) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Your package for episode %s was accepted.\n", ref)
	groups := []struct {
		title string
		keep  func(*Decision) bool
	}{
		{"Not sent to:", func(d *Decision) bool { return d.Result == Refuse }},
		{"Sent with some sections withheld:", func(d *Decision) bool { return d.Result == DeliverSections }},
		{"Sent in full:", func(d *Decision) bool { return d.Result == DeliverAll }},
	}
	for _, g := range groups {
		first := true
		for i := range ds {
			if !g.keep(&ds[i]) {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n%s\n", g.title)
				first = false
			}
			fmt.Fprintf(&b, "  - %s\n", ds[i].Sentence)
		}
	}
	return b.String()
}
