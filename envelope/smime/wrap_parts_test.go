package smime

import (
	"bytes"
	"io"
	"testing"
)

func TestPartsReaderReadsTheConcatenation(t *testing.T) {
	parts := [][]byte{[]byte("Content-Type: text/plain\r\n"), nil, []byte("\r\n"), []byte("body line\r\n")}
	want := bytes.Join(parts, nil)
	var viaWriteTo bytes.Buffer
	if n, err := io.Copy(&viaWriteTo, &partsReader{parts: append([][]byte(nil), parts...)}); err != nil || n != int64(len(want)) {
		t.Fatalf("io.Copy = %d, %v", n, err)
	}
	viaRead, err := io.ReadAll(io.LimitReader(&partsReader{parts: append([][]byte(nil), parts...)}, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(viaWriteTo.Bytes(), want) || !bytes.Equal(viaRead, want) {
		t.Fatalf("WriteTo %q, Read %q, want %q", viaWriteTo.Bytes(), viaRead, want)
	}
	if string(parts[0]) != "Content-Type: text/plain\r\n" {
		t.Fatal("the caller's parts were changed")
	}
}
