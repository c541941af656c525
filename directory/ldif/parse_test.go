package ldif

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseContentRecords(t *testing.T) {
	in := "version: 1\r\n" +
		"# a comment\n" +
		"#  folded comment\n" +
		" still the comment\n" +
		"dn: uid=a,dc=x\n" +
		"cn: Alpha\n" +
		"description: a long value that was\n" +
		"  folded\n" +
		"mail:   a@x.test\n" +
		"jpegPhoto;binary:: AAEC/w==\n" +
		"title:\n" +
		"\n" +
		"\n" +
		"   \n" +
		"dn:: dWlkPcOpLGRjPXg=\n" +
		"# comment inside a record\n" +
		"cn:: w6k=\n" +
		"2.5.4.3: by oid\n"
	got, err := Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{DN: "uid=a,dc=x", Attrs: []Attr{
			{"cn", []byte("Alpha")},
			{"description", []byte("a long value that was folded")},
			{"mail", []byte("a@x.test")},
			{"jpegPhoto;binary", []byte{0, 1, 2, 0xff}},
			{"title", []byte{}},
		}},
		{DN: "uid=é,dc=x", Attrs: []Attr{{"cn", []byte("é")}, {"2.5.4.3", []byte("by oid")}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %q\nwant %q", got, want)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	cases := []struct {
		name, in string
		line     int
		msg      string
	}{
		{"changetype", "dn: a=b\nchangetype: modify\nreplace: cn\n", 2, "change record"},
		{"control", "dn: a=b\ncontrol: 1.2.3\ncn: x\n", 2, "change record"},
		{"dash", "dn: a=b\ncn: x\n-\n", 3, "change record"},
		{"url", "dn: a=b\ncn: x\njpegPhoto:< file:///etc/passwd\n", 3, "URL"},
		{"no dn", "# c\ncn: x\n", 2, "must start with dn"},
		{"no colon", "dn: a=b\nnonsense\n", 2, "expected attribute"},
		{"bad base64", "dn: a=b\ncn:: !!!\n", 2, "base64"},
		{"bad name", "dn: a=b\nc_n: x\n", 2, "not an attribute name"},
		{"bad option", "dn: a=b\ncn;: x\n", 2, "option"},
		{"leading continuation", " x\n", 1, "continuation"},
		{"continuation after blank", "dn: a=b\ncn: x\n\n y\n", 4, "continuation"},
		{"dn twice", "dn: a=b\ncn: x\ndn: c=d\n", 3, "blank line"},
		{"no attributes", "dn: a=b\n\ndn: c=d\n", 1, "no attributes"},
		{"version 2", "version: 2\n\ndn: a=b\ncn: x\n", 1, "version"},
		{"late version", "dn: a=b\nversion: 1\n", 2, "first line"},
		{"folded error line", "dn: a=b\ncn: x\nsn:: AA\n ==!\n", 3, "base64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.in))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *ParseError", err)
			}
			if !strings.Contains(pe.Msg, c.msg) {
				t.Errorf("message %q does not mention %q", pe.Msg, c.msg)
			}
			if pe.Line != c.line {
				t.Errorf("line %d, want %d (%v)", pe.Line, c.line, err)
			}
			if !strings.HasPrefix(err.Error(), "ldif: line ") {
				t.Errorf("error %q lacks the line", err)
			}
		})
	}
}

func TestGet(t *testing.T) {
	e := Entry{DN: "x=y", Attrs: []Attr{
		{"userCertificate;binary", []byte("c1")},
		{"USERCERTIFICATE", []byte("c2")},
		{"cn;lang-en", []byte("en")},
		{"CN", []byte("plain")},
	}}
	if got := e.Get("userCertificate"); len(got) != 2 || string(got[0]) != "c1" || string(got[1]) != "c2" {
		t.Errorf("Get(userCertificate) = %q", got)
	}
	if got := e.Get("usercertificate;Binary"); len(got) != 2 {
		t.Errorf("Get(usercertificate;Binary) = %q", got)
	}
	if got := e.Get("cn"); len(got) != 1 || string(got[0]) != "plain" {
		t.Errorf("Get(cn) = %q", got)
	}
	if got := e.Get("cn;lang-en"); len(got) != 1 || string(got[0]) != "en" {
		t.Errorf("Get(cn;lang-en) = %q", got)
	}
	if got := e.Get("mail"); got != nil {
		t.Errorf("Get(mail) = %q", got)
	}
}

func TestMarshalEncodesAndFolds(t *testing.T) {
	long := strings.Repeat("abcdefghij", 20)
	entries := []Entry{{DN: "uid=a,dc=x", Attrs: []Attr{
		{"cn", []byte("Plain Value")},
		{"description", []byte(long)},
		{"sn", []byte(" leading space")},
		{"o", []byte("trailing ")},
		{"l", []byte(":colon")},
		{"st", []byte("<angle")},
		{"street", []byte("café")},
		{"title", []byte("line\nbreak")},
		{"userCertificate;binary", bytes.Repeat([]byte{0x30, 0x82}, 100)},
		{"initials", nil},
	}}}
	var b bytes.Buffer
	if err := Marshal(&b, entries); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"version: 1\n", "\ndn: uid=a,dc=x\n", "\ncn: Plain Value\n", "\nsn:: ", "\no:: ",
		"\nl:: ", "\nst:: ", "\nstreet:: ", "\ntitle:: ", "\ninitials:\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for i, l := range strings.Split(out, "\n") {
		if len(l) > foldAt {
			t.Errorf("line %d is %d long: %q", i+1, len(l), l)
		}
	}
	if !strings.Contains(out, "\n "+long[foldAt-len("description: "):][:foldAt-1]+"\n") {
		t.Errorf("long value not folded at %d:\n%s", foldAt, out)
	}
	back, err := Parse(&b)
	if err != nil {
		t.Fatal(err)
	}
	entries[0].Attrs[9].Value = []byte{}
	if !reflect.DeepEqual(back, entries) {
		t.Errorf("round trip:\n got %q\nwant %q", back, entries)
	}
}

func TestMarshalRefuses(t *testing.T) {
	for _, e := range []Entry{
		{DN: "a=b"},
		{DN: "a=b", Attrs: []Attr{{"bad name", []byte("x")}}},
		{DN: "a=b", Attrs: []Attr{{"changetype", []byte("add")}}},
		{DN: "a=b", Attrs: []Attr{{"dn", []byte("c=d")}}},
	} {
		if err := Marshal(&bytes.Buffer{}, []Entry{e}); err == nil {
			t.Errorf("Marshal(%q) accepted", e)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"version: 1\n\ndn: a=b\ncn: x\n",
		"dn:: YT1i\ncn;binary:: AAE=\n\n# c\n folded\ndn: c=d\nsn: y\n z\n",
		"dn: a=b\nchangetype: add\n",
		"dn: a=b\r\ncn:  x \r\n\r\n",
		"dn:\ncn:\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := Marshal(&b, entries); err != nil {
			t.Fatalf("Marshal of parsed entries: %v", err)
		}
		back, err := Parse(bytes.NewReader(b.Bytes()))
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, b.Bytes())
		}
		if !reflect.DeepEqual(normalize(back), normalize(entries)) {
			t.Fatalf("round trip:\n got %q\nwant %q", back, entries)
		}
	})
}

// normalize makes nil and empty values alike for comparison.
func normalize(es []Entry) []Entry {
	for i := range es {
		for j := range es[i].Attrs {
			if es[i].Attrs[j].Value == nil {
				es[i].Attrs[j].Value = []byte{}
			}
		}
	}
	return es
}
