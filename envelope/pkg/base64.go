package pkg

// b64class sorts the bytes of a base64 body: the standard alphabet, the white space go-message's
// decoder skips (CR and LF, and space and tab, which it turns into LF), the pad, and everything else.
var b64class = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Bad
	}
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = b64Char
	}
	for _, c := range []byte("\r\n \t") {
		t[c] = b64Space
	}
	t['='] = b64Pad
	return t
}()

const (
	b64Char byte = iota
	b64Space
	b64Pad
	b64Bad
)

// validBase64 reports whether body, white space left out, is standard padded base64: whole groups of
// four alphabet characters, the last of which may end in "=" or "==", and nothing after the padding.
// That is exactly what encoding/base64's StdEncoding.Decode accepts of the whole body at once, and
// stricter than its streaming decoder (which go-message uses, and which also lets a padded group end
// one read and more data begin the next), so a body this accepts always decodes later. It decodes
// nothing and allocates nothing: a 1 MiB attachment costs one table look-up per byte.
func validBase64(body []byte) bool {
	n := 0 // alphabet characters before any padding
	i := 0
	for ; i < len(body); i++ {
		switch b64class[body[i]] {
		case b64Char:
			n++
			continue
		case b64Space:
			continue
		case b64Bad:
			return false
		}
		break // the first pad
	}
	if i == len(body) {
		return n%4 == 0
	}
	// Padding: "xx==" or "xxx=", then only white space.
	pads := 0
	for ; i < len(body); i++ {
		switch b64class[body[i]] {
		case b64Pad:
			pads++
		case b64Space:
		default:
			return false
		}
	}
	return (n%4 == 2 && pads == 2) || (n%4 == 3 && pads == 1)
}
