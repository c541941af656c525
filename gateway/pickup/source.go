// Building a recipient's Contents from envelope/pkg: the per-recipient package (ForRecipient's MIME
// entity, holding only the documents whose sections the recipient may see) read back into documents.

package pickup

import (
	"errors"
	"fmt"

	"cafgate/envelope/pkg"
)

// FromPackage builds the Contents of p for a recipient allowed the sections allowed: exactly the
// documents ForRecipient puts in their package, and that package as the MIME download. A package of
// which nothing is allowed gives ErrNotAllowed.
func FromPackage(p *pkg.Package, allowed []pkg.Section) (*Contents, error) {
	entity, err := p.ForRecipient(allowed)
	if errors.Is(err, pkg.ErrNothingAllowed) {
		return nil, ErrNotAllowed
	}
	if err != nil {
		return nil, err
	}
	return FromPerRecipientMIME(entity)
}

// FromPerRecipientMIME reads a per-recipient package (the output of pkg.Package.ForRecipient) into
// its documents, keeping the entity itself as the MIME download.
func FromPerRecipientMIME(entity []byte) (*Contents, error) {
	p, err := pkg.ParseBytes(entity, pkg.Limits{})
	if err != nil {
		return nil, fmt.Errorf("pickup: reading the per-recipient package: %w", err)
	}
	c := &Contents{MIME: entity}
	for _, d := range p.Documents {
		b, err := d.Content()
		if err != nil {
			return nil, fmt.Errorf("pickup: document %q: %w", d.Part, err)
		}
		c.Documents = append(c.Documents, Document{Name: d.Part, MediaType: d.MediaType, Content: b})
	}
	if len(c.Documents) == 0 {
		return nil, ErrNotAllowed
	}
	return c, nil
}
