package pkg

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files and the generated blocks of docs/package-format.md")

const docPath = "../../docs/package-format.md"

// docBlock is a fenced code block of the format document whose info string names an example:
// "```eml package:NAME", "```text expect:NAME", "```json manifest:NAME",
// "```eml recipient:NAME allowed=a,b [child=ID]".
type docBlock struct {
	kind, name string
	attrs      map[string]string
	body       string
	start, end int // line numbers of the body (start inclusive, end exclusive)
}

func readDocBlocks(t testing.TB) ([]string, []docBlock) {
	t.Helper()
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	var blocks []docBlock
	for i := 0; i < len(lines); i++ {
		info, ok := strings.CutPrefix(lines[i], "```")
		if !ok || info == "" {
			continue
		}
		fields := strings.Fields(info)
		j := i + 1
		for j < len(lines) && lines[j] != "```" {
			j++
		}
		if len(fields) >= 2 && strings.Contains(fields[1], ":") {
			kind, name, _ := strings.Cut(fields[1], ":")
			b := docBlock{kind: kind, name: name, attrs: map[string]string{}, start: i + 1, end: j}
			for _, a := range fields[2:] {
				k, v, _ := strings.Cut(a, "=")
				b.attrs[k] = v
			}
			b.body = strings.Join(lines[i+1:j], "\n") + "\n"
			blocks = append(blocks, b)
		}
		i = j
	}
	return lines, blocks
}

func crlf(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

// summarize is what the doc's expect blocks show of a parse.
func summarize(p *Package, err error) string {
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return "error: " + err.Error() + "\n"
		}
		s := "refused at " + e.Field + ": " + e.Reason
		if e.Limit != "" {
			s += " (limit " + e.Limit + ")"
		}
		return s + "\n"
	}
	var b strings.Builder
	kind, child := "manifest package", p.Manifest.Child
	if p.Plain {
		kind = "plain e-mail"
	}
	if child == "" {
		child = "from the episode"
	}
	b.WriteString(kind + ": episode " + p.Manifest.Episode + ", child " + child + ", sender " + p.Manifest.Sender + "\n")
	for _, d := range p.Documents {
		var ss []string
		for _, s := range d.Sections {
			ss = append(ss, string(s))
		}
		b.WriteString(d.Part + ": " + strings.Join(ss, ", ") + "\n")
	}
	return b.String()
}

func TestDocExamples(t *testing.T) {
	lines, blocks := readDocBlocks(t)
	packages := map[string]string{}
	expects := map[string]docBlock{}
	counts := map[string]int{}
	for _, b := range blocks {
		counts[b.kind]++
		switch b.kind {
		case "package":
			packages[b.name] = b.body
		case "expect":
			expects[b.name] = b
		}
	}
	if counts["package"] < 5 || counts["recipient"] < 2 || counts["manifest"] < 1 {
		t.Fatalf("the document lost examples: %v", counts)
	}
	var replace []docBlock // generated blocks to rewrite with -update
	for _, b := range blocks {
		switch b.kind {
		case "manifest":
			if _, err := ParseManifest([]byte(b.body)); err != nil {
				t.Errorf("manifest:%s: %v", b.name, err)
			}
			if err := schemaValidate(t, []byte(b.body)); err != nil {
				t.Errorf("manifest:%s against the schema: %v", b.name, err)
			}
		case "package":
			p, err := ParseBytes(crlf(b.body), Limits{})
			got := summarize(p, err)
			exp, ok := expects[b.name]
			if !ok {
				t.Errorf("package:%s has no expect block", b.name)
				continue
			}
			if got != exp.body {
				t.Errorf("package:%s\n got: %s want: %s", b.name, got, exp.body)
				exp.body = got
				replace = append(replace, exp)
			}
		case "recipient":
			got := recipientExample(t, b, packages[b.name])
			golden := filepath.Join("testdata", "golden", b.name+".eml")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestDocExamples -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("recipient:%s differs from %s:\n%s", b.name, golden, got)
			}
			if doc := strings.ReplaceAll(string(got), "\r\n", "\n"); doc != b.body {
				t.Errorf("recipient:%s: the document's block differs from the output:\n%s", b.name, doc)
				b.body = doc
				replace = append(replace, b)
			}
		}
	}
	if *update && len(replace) > 0 {
		rewriteDoc(t, lines, replace)
	}
}

func recipientExample(t *testing.T, b docBlock, source string) []byte {
	t.Helper()
	if source == "" {
		t.Fatalf("recipient:%s names no package example", b.name)
	}
	p, err := ParseBytes(crlf(source), Limits{})
	if err != nil {
		t.Fatalf("package:%s: %v", b.name, err)
	}
	if c := b.attrs["child"]; c != "" {
		p.Manifest.Child = c
	}
	var allowed []Section
	for _, s := range strings.Split(b.attrs["allowed"], ",") {
		allowed = append(allowed, Section(s))
	}
	out, err := p.ForRecipient(allowed)
	if err != nil {
		t.Fatalf("recipient:%s: %v", b.name, err)
	}
	return out
}

// rewriteDoc replaces the bodies of the given blocks, from the last to the first so line numbers hold.
func rewriteDoc(t *testing.T, lines []string, blocks []docBlock) {
	t.Helper()
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].start < blocks[j].start })
	for i := len(blocks) - 1; i >= 0; i-- {
		b := blocks[i]
		body := strings.Split(strings.TrimSuffix(b.body, "\n"), "\n")
		lines = append(lines[:b.start], append(body, lines[b.end:]...)...)
	}
	if err := os.WriteFile(docPath, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("rewrote %d blocks of %s", len(blocks), docPath)
}
