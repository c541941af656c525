// Building the MIME package from a form: a multipart/mixed message with the manifest first and each
// document after it, every part base64 encoded, so the result is exactly what a case system could have
// sent over SMTP (docs/package-format.md).

package api

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"mime"
	"strconv"
	"strings"
	"time"

	"cafgate/envelope/pkg"
)

// buildPackage writes the package. Its inputs decide it completely (the caller picks the Message-ID and
// boundary), so it can be tested and fuzzed.
func buildPackage(from string, rcpts []string, manifest []byte, docs []formDoc, date time.Time, msgID, boundary string) []byte {
	var b bytes.Buffer
	b.Grow(len(manifest)*4/3 + 1024 + sizeOfDocs(docs)*4/3)
	b.WriteString("From: " + from + "\r\n")
	writeAddressHeader(&b, "To", rcpts)
	b.WriteString("Date: " + date.UTC().Format(time.RFC1123Z) + "\r\n")
	b.WriteString("Message-ID: <" + msgID + ">\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: " + mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": boundary}) + "\r\n\r\n")
	writePart(&b, boundary, pkg.ManifestType, "manifest.json", manifest)
	for _, d := range docs {
		writePart(&b, boundary, d.contentType, d.name, d.data)
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.Bytes()
}

func sizeOfDocs(docs []formDoc) int {
	n := 0
	for _, d := range docs {
		n += len(d.data) + 256
	}
	return n
}

// writeAddressHeader writes name: a, b, c folded so no line passes 78 characters where it can help it.
func writeAddressHeader(b *bytes.Buffer, name string, addrs []string) {
	line := len(name) + 1
	b.WriteString(name + ":")
	for i, a := range addrs {
		sep := " "
		if i > 0 {
			b.WriteString(",")
			line++
			if line+1+len(a) > 78 {
				b.WriteString("\r\n")
				line = 0
			}
		}
		b.WriteString(sep + a)
		line += 1 + len(a)
	}
	b.WriteString("\r\n")
}

// writePart writes one base64 part with its file name (RFC 2231 encoded when it is not plain ASCII).
func writePart(b *bytes.Buffer, boundary, contentType, filename string, data []byte) {
	b.WriteString("--" + boundary + "\r\n")
	b.WriteString("Content-Type: " + contentType + "\r\n")
	disp := mime.FormatMediaType("attachment", map[string]string{"filename": filename})
	if disp == "" { // a name FormatMediaType cannot write; readDocument refuses such names first
		disp = "attachment; filename=" + strconv.Quote(filename)
	}
	b.WriteString("Content-Disposition: " + disp + "\r\n")
	b.WriteString("Content-Transfer-Encoding: base64\r\n\r\n")
	writeBase64(b, data)
}

// writeBase64 writes data in base64 lines of 76 characters, each ending in CRLF.
func writeBase64(b *bytes.Buffer, data []byte) {
	const perLine = 57 // bytes per 76-character line
	enc := make([]byte, base64.StdEncoding.EncodedLen(perLine))
	for len(data) > 0 {
		n := min(perLine, len(data))
		m := base64.StdEncoding.EncodedLen(n)
		base64.StdEncoding.Encode(enc[:m], data[:n])
		b.Write(enc[:m])
		b.WriteString("\r\n")
		data = data[n:]
	}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return hex.EncodeToString(buf)
}

// formField names the form part a refusal of the built package is about: the package's part 1 is the
// manifest, part N+2 the form's document N; a JSON pointer is into the manifest.
func formField(field string) string {
	switch {
	case strings.HasPrefix(field, "/"):
		return "manifest#" + field
	case strings.HasPrefix(field, "part "):
		num, _, _ := strings.Cut(strings.TrimPrefix(field, "part "), ".")
		n, err := strconv.Atoi(num)
		switch {
		case err != nil || n == 0:
			return "message"
		case n == 1:
			return "manifest"
		default:
			return "document[" + strconv.Itoa(n-2) + "]"
		}
	}
	return field
}
