package api

import (
	"bytes"
	"io"
	"os"
	"testing"
)

// TestSpool: what is written is read back byte for byte, across chunk boundaries and with a short last
// chunk; the file on disk holds none of it in the clear; and it has no name in its directory.
func TestSpool(t *testing.T) {
	for _, size := range []int{0, 1, spoolChunk - 1, spoolChunk, spoolChunk + 1, 3*spoolChunk + 12345} {
		dir := t.TempDir()
		sp, err := newSpool(dir)
		if err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("child's assessment "), size/19+1)[:size]
		for rest := data; len(rest) > 0; { // uneven writes
			n := min(len(rest), 7777)
			if _, err := sp.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("the spool has a name: %v", ents)
		}
		if err := sp.finish(); err != nil {
			t.Fatal(err)
		}
		if _, err := sp.Write([]byte("x")); err == nil {
			t.Error("write after finish")
		}
		disk := make([]byte, size+int(sp.chunks)*16+1)
		n, _ := sp.f.ReadAt(disk, 0)
		if n != size+int(sp.chunks)*16 || (size > 40 && bytes.Contains(disk[:n], []byte("child's assessment"))) {
			t.Errorf("size %d: %d bytes on disk, or plaintext on disk", size, n)
		}
		for range 2 { // readable more than once
			r, err := sp.reader()
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("size %d: read back %d bytes, %v", size, len(got), err)
			}
		}
		// A chunk altered on disk does not open.
		if size > 0 {
			sp.f.WriteAt([]byte{disk[0] ^ 1}, 0)
			r, _ := sp.reader()
			if _, err := io.ReadAll(r); err == nil {
				t.Errorf("size %d: an altered spool was read", size)
			}
		}
		sp.Close()
	}
}
