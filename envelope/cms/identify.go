package cms

// Kind is what a CMS ContentInfo holds.
type Kind int

// The kinds Identify reports.
const (
	KindUnknown           Kind = iota // not CMS, or a content type this package does not read
	KindSignedData                    // SignedData
	KindEnvelopedData                 // EnvelopedData (AES-CBC)
	KindAuthEnvelopedData             // AuthEnvelopedData (AES-GCM)
)

// Identify reads the content type of a DER or BER ContentInfo without decrypting, verifying or even
// checking the rest of the structure, so an S/MIME body is routed by what it is rather than by the smime-type parameter its
// sender wrote.
func Identify(der []byte) Kind {
	// Only the outer header and the OID are read, so that a truncated message is still routed to
	// the decoder that refuses it with its own error.
	if len(der) < 2 || der[0] != tagSequence {
		return KindUnknown
	}
	_, used, _, err := parseLength(der[1:])
	if err != nil {
		return KindUnknown
	}
	oid, _, err := parseElement(der[1+used:])
	if err != nil {
		return KindUnknown
	}
	switch {
	case oidIs(oid, oidSignedData):
		return KindSignedData
	case oidIs(oid, oidEnvelopedData):
		return KindEnvelopedData
	case oidIs(oid, oidAuthEnvelopedData):
		return KindAuthEnvelopedData
	}
	return KindUnknown
}
