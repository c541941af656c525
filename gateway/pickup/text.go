// Every English sentence of the pickup pages, in one place, so the pages can be translated by giving
// Options.Text another catalogue with the same keys. Templates hold structure only and look text up
// with {{t "key"}}; a test checks that every key a template uses is here.

package pickup

// Text is a catalogue of the pages' sentences by key.
type Text map[string]string

// English returns the default catalogue (a fresh copy each time: callers may change theirs).
func English() Text {
	return Text{
		"site.name":  "CAF secure gateway",
		"site.skip":  "Skip to main content",
		"site.help":  "If you think this notification reached you by mistake, or you need help, contact",
		"site.admin": "your agency administrator",
		"form.send":  "Continue",
		"form.error": "There is a problem",

		"signin.title":    "Sign in to collect a secure package",
		"signin.intro":    "A package has been sent to you through the CAF secure gateway. Sign in with your agency directory mail address and password and the 6-digit code from your authenticator app. Nothing is shown before you have signed in.",
		"signin.mail":     "Mail address",
		"signin.password": "Password",
		"signin.code":     "6-digit code from your authenticator app",
		"signin.codehint": "Each code works once. If a code was refused, wait for the next one.",
		"signin.submit":   "Sign in",
		"signin.failed":   "Sign-in failed: the mail address, password or code was not accepted. Each code works only once, so wait for the next code before you try again.",
		"signin.enrol":    "First time here, or a new phone? Set up your authenticator",
		"signin.other":    "This link was sent to another practitioner, so it cannot be opened with your account. Nothing has been shown. If you expected a package, ask the sender to send it to you.",

		"enrol.title":     "Set up your authenticator",
		"enrol.intro":     "You need the enrolment code your agency administrator gave you, and your directory password. Setting up a new authenticator replaces any earlier one.",
		"enrol.code":      "Enrolment code from your administrator",
		"enrol.codehint":  "Four groups of four letters and digits, for example 7KQ2-M9XD-4TBN-P0RW.",
		"enrol.failed":    "Set-up failed: the mail address, password or enrolment code was not accepted. An enrolment code works once and expires; ask your agency administrator for a new one if yours has.",
		"enrol.qr.title":  "Scan this code with your authenticator app",
		"enrol.qr.intro":  "Open your authenticator app (for example Microsoft Authenticator, Google Authenticator or FreeOTP), add an account and scan the picture. Then type the 6-digit code the app shows.",
		"enrol.qr.alt":    "QR code holding your new authenticator secret",
		"enrol.qr.manual": "If you cannot scan it, enter this key in the app by hand (time-based, 6 digits, 30 seconds):",
		"enrol.qr.failed": "That code was not accepted. Check that your phone's clock is right and type the code the app shows now.",
		"enrol.done":      "Your authenticator is set up.",
		"enrol.continue":  "Continue to sign in",
		"enrol.back":      "Open the link in your notification again to sign in.",
		"enrol.links":     "Or sign in to see the links of packages you sent",

		"reason.title":  "Why are you opening this package?",
		"reason.intro":  "Access to these records is recorded. Please say briefly why you need them.",
		"reason.label":  "Reason for access",
		"reason.empty":  "Please give a reason for access.",
		"reason.submit": "Continue",

		"package.title":     "Your package",
		"package.from":      "From",
		"package.received":  "Received",
		"package.expires":   "Link expires",
		"package.left":      "Downloads left",
		"package.documents": "Documents you may see",
		"package.name":      "Document",
		"package.type":      "Type",
		"package.size":      "Size",
		"package.download":  "Download",
		"package.all":       "Download all documents as one zip file",
		"package.mime":      "Download the whole package as one MIME file (.eml)",
		"package.usedup":    "Every download this link allows has been made. Ask the sender if you need the documents again.",
		"package.recorded":  "Each view and download is recorded in the gateway's ledger.",
		"package.signout":   "Sign out",
		"package.notice":    "Downloaded documents are your agency's responsibility: keep them only where your agency's rules allow.",

		"links.signin.title": "Sign in to see the links of packages you sent",
		"links.signin.intro": "The practitioner who sent a package, and the lead professional of its episode, can see here the one-time links to it that can still be used, and withdraw one. Sign in with your agency directory mail address and password and the 6-digit code from your authenticator app.",
		"links.title":        "Links to packages you sent or whose episode you lead",
		"links.intro":        "These one-time links can still be used by their recipients. Withdrawing one stops it at once and signs its recipient out; the gateway's ledger records that you withdrew it and why.",
		"links.recipient":    "Recipient",
		"links.episode":      "Episode",
		"links.sent":         "Package received",
		"links.downloads":    "Downloads made",
		"links.downloads.of": "%d of %d",
		"links.opened":       "First signed in",
		"links.notopened":    "Not yet",
		"links.id":           "Link reference",
		"links.reason":       "Why are you withdrawing this link? (recorded)",
		"links.revoke":       "Withdraw this link",
		"links.none":         "No link to a package you sent, or to a package of an episode you lead, can still be used.",
		"links.revoked":      "The link has been withdrawn. Its recipient can no longer use it.",
		"links.reason.empty": "Please say why you are withdrawing the link; nothing was withdrawn.",
		"links.notyours":     "There is no link with this reference that you may withdraw; nothing was withdrawn.",
		"links.ended":        "This link had already been withdrawn or had expired.",

		"gone.title":     "This link can no longer be used",
		"gone.notfound":  "This link is not valid. Check that you opened the whole link from the notification.",
		"gone.expired":   "This link has expired. Ask the sender to send the package again if you still need it.",
		"gone.revoked":   "This link has been withdrawn. Ask the sender if you think you should still have access.",
		"gone.usedup":    "Every download this link allows has been made. Ask the sender if you need the documents again.",
		"gone.withdrawn": "This package is no longer available to you.",

		"locked.title":   "Sign-in locked",
		"locked.link":    "Too many sign-ins through this link have failed, so it is locked. Ask your agency administrator to unlock it.",
		"locked.account": "Too many sign-ins for this mail address have failed, so it is locked. Ask your agency administrator to unlock it.",
		"locked.ip":      "Too many failed attempts from your network. Please wait a few minutes and try again.",

		"session.title":       "Please sign in again",
		"session.ended":       "Your session has ended. Open the link in your notification again to sign in.",
		"session.ended.links": "Your session has ended. Sign in again to see the links of packages you sent.",
		"session.signout":     "You have signed out.",
		"session.form":        "This form had expired, so nothing was done. Please try again.",

		"error.title":     "Something went wrong",
		"error.internal":  "Something went wrong on the gateway; nothing was shown or changed. Please try again later, and quote this reference if it keeps happening:",
		"error.directory": "The agency directory cannot be reached just now, so sign-in is not possible. Please try again later.",
		"error.notfound":  "There is no page here.",

		"unit.bytes": "%d bytes",
		"unit.kb":    "%.0f KB",
		"unit.mb":    "%.1f MB",
	}
}
