package pkg

import (
	"bytes"
	"testing"
)

// TestIsBlankText: a text part without a file name is left out when its decoded content is only white
// space, judged without copying an identity-encoded body and by streaming a decoded one.
func TestIsBlankText(t *testing.T) {
	for _, c := range []struct {
		cte, body string
		blank     bool
	}{
		{"", "", true},
		{"", " \r\n\t\r\n", true},
		{"7bit", "\r\n\r\nhello\r\n", false},
		{"8bit", "\u00a0\r\n", true},  // no-break space is white space to bytes.TrimSpace
		{"base64", "ICAg\r\n", true},  // "   "
		{"base64", "wqA=\r\n", true},  // U+00A0
		{"base64", "aGk=\r\n", false}, // "hi"
		{"base64", "ICA!\r\n", false}, // does not decode
		{"quoted-printable", "=20=20\r\n", true},
		{"quoted-printable", "=20x\r\n", false},
	} {
		hdr := "Content-Type: text/plain\r\n"
		if c.cte != "" {
			hdr += "Content-Transfer-Encoding: " + c.cte + "\r\n"
		}
		e, err := walk([]byte(hdr+"\r\n"+c.body), DefaultLimits())
		if err != nil {
			t.Fatalf("%q %q: %v", c.cte, c.body, err)
		}
		if got := e.isBlankText(); got != c.blank {
			t.Errorf("%q %q: isBlankText = %v, want %v", c.cte, c.body, got, c.blank)
		}
	}
	big := append(bytes.Repeat([]byte(" \r\n"), 100000), 'x')
	if e, _ := walk(append([]byte("Content-Type: text/plain\r\n\r\n"), big...), DefaultLimits()); e.isBlankText() {
		t.Error("a letter after 300,000 bytes of white space: blank")
	}
}
