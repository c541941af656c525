package pkg

// Limits bound what Parse reads; go-message has none of its own for parts and depth. A refusal names
// the limit in Error.Limit by the names given here.
type Limits struct {
	MaxBytes         int64 // "max_bytes": the whole message
	MaxHeaderBytes   int   // "max_header_bytes": one header block (the message's or a part's)
	MaxParts         int   // "max_parts": MIME entities in all, the message itself included
	MaxDepth         int   // "max_depth": multipart nesting; a single-part message has depth 0
	MaxManifestBytes int   // "max_manifest_bytes": the manifest part, decoded
}

// DefaultLimits are generous for real packages (a form, an action plan and some letters) and small
// enough that a hostile message costs little: 64 MiB, 64 KiB headers, 100 parts, depth 8, 256 KiB
// manifest.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 64 << 20, MaxHeaderBytes: 64 << 10, MaxParts: 100, MaxDepth: 8, MaxManifestBytes: 256 << 10}
}

// orDefault fills each zero or negative limit with its default, so a zero Limits is the default.
func (l Limits) orDefault() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxParts <= 0 {
		l.MaxParts = d.MaxParts
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxManifestBytes <= 0 {
		l.MaxManifestBytes = d.MaxManifestBytes
	}
	return l
}
