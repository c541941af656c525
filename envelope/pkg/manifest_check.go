package pkg

import (
	"math"
	"strconv"
	"strings"
)

// Sizes shared with docs/manifest.schema.json.
const (
	maxDocuments    = 1000
	maxPartName     = 255
	maxMail         = 254
	maxAgency       = 128
	maxReason       = 1000
	maxOperations   = 20
	maxMembers      = 200
	maxConsentItems = 200
)

const sectionList = "one of the six CAF sections: childs-details, development-of-the-child, parents-and-carers, " +
	"family-and-environment, conclusions-and-actions, consent"

// checkManifest applies every rule of the schema to the manifest's JSON, then the one rule a schema
// cannot state: document part names are unique.
func checkManifest(root *jnode) *Error {
	if root.kind != jObject {
		return wrongType(root, "", jObject)
	}
	if err := checkVersion(root.get("version")); err != nil {
		return err
	}
	if err := manifestRules(root, ""); err != nil {
		return err
	}
	if err := openRules(root); err != nil {
		return err
	}
	return uniquePartNames(root.get("documents"))
}

// openRules: a package that opens its episode has no reference yet (the gateway gives it) and brings
// the consent the episode opens with; any other names its episode. Only the first operation may open.
func openRules(root *jnode) *Error {
	opens := false
	if ops := root.get("operations"); ops != nil {
		for i, op := range ops.items {
			if op.get("op").str != OpOpen {
				continue
			}
			if i > 0 {
				return fieldErr("/operations/"+strconv.Itoa(i)+"/op", "open can only be the first operation: an episode is opened before anything else is done to it")
			}
			opens = true
		}
	}
	switch {
	case opens && root.get("episode") != nil:
		return fieldErr("/episode", "must be left out when the package opens the episode: the gateway gives the new episode its reference")
	case opens && root.get("consent") == nil:
		return fieldErr("/consent", "is required when the package opens the episode: record the consent the episode opens with")
	case !opens && root.get("episode") == nil:
		return fieldErr("/episode", "this field is required (an episode reference like CAF-2026-000123), unless the first operation opens the episode")
	}
	return nil
}

// checkVersion is done first: a manifest of another version is refused for its version, whatever else
// it holds.
func checkVersion(v *jnode) *Error {
	if v == nil {
		return fieldErr("/version", "this field is required: the manifest format version, 1")
	}
	if v.kind != jNumber {
		return fieldErr("/version", "must be the number 1, the manifest format version")
	}
	f, err := strconv.ParseFloat(string(v.num), 64)
	if err != nil || f != FormatVersion {
		if err == nil && f == math.Trunc(f) && math.Abs(f) < 1e6 {
			return fieldErr("/version", "manifest format version %d is not one this gateway reads (it reads version 1)", int64(f))
		}
		return fieldErr("/version", "is not a manifest format version this gateway reads (it reads version 1)")
	}
	return nil
}

var manifestRules = object(
	field{"version", true, func(*jnode, string) *Error { return nil }}, // checked first, above
	field{"episode", false, text(15, 15, isEpisodeRef, "an episode reference like CAF-2026-000123")},
	field{"child", true, text(1, 64, isChildID, "a child identifier: 1 to 64 letters, digits and . _ : / - starting with a letter or digit")},
	field{"sender", true, mailAddress},
	field{"override_reason", false, text(1, maxReason, hasVisible, "the reason for the override, in words (at most 1000 characters)")},
	field{"operations", false, arrayOf(1, maxOperations, false, operation)},
	field{"consent", false, consentRecord},
	field{"documents", true, arrayOf(1, maxDocuments, false, document)},
	field{"withheld", false, sectionArray(0)},
)

var mailAddress = text(3, maxMail, isMail, "a mail address such as name@agency.example")

var document = object(
	field{"part", true, text(1, maxPartName, isPartName, "the document's file name as its MIME part gives it (no / or \\, no control characters)")},
	field{"sections", true, sectionArray(1)},
)

func sectionArray(minItems int) check {
	return arrayOf(minItems, 6, true, oneOfStrings(sectionList, sectionLabels()...))
}

func sectionLabels() []string {
	var out []string
	for _, s := range AllSections() {
		out = append(out, string(s))
	}
	return out
}

// operation checks one episode operation: op first, then the fields that op takes.
func operation(n *jnode, at string) *Error {
	if n.kind != jObject {
		return wrongType(n, at, jObject)
	}
	op := n.get("op")
	if op == nil {
		return fieldErr(at+"/op", "this field is required")
	}
	if err := oneOfStrings("one of open, handover, add-members, remove-members, transition, close",
		OpOpen, OpHandover, OpAddMembers, OpRemoveMembers, OpTransition, OpClose)(op, at+"/op"); err != nil {
		return err
	}
	return operationFields[op.str](n, at)
}

var (
	opField      = field{"op", true, func(*jnode, string) *Error { return nil }}
	leadField    = field{"lead", true, mailAddress}
	membersField = field{"members", true, arrayOf(1, maxMembers, true, mailAddress)}
	stateField   = field{"state", true, oneOfStrings("one of preparation, assessment, action-plan-and-delivery, review",
		StatePreparation, StateAssessment, StateActionPlan, StateReview)}
)

var operationFields = map[string]check{
	OpOpen:          object(opField, leadField, membersField),
	OpHandover:      object(opField, leadField),
	OpAddMembers:    object(opField, membersField),
	OpRemoveMembers: object(opField, membersField),
	OpTransition:    object(opField, stateField),
	OpClose:         object(opField),
}

var consentRecord = object(
	field{"given_by", true, oneOfStrings("one of child, parent, carer", GivenByChild, GivenByParent, GivenByCarer)},
	field{"given_at", true, text(20, 64, isDateTime, "a date and time like 2026-03-01T10:30:00Z (RFC 3339)")},
	field{"grants", false, arrayOf(0, maxConsentItems, false, consentEntry(true))},
	field{"refusals", false, arrayOf(0, maxConsentItems, false, consentEntry(false))},
	field{"withdrawn", false, boolean()},
)

// consentEntry checks a grant (agency, practitioner or team) or a refusal (agency or practitioner):
// exactly one subject, and optional sections.
func consentEntry(grant bool) check {
	subjects := []string{"agency", "practitioner"}
	fields := []field{
		{"agency", false, text(1, maxAgency, isPlainText, "an agency's name as the directory gives it (one line, at most 128 characters)")},
		{"practitioner", false, mailAddress},
		{"sections", false, sectionArray(1)},
	}
	what := "exactly one of agency or practitioner"
	if grant {
		subjects = append(subjects, "team")
		fields = append(fields, field{"team", false, isTrue()})
		what = "exactly one of agency, practitioner or team"
	}
	fieldsCheck := object(fields...)
	return func(n *jnode, at string) *Error {
		if err := fieldsCheck(n, at); err != nil {
			return err
		}
		var present []string
		for _, s := range subjects {
			if n.get(s) != nil {
				present = append(present, s)
			}
		}
		switch len(present) {
		case 1:
			return nil
		case 0:
			return fieldErr(at, "must name %s", what)
		}
		return fieldErr(at+"/"+present[1], "must name %s, not %s", what, strings.Join(present, " and "))
	}
}

// uniquePartNames refuses two documents with one part name: each names its own MIME part.
func uniquePartNames(docs *jnode) *Error {
	seen := map[string]bool{}
	for i, d := range docs.items {
		name := d.get("part").str
		if seen[name] {
			return fieldErr("/documents/"+strconv.Itoa(i)+"/part", "names the same part as an earlier document; each document is its own part")
		}
		seen[name] = true
	}
	return nil
}
