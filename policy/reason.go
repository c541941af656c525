// Results and reason codes of a decision. Codes are stable (stored, shown to auditors, matched by
// tests); sentences are for people and may be reworded.

package policy

// Result is what happens to one recipient's copy of a package.
type Result string

// The three results.
const (
	DeliverAll      Result = "deliver-all"      // every section of the package
	DeliverSections Result = "deliver-sections" // Decision.Allowed only; Decision.Withheld are not sent
	Refuse          Result = "refuse"           // nothing
)

// Reason is the stable code for why a decision came out as it did.
type Reason string

// Reason codes, in the order the rules are applied (docs/consent.md).
const (
	// The package itself is faulty: every recipient is refused.
	ReasonUnknownSection        Reason = "unknown-section"
	ReasonOverrideReasonMissing Reason = "override-reason-missing"
	ReasonOverrideReasonTooLong Reason = "override-reason-too-long"
	// The episode.
	ReasonUnknownEpisode Reason = "unknown-episode"
	ReasonEpisodeClosed  Reason = "episode-closed"
	// The sender.
	ReasonSenderUnknown        Reason = "sender-unknown"
	ReasonSenderMismatch       Reason = "sender-mismatch"
	ReasonSenderStanding       Reason = "sender-not-in-good-standing"
	ReasonSenderNotOnTeam      Reason = "sender-not-on-team"
	ReasonOverrideNotPermitted Reason = "override-not-permitted"
	// The recipient's directory entry (an override never overcomes these).
	ReasonRecipientUnknown  Reason = "recipient-unknown"
	ReasonRecipientDisabled Reason = "recipient-disabled"
	ReasonRecipientLapsed   Reason = "recipient-vetting-lapsed"
	// Consent.
	ReasonConsent          Reason = "consent"           // deliver-all: consent covers every section
	ReasonOverride         Reason = "override"          // deliver-all beyond consent, lead told
	ReasonSectionsWithheld Reason = "sections-withheld" // deliver-sections
	ReasonNoConsent        Reason = "no-consent"
	ReasonWithdrawn        Reason = "consent-withdrawn"
	ReasonRefusedPerson    Reason = "refused-person"
	ReasonRefusedAgency    Reason = "refused-agency"
	ReasonRefusedSections  Reason = "refused-sections" // granted, but every section present is refused
	ReasonNotGranted       Reason = "not-granted"
	ReasonWholeRequired    Reason = "whole-assessment-required"
)

// MaxOverrideReason is the longest override reason accepted, in bytes.
const MaxOverrideReason = 1000

// Reasons returns every reason code, in rule order.
func Reasons() []Reason {
	return []Reason{ReasonUnknownSection, ReasonOverrideReasonMissing, ReasonOverrideReasonTooLong,
		ReasonUnknownEpisode, ReasonEpisodeClosed, ReasonSenderUnknown, ReasonSenderMismatch, ReasonSenderStanding,
		ReasonSenderNotOnTeam, ReasonOverrideNotPermitted, ReasonRecipientUnknown, ReasonRecipientDisabled,
		ReasonRecipientLapsed, ReasonConsent, ReasonOverride, ReasonSectionsWithheld, ReasonNoConsent, ReasonWithdrawn,
		ReasonRefusedPerson, ReasonRefusedAgency, ReasonRefusedSections, ReasonNotGranted, ReasonWholeRequired}
}
