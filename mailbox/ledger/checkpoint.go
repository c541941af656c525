// Checkpoints: the tree head (origin, size, root) in the C2SP tlog-checkpoint format, signed as a
// C2SP signed note with the ledger's Ed25519 key, and the append-only file of them kept outside the
// database.

package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is a signed tree head.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   Hash
	Note   []byte // the whole signed note, as stored and as a witness receives it
	Source string // where it was read: "database" or "FILE record N"
	Key    string // the verifier key that signed it, when opened with a key chain
}

// Body is the checkpoint's note text: origin, size and base64 root, one per line.
func Body(origin string, size uint64, root Hash) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, size, root)
}

// SignCheckpoint returns the signed note for the tree head (size, root). The origin is the signer's
// name.
func SignCheckpoint(s note.Signer, size uint64, root Hash) (*Checkpoint, error) {
	msg, err := note.Sign(&note.Note{Text: Body(s.Name(), size, root)}, s)
	if err != nil {
		return nil, fmt.Errorf("ledger: signing checkpoint: %w", err)
	}
	return &Checkpoint{Origin: s.Name(), Size: size, Root: root, Note: msg}, nil
}

// ErrCheckpoint is wrapped by every checkpoint that does not open: bad signature, unknown key, wrong
// origin or a body that is not a checkpoint.
var ErrCheckpoint = errors.New("ledger: bad checkpoint")

// OpenCheckpoint verifies the signed note msg with v and parses its body. The origin must be v's name.
func OpenCheckpoint(msg []byte, v note.Verifier) (*Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	c, err := ParseBody(n.Text)
	if err != nil {
		return nil, err
	}
	if c.Origin != v.Name() {
		return nil, fmt.Errorf("%w: origin %q is not the key's name %q", ErrCheckpoint, c.Origin, v.Name())
	}
	c.Note = append([]byte(nil), msg...)
	return c, nil
}

// ParseBody parses a tlog-checkpoint body (without checking any signature). Extension lines after the
// root are allowed and ignored.
func ParseBody(text string) (*Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 || !strings.HasSuffix(text, "\n") {
		return nil, fmt.Errorf("%w: body is not origin, size and root lines", ErrCheckpoint)
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil || strconv.FormatUint(size, 10) != lines[1] {
		return nil, fmt.Errorf("%w: size %q is not a decimal number", ErrCheckpoint, lines[1])
	}
	root, err := ParseHash(lines[2])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	if lines[0] == "" {
		return nil, fmt.Errorf("%w: empty origin", ErrCheckpoint)
	}
	return &Checkpoint{Origin: lines[0], Size: size, Root: root}, nil
}

// AppendCheckpointFile appends the signed note to the checkpoint file (created with mode 0644: its
// contents are public) followed by a blank line, and fsyncs it.
func AppendCheckpointFile(path string, msg []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(append(append([]byte(nil), msg...), '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// FileRecord is one record of a checkpoint file: its signed note, or why it did not open.
type FileRecord struct {
	Number     int // from 1
	Checkpoint *Checkpoint
	Err        error
}

// ReadCheckpointFile reads every record of the checkpoint file at path, checking each with v. A
// missing file gives no records and no error (the caller decides whether that is acceptable); a last
// record cut short by a crash is reported in incomplete rather than as a bad record.
func ReadCheckpointFile(path string, v note.Verifier) (recs []FileRecord, incomplete bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return ParseCheckpointFile(path, data, v)
}

// ParseCheckpointFile splits data into signed notes (each: body, blank line, signature lines, blank
// line) and opens each with v.
func ParseCheckpointFile(name string, data []byte, v note.Verifier) (recs []FileRecord, incomplete bool, err error) {
	for len(data) > 0 {
		msg, rest, ok := nextRecord(data)
		if !ok {
			return recs, true, nil
		}
		data = rest
		r := FileRecord{Number: len(recs) + 1}
		r.Checkpoint, r.Err = OpenCheckpoint(msg, v)
		if r.Checkpoint != nil {
			r.Checkpoint.Source = fmt.Sprintf("%s record %d", name, r.Number)
		}
		recs = append(recs, r)
	}
	return recs, false, nil
}

// nextRecord takes one note off the front of data: text up to the first blank line, then signature
// lines up to the next blank line.
func nextRecord(data []byte) (msg, rest []byte, ok bool) {
	body := bytes.Index(data, []byte("\n\n"))
	if body < 0 {
		return nil, nil, false
	}
	end := bytes.Index(data[body+2:], []byte("\n\n"))
	if end < 0 {
		return nil, nil, false
	}
	cut := body + 2 + end + 1 // keep the signature block's final newline
	return data[:cut], data[cut+1:], true
}
