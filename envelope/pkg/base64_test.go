package pkg

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"
)

// goMessageDecodes is the decoder delivery uses: go-message's base64 reader.
func goMessageDecodes(body []byte) bool {
	h := message.Header{Header: textproto.Header{}}
	h.Set("Content-Transfer-Encoding", "base64")
	h.Set("Content-Type", "application/octet-stream")
	m, err := message.New(h, bytes.NewReader(body))
	if err != nil {
		return false
	}
	_, err = io.Copy(io.Discard, m.Body)
	return err == nil
}

func TestValidBase64(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{"", true},
		{"\r\n", true},
		{"eHl6", true},
		{"eHl6\r\n", true},
		{"eA==", true},
		{"eHk=", true},
		{"eA==\r\n\r\n", true},
		{"eH\r\nl6", true},
		{" eHl6\t", true},   // space and tab: go-message skips them
		{"eA=\r\n=", true},  // the decoder skips line breaks inside the padding too
		{"eHl", false},      // an incomplete group without padding
		{"e===", false},     // too much padding
		{"====", false},     //
		{"eHk==", false},    // too much padding
		{"eA=", false},      // too little
		{"eA==eHl6", false}, // data after the padding
		{"eA==\r\neHl6", false},
		{"eHl6!", false}, // not the alphabet
		{"eHl6\x00", false},
		{"eHl6\v", false}, // white space go-message does not skip
		{"eH-6", false},   // URL alphabet
		{"eH_6", false},
	} {
		if got := validBase64([]byte(c.body)); got != c.ok {
			t.Errorf("validBase64(%q) = %v, want %v", c.body, got, c.ok)
		}
		if c.ok && !goMessageDecodes([]byte(c.body)) {
			t.Errorf("validBase64 accepts %q, which go-message does not decode", c.body)
		}
	}
	for n := range 300 {
		enc := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(n)}, n))
		var lines strings.Builder
		for len(enc) > 76 {
			lines.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		lines.WriteString(enc + "\r\n")
		if !validBase64([]byte(lines.String())) {
			t.Fatalf("validBase64 refuses the encoding of %d bytes", n)
		}
	}
}

// FuzzValidBase64: whatever validBase64 accepts, go-message decodes (so nothing accepted fails at
// delivery), and it agrees with decoding the body at once with the white space removed.
func FuzzValidBase64(f *testing.F) {
	for _, s := range []string{"", "eHl6", "eA==", "eHk=", "eA==eHl6", "e A=\r\n=", "eHl", "=", "eHl6\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ok := validBase64(body)
		if ok && !goMessageDecodes(body) {
			t.Fatalf("validBase64 accepts %q, which go-message does not decode", body)
		}
		var stripped []byte
		for _, c := range body {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				stripped = append(stripped, c)
			}
		}
		_, err := base64.StdEncoding.DecodeString(string(stripped))
		if ok != (err == nil) {
			t.Fatalf("validBase64(%q) = %v, StdEncoding.DecodeString of it without white space: %v", body, ok, err)
		}
	})
}
