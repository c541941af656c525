package integration

// The harness builds cmd/cafgate itself (`go build`), so Go's test cache cannot see that the binary's
// code changed. Importing every package the binary is made of ties this test binary, and so the cached
// result, to their code: change one and the integration tests run again. cmd/cafgate itself (package
// main) cannot be imported; its own files are not covered. TestDepsCoverTheBinary keeps the list whole.

import (
	"os/exec"
	"strings"
	"testing"

	_ "cafgate/directory/ldap"
	_ "cafgate/gateway/api"
	_ "cafgate/gateway/autoconfig"
	_ "cafgate/gateway/deliver"
	_ "cafgate/gateway/smtpd"
)

// TestDepsCoverTheBinary fails when the binary uses a package of this module that this test binary
// does not, so a change to it would leave a stale cached result.
func TestDepsCoverTheBinary(t *testing.T) {
	list := func(args ...string) map[string]bool {
		out, err := exec.Command("go", append([]string{"list"}, args...)...).Output()
		if err != nil {
			t.Fatalf("go list %v: %v", args, err)
		}
		m := map[string]bool{}
		for _, p := range strings.Fields(string(out)) {
			if strings.HasPrefix(p, "cafgate/") {
				m[p] = true
			}
		}
		return m
	}
	here := list("-deps", "-test", "cafgate/integration")
	for p := range list("-deps", "cafgate/cmd/cafgate") {
		if p != "cafgate/cmd/cafgate" && !here[p] {
			t.Errorf("cmd/cafgate uses %s, which integration/deps_test.go does not import", p)
		}
	}
}
