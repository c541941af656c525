// Decide: one package, one recipient, one decision with a reason code and a plain sentence. The rules
// are applied in a fixed order (docs/consent.md, "The rules"); the first that refuses ends it.

package policy

import (
	"fmt"
	"strings"
	"time"

	"cafgate/directory"
)

// Package is what a decision needs to know of a package: not its content.
type Package struct {
	EpisodeRef string
	Sender     string // mail in the manifest; empty when the package names none
	// Sections present. Empty: a package not divided into sections (a plain mail with attachments),
	// which only a recipient who may see the whole assessment receives.
	Sections       []Section
	Override       bool   // the sender asks to share without or beyond consent for child protection
	OverrideReason string // required with an override; also asks for one when not empty
}

// OverrideAsked reports whether the package asks for an override (the flag, or a reason given).
func (p *Package) OverrideAsked() bool {
	return p.Override || strings.TrimSpace(p.OverrideReason) != ""
}

// DecisionInput is everything one decision depends on.
type DecisionInput struct {
	Episode       *Episode                // nil: no episode has the package's reference
	Consent       *Consent                // the version in force at acceptance; nil: none recorded
	Package       Package                 //
	Sender        *directory.Practitioner // the authenticated sender's entry
	Recipient     *directory.Practitioner // nil: the address is in no directory
	RecipientMail string                  // the address as given; used when Recipient is nil
	At            time.Time               // acceptance time: vetting is judged at this instant
}

// Decision is the outcome for one recipient.
type Decision struct {
	Recipient string    `json:"recipient"`
	Result    Result    `json:"result"`
	Reason    Reason    `json:"reason"`
	Sentence  string    `json:"sentence"`           // plain words for the sender's report
	Allowed   []Section `json:"allowed,omitempty"`  // sections this recipient receives (form order)
	Withheld  []Section `json:"withheld,omitempty"` // sections present but not sent to this recipient
	// Override is true when the child protection override, not consent, let this copy through; the
	// override must then be recorded with its reason and NotifyLead told (no package content).
	Override   bool   `json:"override,omitempty"`
	NotifyLead string `json:"notify_lead,omitempty"`
}

// Delivers reports whether anything is sent to the recipient.
func (d *Decision) Delivers() bool { return d.Result != Refuse }

// Decide applies the rules to one recipient. It never fails: bad input is a refusal with a reason.
func Decide(in DecisionInput) Decision {
	d := Decision{Recipient: in.recipientMail()}
	for _, check := range checks {
		if reason, sentence := check(&in); reason != "" {
			d.Result, d.Reason, d.Sentence = Refuse, reason, sentence
			return d
		}
	}
	return decideByConsent(&in, d)
}

func (in *DecisionInput) recipientMail() string {
	if in.Recipient != nil {
		return strings.ToLower(in.Recipient.Mail)
	}
	return strings.ToLower(strings.TrimSpace(in.RecipientMail))
}

// checks are the rules that refuse before consent is looked at, in order.
var checks = [...]func(*DecisionInput) (Reason, string){checkPackage, checkEpisode, checkSender, checkRecipient}

func checkPackage(in *DecisionInput) (Reason, string) {
	for _, s := range in.Package.Sections {
		if !s.Valid() {
			return ReasonUnknownSection, fmt.Sprintf("The package names a section this gateway does not know (%q); the sections are %s.", clip(string(s)), sectionList())
		}
	}
	if in.Package.OverrideAsked() {
		reason := strings.TrimSpace(in.Package.OverrideReason)
		if reason == "" {
			return ReasonOverrideReasonMissing, "The package asks to override consent but gives no reason; an override must state why it is needed for the child's protection."
		}
		if len(reason) > MaxOverrideReason {
			return ReasonOverrideReasonTooLong, fmt.Sprintf("The override reason is longer than %d characters; give it in brief.", MaxOverrideReason)
		}
	}
	return "", ""
}

