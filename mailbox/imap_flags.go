// Message flags of the hosted mailboxes: the IMAP system flags in their canonical spelling and
// keywords ($MDNSent, $Forwarded, a client's labels), stored space-separated, compared without regard
// to case.

package mailbox

import (
	"fmt"
	"sort"
	"strings"
)

// The system flags a message can carry (\Recent is not kept: every session sees none).
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = map[string]string{
	`\seen`: FlagSeen, `\answered`: FlagAnswered, `\flagged`: FlagFlagged, `\deleted`: FlagDeleted, `\draft`: FlagDraft,
}

// FlagOp is how StoreFlags changes a message's flags.
type FlagOp int

// The STORE operations.
const (
	FlagsSet    FlagOp = iota // replace the flags
	FlagsAdd                  // add to them
	FlagsRemove               // take away from them
)

// CanonicalFlags checks flags and returns them without duplicates, system flags in canonical spelling.
// \Recent is dropped (the server sets it, no client may); another backslash flag, a keyword that is not
// an IMAP atom, or more than MaxFlagsPerMesg flags wraps ErrInvalid.
func CanonicalFlags(flags []string) ([]string, error) {
	out := make([]string, 0, len(flags))
	seen := map[string]bool{}
	for _, f := range flags {
		low := strings.ToLower(f)
		if low == `\recent` {
			continue
		}
		if seen[low] {
			continue
		}
		if strings.HasPrefix(f, `\`) {
			c, ok := systemFlags[low]
			if !ok {
				return nil, fmt.Errorf("%w: unknown system flag", ErrInvalid)
			}
			f = c
		} else if !keywordOK(f) {
			return nil, fmt.Errorf("%w: keyword is not an IMAP atom", ErrInvalid)
		}
		seen[low] = true
		out = append(out, f)
	}
	if len(out) > MaxFlagsPerMesg {
		return nil, fmt.Errorf("%w: more than %d flags on one message", ErrMailboxLimit, MaxFlagsPerMesg)
	}
	return out, nil
}

// keywordOK reports whether k is a non-empty IMAP atom of at most maxKeywordLen bytes.
func keywordOK(k string) bool {
	if k == "" || len(k) > maxKeywordLen {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// applyFlags returns cur changed by op with flags (both canonical), sorted.
func applyFlags(cur []string, op FlagOp, flags []string) []string {
	set := map[string]string{}
	if op != FlagsSet {
		for _, f := range cur {
			set[strings.ToLower(f)] = f
		}
	}
	for _, f := range flags {
		if op == FlagsRemove {
			delete(set, strings.ToLower(f))
		} else if _, ok := set[strings.ToLower(f)]; !ok {
			set[strings.ToLower(f)] = f
		}
	}
	out := make([]string, 0, len(set))
	for _, f := range set {
		out = append(out, f)
	}
	sort.Strings(out)
	return out
}

// HasFlag reports whether flags holds f, without regard to case.
func HasFlag(flags []string, f string) bool {
	for _, x := range flags {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}

func joinFlags(flags []string) string { return strings.Join(flags, " ") }

func splitFlags(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}

func sameFlags(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
