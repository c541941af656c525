package fault

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestEveryKindHasAConsistentFace(t *testing.T) {
	for k := Internal; k <= RateLimited; k++ {
		f, ok := faces[k]
		if !ok {
			t.Fatalf("kind %d has no face", k)
		}
		if f.SMTP/100 != f.Enhanced[0] {
			t.Errorf("%s: SMTP %d and enhanced class %d.x.x disagree", f.Type, f.SMTP, f.Enhanced[0])
		}
		if f.HTTP < 400 || f.Title == "" || f.Type == "" || !strings.HasSuffix(f.Title, ".") {
			t.Errorf("%s: incomplete face %+v", f.Type, f)
		}
	}
}

func TestFromNeverLeaksCause(t *testing.T) {
	cause := errors.New("open /var/lib/cafgate/cafgate.db: permission denied")
	e := From(fmt.Errorf("wrapped: %w", cause))
	if e.Kind != Internal || strings.Contains(e.Sentence(), "permission") || !errors.Is(e, cause) {
		t.Fatalf("From(unknown) = %+v", e)
	}
	if !strings.Contains(e.Error(), "permission denied") || !strings.Contains(e.Error(), e.ID) {
		t.Fatalf("log face lacks the cause or ID: %q", e.Error())
	}
	orig := New(TooBig, "", nil)
	if got := From(fmt.Errorf("ctx: %w", orig)); got != orig {
		t.Fatal("From lost the wrapped *Error")
	}
	if From(nil) != nil {
		t.Fatal("From(nil) != nil")
	}
}

func TestIDs(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := NewID()
		if len(id) != 16 || strings.Trim(id, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") != "" || seen[id] {
			t.Fatalf("bad or repeated ID %q", id)
		}
		seen[id] = true
	}
	if !New(DirectoryUnavailable, "", nil).Temporary() || New(NotPermitted, "", nil).Temporary() {
		t.Fatal("Temporary() disagrees with the SMTP class")
	}
}
