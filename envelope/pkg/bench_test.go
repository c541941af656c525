package pkg

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkParseAndBuild parses a package with one 8 MiB base64 document and builds a recipient's
// package from it: the format's own cost on top of the S/MIME work.
func BenchmarkParseAndBuild(b *testing.B) {
	raw := bytes.Repeat([]byte("CAF assessment text 0123456789\n"), (8<<20)/31)
	enc := base64.StdEncoding.EncodeToString(raw)
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	lines.WriteString(enc)
	data := manifestMsg(oneDoc("big.pdf", "consent"), [2]string{"big.pdf", ""})
	data = bytes.Replace(data, []byte("filename=\"big.pdf\"\r\n\r\n"),
		[]byte("filename=\"big.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"+lines.String()), 1)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		p, err := ParseBytes(data, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.ForRecipient([]Section{Consent}); err != nil {
			b.Fatal(err)
		}
	}
}
