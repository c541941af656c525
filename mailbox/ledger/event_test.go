package ledger

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleEvent() *Event {
	data, _ := EncodeData(AccessData{Operator: "root", Reason: "audit <12> & review", Query: "package=X"})
	return &Event{V: 1, N: 42, At: FormatTime(time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)), Type: Access, Data: data}
}

func TestEncodeIsCanonical(t *testing.T) {
	e := sampleEvent()
	b, err := Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"n":42,"at":"2025-01-02T03:04:05.000000006Z","type":"access","data":{"operator":"root","reason":"audit <12> & review","query":"package=X"}}`
	if string(b) != want {
		t.Fatalf("Encode =\n%s\nwant\n%s", b, want)
	}
	d, err := Decode(b)
	if err != nil || d.N != 42 || d.Type != Access || string(d.Data) != string(e.Data) {
		t.Fatalf("Decode = %+v, %v", d, err)
	}
	if n, ok := claimedNumber(b); !ok || n != 42 {
		t.Fatalf("claimedNumber = %d, %v", n, ok)
	}
	for _, bad := range []string{
		`{"n":42,"v":1,"at":"2025-01-02T03:04:05.000000006Z","type":"access","data":{}}`,  // reordered
		`{"v":1, "n":42,"at":"2025-01-02T03:04:05.000000006Z","type":"access","data":{}}`, // space
		`{"v":1,"n":42,"at":"2025-01-02T03:04:05.000000006Z","type":"access","package":"","data":{}}`,
	} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrNotCanonical) {
			t.Errorf("Decode(%s) = %v, want ErrNotCanonical", bad, err)
		}
	}
	if _, err := Decode([]byte(`{"v":1,"n":1,"at":"x","type":"access","data":{},"extra":1}`)); err == nil || errors.Is(err, ErrNotCanonical) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestClaimedNumber(t *testing.T) {
	for in, want := range map[string]int64{
		`{"v":1,"n":0,"at"`:                   0,
		`{"v":1,"n":1234567,"at"`:             1234567,
		`{"v":1,"n":01,"at"`:                  -1,
		`{"v":1,"n":,"at"`:                    -1,
		`{"v":2,"n":5,"at"`:                   -1,
		`{"v":1,"n":-5,"at"`:                  -1,
		`{"v":1,"n":5`:                        -1,
		`{"v":1,"n":99999999999999999999999,`: -1,
	} {
		n, ok := claimedNumber([]byte(in))
		if (want < 0) == ok || (ok && int64(n) != want) {
			t.Errorf("claimedNumber(%s) = %d, %v; want %d", in, n, ok, want)
		}
	}
}

func TestValidate(t *testing.T) {
	if err := sampleEvent().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Event){
		"unknown type": func(e *Event) { e.Type = "made-up" },
		"version":      func(e *Event) { e.V = 2 },
		"time":         func(e *Event) { e.At = "2025-01-02T03:04:05Z" },
		"data array":   func(e *Event) { e.Data = json.RawMessage(`[1]`) },
		"data invalid": func(e *Event) { e.Data = json.RawMessage(`{"a":`) },
		"no data":      func(e *Event) { e.Data = nil },
		"bad utf-8":    func(e *Event) { e.Package = "\xff" },
	} {
		e := sampleEvent()
		mod(e)
		if err := e.Validate(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	for _, typ := range Types() {
		if TypeDoc(typ) == "" || !KnownType(typ) {
			t.Errorf("type %q has no description", typ)
		}
	}
	if KnownType("nope") {
		t.Error("KnownType(nope)")
	}
}

func TestChildHash(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	a := ChildHash(secret, "943 476 5919")
	if a == "" || a != ChildHash(secret, "9434765919") || a != ChildHash(secret, " 943-476-5919 ") {
		t.Fatalf("normalized forms differ: %s", a)
	}
	if strings.Contains(a, "9434765919") || len(a) != 64 {
		t.Fatalf("hash %q", a)
	}
	if a == ChildHash([]byte("another secret of 32 bytes......"), "9434765919") {
		t.Fatal("hash does not depend on the secret")
	}
	if a == ChildHash(secret, "9434765918") {
		t.Fatal("two children, one hash")
	}
	if ChildHash(secret, " - ") != "" {
		t.Fatal("empty identifier hashed")
	}
	if ChildHash(secret, "ab12") != ChildHash(secret, "AB12") {
		t.Fatal("case matters")
	}
}

func TestEncodeAgreesWithEncodingJSON(t *testing.T) {
	for _, e := range []*Event{
		sampleEvent(),
		{V: 1, N: 0, At: "2025-01-02T03:04:05.000000006Z", Type: "access", Package: "pkg \"quoted\" \\ <b>&amp;",
			Data: json.RawMessage(`{ "a" : [1, 2, "x\u00e9"], "b":{"c":null} }`)},
		{V: 1, N: 18446744073709551615, At: "x", Type: "t\n\t\u0001\u2028\u2029é", Package: "\xff\xfe",
			Data: json.RawMessage(`{"s":"<tag> & \u2028 \ud83d\ude00 😀"}`)},
		{V: 1, Type: "signin", Data: json.RawMessage(`{}`)},
	} {
		want, err := encode(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Encode(e)
		if err != nil || string(got) != string(want) {
			t.Errorf("Encode =\n%s (%v)\nencoding/json =\n%s", got, err, want)
		}
	}
	if _, err := Encode(&Event{Type: "x", Data: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("Encode accepted invalid data")
	}
}