func checkEpisode(in *DecisionInput) (Reason, string) {
	e, ref := in.Episode, in.Package.EpisodeRef
	if e == nil || (ref != "" && !strings.EqualFold(ref, e.Ref)) {
		if !ValidRef(ref) {
			return ReasonUnknownEpisode, "The package names no episode reference this gateway knows (the form is CAF-YYYY-NNNNNN)."
		}
		return ReasonUnknownEpisode, fmt.Sprintf("No episode has the reference %s.", ref)
	}
	if !e.Open() {
		return ReasonEpisodeClosed, fmt.Sprintf("Episode %s is closed; nothing more is shared under it.", e.Ref)
	}
	return "", ""
}

func checkSender(in *DecisionInput) (Reason, string) {
	s, e := in.Sender, in.Episode
	switch {
	case s == nil:
		return ReasonSenderUnknown, "The sender is not in any practitioner directory."
	case in.Package.Sender != "" && !strings.EqualFold(in.Package.Sender, s.Mail):
		return ReasonSenderMismatch, "The package names a different sender from the one who signed in."
	case s.Standing(in.At) != nil:
		return ReasonSenderStanding, "Your directory entry is disabled or your vetting has lapsed, so you cannot send packages."
	case !e.OnTeam(s.Mail):
		return ReasonSenderNotOnTeam, fmt.Sprintf("You are not on the team of episode %s, so you cannot send packages for it; ask its lead professional to add you.", e.Ref)
	case in.Package.OverrideAsked() && !s.HasRole(directory.RoleSafeguardingPerson):
		return ReasonOverrideNotPermitted, "Only a named safeguarding person may override consent; the package was not sent."
	}
	return "", ""
}

func checkRecipient(in *DecisionInput) (Reason, string) {
	r, mail := in.Recipient, in.recipientMail()
	switch {
	case r == nil:
		return ReasonRecipientUnknown, fmt.Sprintf("%s is not in any practitioner directory.", mail)
	case r.Disabled:
		return ReasonRecipientDisabled, fmt.Sprintf("%s's account is disabled; nothing is sent to it, even under an override.", mail)
	case r.Standing(in.At) != nil:
		return ReasonRecipientLapsed, fmt.Sprintf("%s's vetting has lapsed; nothing is sent to them, even under an override.", mail)
	}
	return "", ""
}

// decideByConsent applies the consent in force (and an override) to a recipient who passed the checks.
func decideByConsent(in *DecisionInput, d Decision) Decision {
	present, divisible := wholeOr(in.Package.Sections), len(in.Package.Sections) > 0
	m := matchConsent(in.Consent, in.Episode, in.Recipient)
	allowed := m.granted &^ m.refused
	switch {
	case present&^allowed == 0:
		d.Result, d.Reason, d.Allowed = DeliverAll, ReasonConsent, present.list()
		d.Sentence = fmt.Sprintf("%s receives the whole package: the consent in force covers it.", d.Recipient)
	case in.Package.OverrideAsked(): // checks passed: a safeguarding person with a reason
		d.Result, d.Reason, d.Allowed = DeliverAll, ReasonOverride, present.list()
		d.Override, d.NotifyLead = true, in.Episode.Lead
		d.Sentence = fmt.Sprintf("%s receives the whole package under your child protection override, beyond the consent in force; the override and its reason are recorded and the lead professional is told.", d.Recipient)
	case in.Consent == nil:
		return refuse(d, ReasonNoConsent, fmt.Sprintf("No consent is recorded for episode %s, and nothing is shared without consent.", in.Episode.Ref))
	case in.Consent.Withdrawn:
		return refuse(d, ReasonWithdrawn, fmt.Sprintf("Consent for episode %s has been withdrawn; nothing new is shared.", in.Episode.Ref))
	case present&allowed == 0:
		reason, sentence := m.refusalReason(present, d.Recipient, in.Recipient.Agency)
		return refuse(d, reason, sentence)
	case !divisible:
		return refuse(d, ReasonWholeRequired, fmt.Sprintf("%s may see only some sections (%s), and this package is not divided into sections; send it as a package with a manifest.", d.Recipient, allowed.titles()))
	default:
		withheld := present &^ allowed
		d.Result, d.Reason = DeliverSections, ReasonSectionsWithheld
		d.Allowed, d.Withheld = (present & allowed).list(), withheld.list()
		d.Sentence = fmt.Sprintf("%s receives only %s; withheld: %s.", d.Recipient, (present & allowed).titles(), m.withheldWords(withheld))
	}
	return d
}

