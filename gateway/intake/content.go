package intake

import (
	"bytes"

	"cafgate/gateway/fault"
)

// CheckContent refuses message data that is not clean SMTP text: a bare CR or a bare LF (the SMTP
// smuggling class, CVE-2023-51764) or a NUL byte anywhere. data is the message as the SMTP data reader
// returns it, with CRLF line ends preserved and dot-stuffing removed.
func CheckContent(data []byte) *fault.Error {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return fault.New(fault.BadMessage, "The message contains a NUL character, which mail may not carry; it was not accepted.", nil)
	}
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return fault.New(fault.BadMessage, "The message contains a bare carriage return (CR without LF); lines must end with CRLF. It was not accepted.", nil)
			}
			i++
		case '\n':
			return fault.New(fault.BadMessage, "The message contains a bare line feed (LF without CR); lines must end with CRLF. It was not accepted.", nil)
		}
	}
	return nil
}
