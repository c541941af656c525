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
	// A line at a time with bytes.IndexByte (vectorised): the first CR of a line must be the one just
	// before its LF. The first fault is the one reported, as a byte-by-byte scan would.
	for len(data) > 0 {
		lf := bytes.IndexByte(data, '\n')
		if lf < 0 {
			if bytes.IndexByte(data, '\r') >= 0 {
				return bareCR()
			}
			break
		}
		switch cr := bytes.IndexByte(data[:lf], '\r'); {
		case cr < 0:
			return bareLF()
		case cr < lf-1:
			return bareCR()
		}
		data = data[lf+1:]
	}
	return nil
}

func bareCR() *fault.Error {
	return fault.New(fault.BadMessage, "The message contains a bare carriage return (CR without LF); lines must end with CRLF. It was not accepted.", nil)
}

func bareLF() *fault.Error {
	return fault.New(fault.BadMessage, "The message contains a bare line feed (LF without CR); lines must end with CRLF. It was not accepted.", nil)
}
