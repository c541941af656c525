#!/bin/sh
# The whole test suite, as `make test` and CI run it on a fresh Debian 12 machine with Go:
# installs the real peers that are missing, checks formatting and vet, then runs every test with -race.
set -eu
cd "$(dirname "$0")/.."

need=""
command -v swaks >/dev/null 2>&1 || need="$need swaks"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v gpgsm >/dev/null 2>&1 || need="$need gpgsm"
command -v python3 >/dev/null 2>&1 || need="$need python3"
command -v sqlite3 >/dev/null 2>&1 || need="$need sqlite3"
# OpenLDAP for the directory tests (Debian puts slapd in /usr/sbin).
{ command -v slapd || [ -x /usr/sbin/slapd ]; } >/dev/null 2>&1 || need="$need slapd"
command -v ldapsearch >/dev/null 2>&1 || need="$need ldap-utils"
# Headless Chromium drives the pickup page; curl checks its headers.
command -v chromium >/dev/null 2>&1 || need="$need chromium"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v testssl >/dev/null 2>&1 || need="$need testssl.sh" # TLS checks of the HTTPS listener (TestPickupTLSWithTestssl)
# Postfix as the real receiving MTA of the relay tests (a private instance on a loopback port).
{ command -v postfix || [ -x /usr/sbin/postfix ]; } >/dev/null 2>&1 || need="$need postfix"
if [ -n "$need" ]; then
	echo "ci: installing$need"
	SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need
fi

echo "ci: gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed on:"; echo "$bad"; exit 1; fi

echo "ci: go vet"
go vet ./...

export CAFGATE_REQUIRE_CHROMIUM=1 # the browser tests fail rather than skip when chromium is missing
echo "ci: go test -race (unit, fuzz seeds, integration against the built binary)"
# The Chromium tests run in their own step without the race detector: chromedp, the test-only
# DevTools driver, has data races of its own between a tab's event loop and the actions run on it
# (chromedp/chromedp#1638 and kin), which -race reports as a failure of whichever test is running.
# The pickup server those tests drive is also exercised under -race by TestPickup* over urllib/curl.
browser='^TestPickupInBrowser' # every Chromium test is named TestPickupInBrowser*
go test -race -shuffle=on -timeout 20m -skip "$browser" ./...
echo "ci: go test (headless Chromium against the pickup page)"
go test -shuffle=on -timeout 10m -run "$browser" ./integration/
echo "ci: all passed"
