package cms

import (
	"errors"
)

// ASN.1 tag classes as they appear in the identifier octet.
const (
	classContext     = 0x80
	flagConstructed  = 0x20
	tagInteger       = 0x02
	tagBitString     = 0x03
	tagOctetString   = 0x04
	tagNull          = 0x05
	tagOID           = 0x06
	tagSequence      = 0x30 // with the constructed bit
	tagSet           = 0x31 // with the constructed bit
	maxBERDepth      = 32   // CMS nests about ten deep; more is hostile
	maxIndefiniteEOC = 2    // length of the end-of-contents octets
)

// errBER is returned for any input that is not well-formed BER within the limits. Its text says
// nothing about where: callers turn it into their own error.
var errBER = errors.New("cms: malformed BER")

// element is one BER tag-length-value. content is a slice of the input (never a copy); for an
// indefinite-length element it excludes the end-of-contents octets. full is the whole encoding.
type element struct {
	tag         byte // the identifier octet (class | constructed | number), low-tag-number form only
	constructed bool
	content     []byte
	full        []byte
}

// is reports whether the element has the identifier octet id (for example tagSequence, or
// classContext|flagConstructed|0 for [0] EXPLICIT).
func (e element) is(id byte) bool { return e.tag == id }

// parseElement reads one element from the front of b and returns it and the rest. Definite and
// indefinite lengths are accepted; tags must use the low-tag-number form (every CMS tag does); nesting
// deeper than maxBERDepth and lengths beyond the input are refused. It never panics and never copies.
func parseElement(b []byte) (element, []byte, error) {
	return parseElementDepth(b, 0)
}

func parseElementDepth(b []byte, depth int) (element, []byte, error) {
	if depth > maxBERDepth || len(b) < 2 {
		return element{}, nil, errBER
	}
	id := b[0]
	if id&0x1f == 0x1f {
		return element{}, nil, errBER // high tag numbers: not used by CMS
	}
	constructed := id&flagConstructed != 0
	n, hdr, indefinite, err := parseLength(b[1:])
	if err != nil {
		return element{}, nil, err
	}
	hdr++ // the identifier octet
	if indefinite {
		if !constructed {
			return element{}, nil, errBER
		}
		end, err := indefiniteEnd(b[hdr:], depth)
		if err != nil {
			return element{}, nil, err
		}
		total := hdr + end + maxIndefiniteEOC
		e := element{tag: id, constructed: true, content: b[hdr : hdr+end], full: b[:total]}
		return e, b[total:], nil
	}
	if n > len(b)-hdr {
		return element{}, nil, errBER
	}
	e := element{tag: id, constructed: constructed, content: b[hdr : hdr+n], full: b[:hdr+n]}
	if constructed {
		if err := checkChildren(e.content, depth+1); err != nil {
			return element{}, nil, err
		}
	}
	return e, b[hdr+n:], nil
}

// parseLength reads a length field. It returns the length, the number of octets used, and whether
// the length is indefinite. Lengths above 2^31-1 are refused.
func parseLength(b []byte) (n, used int, indefinite bool, err error) {
	if len(b) == 0 {
		return 0, 0, false, errBER
	}
	first := b[0]
	switch {
	case first < 0x80:
		return int(first), 1, false, nil
	case first == 0x80:
		return 0, 1, true, nil
	}
	octets := int(first & 0x7f)
	if octets > 4 || octets >= len(b) {
		return 0, 0, false, errBER
	}
	v := 0
	for _, c := range b[1 : 1+octets] {
		v = v<<8 | int(c)
	}
	if v < 0 || v > 1<<31-1 {
		return 0, 0, false, errBER
	}
	return v, 1 + octets, false, nil
}

// indefiniteEnd returns the offset of the end-of-contents octets that close an indefinite-length
// value whose contents start at b[0].
func indefiniteEnd(b []byte, depth int) (int, error) {
	off := 0
	for {
		if len(b)-off < 2 {
			return 0, errBER
		}
		if b[off] == 0 && b[off+1] == 0 {
			return off, nil
		}
		_, rest, err := parseElementDepth(b[off:], depth+1)
		if err != nil {
			return 0, err
		}
		off = len(b) - len(rest)
	}
}

// checkChildren validates that b is a sequence of well-formed elements.
func checkChildren(b []byte, depth int) error {
	for len(b) > 0 {
		_, rest, err := parseElementDepth(b, depth)
		if err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// children splits a constructed element's contents into its elements.
func (e element) children() ([]element, error) {
	if !e.constructed {
		return nil, errBER
	}
	var out []element
	b := e.content
	for len(b) > 0 {
		c, rest, err := parseElement(b)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
		b = rest
	}
	return out, nil
}

// octets returns the value of an OCTET STRING (or an implicitly tagged one): the contents of a
// primitive encoding, or the concatenation of the segments of a constructed one. A constructed string
// with a single primitive segment is returned without copying. limit bounds the result.
func (e element) octets(limit int) ([]byte, error) {
	if !e.constructed {
		if len(e.content) > limit {
			return nil, errBER
		}
		return e.content, nil
	}
	segs, err := e.segments(nil, 0)
	if err != nil {
		return nil, err
	}
	if len(segs) == 1 {
		if len(segs[0]) > limit {
			return nil, errBER
		}
		return segs[0], nil
	}
	total := 0
	for _, s := range segs {
		total += len(s)
		if total > limit {
			return nil, errBER
		}
	}
	out := make([]byte, 0, total)
	for _, s := range segs {
		out = append(out, s...)
	}
	return out, nil
}

// segments collects the primitive segments of a constructed OCTET STRING, in order.
func (e element) segments(acc [][]byte, depth int) ([][]byte, error) {
	if depth > maxBERDepth {
		return nil, errBER
	}
	kids, err := e.children()
	if err != nil {
		return nil, err
	}
	for _, k := range kids {
		if k.tag&^flagConstructed != tagOctetString {
			return nil, errBER
		}
		if !k.constructed {
			acc = append(acc, k.content)
			continue
		}
		if acc, err = k.segments(acc, depth+1); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// parseOne parses b as exactly one element with nothing after it.
func parseOne(b []byte) (element, error) {
	e, rest, err := parseElement(b)
	if err != nil {
		return element{}, err
	}
	if len(rest) != 0 {
		return element{}, errBER
	}
	return e, nil
}

// validateBER checks that b is exactly one well-formed BER element within the depth limit. It is run
// before any input reaches a library parser, whose recursion has no depth limit.
func validateBER(b []byte) error {
	_, err := parseOne(b)
	return err
}
