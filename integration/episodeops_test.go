package integration

import "testing"

// TestEpisodeOperationsSMTP: packages whose manifest opens, hands over and closes an episode, and the
// bad manifests around them, submitted with smtplib (integration/py/episodeops_smtp.py); every
// refusal is checked to store nothing. The ledger must verify afterwards.
func TestEpisodeOperationsSMTP(t *testing.T) {
	t.Parallel()
	requirePython(t)
	g := startGateway(t)
	g.runPython(t, "episodeops_smtp")
	g.stop()
	g.requireVerifyClean(-1)
}
