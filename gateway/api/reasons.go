// Reason sentences: the store keeps each decision's reason code, not its sentence, so the API words
// each code itself. They are general (no names: the status may be read long after the decision) and
// say what the code means for the recipient's copy.

package api

import "cafgate/policy"

var reasonSentences = map[policy.Reason]string{
	policy.ReasonUnknownSection:        "The package names a section that is not one of the six CAF sections, so nothing was sent.",
	policy.ReasonOverrideReasonMissing: "A child protection override needs a reason, and none was given, so nothing was sent.",
	policy.ReasonOverrideReasonTooLong: "The override reason was too long, so nothing was sent; give it in brief.",
	policy.ReasonUnknownEpisode:        "The package names no episode the gateway knows, so nothing was sent.",
	policy.ReasonEpisodeClosed:         "The episode is closed, so nothing was sent.",
	policy.ReasonSenderUnknown:         "The sender is not in any agency directory, so nothing was sent.",
	policy.ReasonSenderMismatch:        "The package names another practitioner as its sender, so nothing was sent.",
	policy.ReasonSenderStanding:        "The sender is not in good standing (disabled, or vetting lapsed), so nothing was sent.",
	policy.ReasonSenderNotOnTeam:       "The sender is not on the episode's team, so nothing was sent.",
	policy.ReasonOverrideNotPermitted:  "Only the lead professional may use the child protection override, so nothing was sent.",
	policy.ReasonRecipientUnknown:      "No agency directory knows this recipient, so nothing was sent to them.",
	policy.ReasonRecipientDisabled:     "This recipient's directory account is disabled, so nothing was sent to them.",
	policy.ReasonRecipientLapsed:       "This recipient's vetting has lapsed, so nothing was sent to them.",
	policy.ReasonConsent:               "The consent in force covers every section of the package: the recipient receives all of it.",
	policy.ReasonOverride:              "The recipient receives the whole package under a child protection override beyond the consent in force; the lead professional is told.",
	policy.ReasonSectionsWithheld:      "The recipient receives only the sections the consent in force allows; the others are withheld.",
	policy.ReasonNoConsent:             "The episode has no consent in force, so nothing was sent to this recipient.",
	policy.ReasonWithdrawn:             "The family has withdrawn consent, so nothing was sent to this recipient.",
	policy.ReasonRefusedPerson:         "The family refused sharing with this practitioner, so nothing was sent to them.",
	policy.ReasonRefusedAgency:         "The family refused sharing with this recipient's agency, so nothing was sent to them.",
	policy.ReasonRefusedSections:       "The family refused sharing the sections this package holds with this recipient, so nothing was sent to them.",
	policy.ReasonNotGranted:            "The consent in force does not cover this recipient, so nothing was sent to them.",
	policy.ReasonWholeRequired:         "This recipient may see only some sections, and the package is not divided into sections (it has no manifest), so nothing was sent to them.",
}

// reasonSentence words a reason code; a code without a sentence gets none.
func reasonSentence(r policy.Reason) string { return reasonSentences[r] }
