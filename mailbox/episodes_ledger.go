// Ledger events of episodes, consent and decisions. Data is metadata only: never a child identifier
// (not even its hash), never an override's reason text, never package content.

package mailbox

import "cafgate/mailbox/ledger"

// Ledger event types for episodes, consent and decisions (the ledger's list of types holds them).
const (
	EventEpisodeOpened     = ledger.EpisodeOpened
	EventEpisodeHandover   = ledger.EpisodeHandover
	EventEpisodeTransition = ledger.EpisodeTransition
	EventEpisodeClosed     = ledger.EpisodeClosed
	EventConsentRecorded   = ledger.ConsentRecorded
	EventConsentWithdrawn  = ledger.ConsentWithdrawn
	EventDecisions         = ledger.Decisions
	EventOverride          = ledger.Override
)

// episodeOpenedData is the data of an "episode-opened" event.
type episodeOpenedData struct {
	Episode string   `json:"episode"`
	State   string   `json:"state"`
	Lead    string   `json:"lead"`
	Team    []string `json:"team"` // every member's mail: the ledger is for auditors
	By      string   `json:"by"`
}

// episodeChangeData is the data of "episode-handover", "episode-transition" and "episode-closed".
type episodeChangeData struct {
	Episode string `json:"episode"`
	From    string `json:"from"` // previous lead or state
	To      string `json:"to"`
	By      string `json:"by"`
}

// consentData is the data of "consent-recorded" and "consent-withdrawn".
type consentData struct {
	Episode   string `json:"episode"`
	Version   int    `json:"version"`
	GivenBy   string `json:"given_by"`
	Grants    int    `json:"grants"`
	Refusals  int    `json:"refusals"`
	Withdrawn bool   `json:"withdrawn,omitempty"`
	By        string `json:"by"`
}

// decisionsData is the data of a "decisions" event: one per message.
type decisionsData struct {
	Episode        string           `json:"episode,omitempty"`
	ConsentVersion int              `json:"consent_version,omitempty"`
	Recipients     []recipientBrief `json:"recipients"`
}

type recipientBrief struct {
	Rcpt   string `json:"rcpt"`
	Result string `json:"result"`
	Reason string `json:"reason"`
}

// overrideData is the data of an "override" event. The reason itself is kept encrypted in overrides.
type overrideData struct {
	Episode    string   `json:"episode"`
	Sender     string   `json:"sender"`
	Lead       string   `json:"lead"` // to be told
	Recipients []string `json:"recipients"`
}