func refuse(d Decision, reason Reason, sentence string) Decision {
	d.Result, d.Reason, d.Sentence = Refuse, reason, sentence
	return d
}

// consentMatch is what the consent in force says about one recipient.
type consentMatch struct {
	granted, refused sectionSet
	personRefused    bool // a refusal of this person for everything
	agencyRefused    bool // a refusal of their agency for everything
}

// matchConsent collects the grants and refusals that reach recipient r. A withdrawn or missing
// consent reaches no one.
func matchConsent(c *Consent, e *Episode, r *directory.Practitioner) consentMatch {
	var m consentMatch
	if c == nil || c.Withdrawn {
		return m
	}
	team := -1 // unknown until a team grant needs it
	agency := strings.TrimSpace(r.Agency)
	for i := range c.Grants {
		g := &c.Grants[i]
		if g.To == ScopeTeam {
			if team < 0 {
				team = b2i(e.OnTeam(r.Mail))
			}
			if team == 1 {
				m.granted |= wholeOr(g.Sections)
			}
		} else if reaches(g.To, g.Name, agency, r.Mail) {
			m.granted |= wholeOr(g.Sections)
		}
	}
	for i := range c.Refusals {
		f := &c.Refusals[i]
		if !reaches(f.Of, f.Name, agency, r.Mail) {
			continue
		}
		if f.Section == "" {
			m.refused = everySection
			m.personRefused = m.personRefused || f.Of == ScopePerson
			m.agencyRefused = m.agencyRefused || f.Of == ScopeAgency
		} else {
			m.refused |= setOf([]Section{f.Section})
		}
	}
	return m
}

// reaches reports whether an agency or person scope names the practitioner of agency and mail.
func reaches(kind ScopeKind, name, agency, mail string) bool {
	switch kind {
	case ScopeAgency:
		return strings.EqualFold(name, agency)
	case ScopePerson:
		return strings.EqualFold(name, mail)
	}
	return false
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// refusalReason explains why none of the present sections may go to the recipient.
func (m *consentMatch) refusalReason(present sectionSet, mail, agency string) (Reason, string) {
	switch {
	case m.personRefused:
		return ReasonRefusedPerson, fmt.Sprintf("The family has refused consent to share with %s.", mail)
	case m.agencyRefused:
		return ReasonRefusedAgency, fmt.Sprintf("The family has refused consent to share with %s, so nothing was sent to %s.", agency, mail)
	case m.granted&present != 0:
		return ReasonRefusedSections, fmt.Sprintf("The family has refused consent to share %s with %s.", (m.granted & present).titles(), mail)
	}
	return ReasonNotGranted, fmt.Sprintf("The consent in force does not cover sharing %s with %s.", present.titlesOrWhole(), mail)
}

// withheldWords names the withheld sections and why: refused by the family, or not covered.
func (m *consentMatch) withheldWords(withheld sectionSet) string {
	refused, uncovered := withheld&m.refused, withheld&^m.refused
	var parts []string
	if refused != 0 {
		parts = append(parts, refused.titles()+" (refused by the family)")
	}
	if uncovered != 0 {
		parts = append(parts, uncovered.titles()+" (not covered by the consent given)")
	}
	return strings.Join(parts, "; ")
}

// clip shortens untrusted text for a sentence.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
