// Package pkg reads and writes CAF episode packages: a MIME message (multipart/mixed) that holds a JSON
// manifest (application/vnd.cafgate.manifest+json) and the documents it describes, or a plain e-mail
// whose Subject or CAF-Episode header carries an episode reference. Parse checks a package against the
// published manifest schema (docs/manifest.schema.json) and against limits on header size, part count
// and nesting depth; ForRecipient builds the per-recipient package that holds only the documents whose
// sections a recipient may see. The format is described in docs/package-format.md.
//
// Parse works on a package already taken out of any S/MIME layer (the envelope's CMS code does that).
// Errors are *Error values naming the field or MIME part at fault; their sentences never quote the
// message's content, so they may be logged.
package pkg
