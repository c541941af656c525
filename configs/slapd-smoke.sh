#!/bin/bash
# slapd-smoke.sh: load the cafgate schema and the sample directory into a throwaway OpenLDAP slapd and
# check that they work there. A starting point for the LDAP directory work.
#
#   configs/slapd-smoke.sh [EXTRA_LDIF BIND_DN BIND_PASSWORD]
#
# Steps: build a cn=config from an LDIF with slapadd (core, cosine, inetorgperson, cafgate schema; one
# mdb database for dc=cafgate,dc=test), start slapd on 127.0.0.1, ldapadd the sample directory (and
# EXTRA_LDIF, e.g. an entry with a userPassword made by ldif.HashSSHA and a userCertificate;binary), then
#   - ldapwhoami -x binds as BIND_DN with BIND_PASSWORD (so slapd accepts the {SSHA} value) and a wrong
#     password is refused (LDAP result 49),
#   - the ORDERING rule of cafVettingValidUntil and the Boolean cafSensitiveService work in filters,
#   - EXTRA_LDIF's userCertificate;binary comes back.
# Without arguments it makes its own extra entry, hashing the password with slappasswd -h {SSHA}.
# Everything lives in a temporary directory that is removed, and slapd is stopped, on exit.
#
# Needs: apt-get install slapd ldap-utils (Debian 12: OpenLDAP 2.5). Root is not required.
# Environment: SLAPD (default /usr/sbin/slapd), SLAPD_MODULES (/usr/lib/ldap),
# SLAPD_SCHEMA_DIR (/etc/ldap/schema), SLAPD_PORT (default: a random port from 20000).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
schema="$here/cafgate.schema.ldif"
sample="$here/sample-directory.ldif"
slapd=${SLAPD:-/usr/sbin/slapd}
modules=${SLAPD_MODULES:-/usr/lib/ldap}
schemadir=${SLAPD_SCHEMA_DIR:-/etc/ldap/schema}
base="dc=cafgate,dc=test"
rootdn="cn=admin,$base"

fail() { echo "slapd-smoke: FAIL: $*" >&2; exit 1; }
step() { echo "slapd-smoke: $*"; }

for tool in "$slapd" slapadd ldapadd ldapwhoami ldapsearch; do
	command -v "$tool" >/dev/null || [ -x "$tool" ] || fail "$tool not found (apt-get install slapd ldap-utils)"
done
[ -r "$schema" ] && [ -r "$sample" ] || fail "schema or sample directory missing next to $0"

tmp=$(mktemp -d /tmp/cafgate-slapd.XXXXXX)
slapd_pid=""
cleanup() {
	if [ -n "$slapd_pid" ] && kill -0 "$slapd_pid" 2>/dev/null; then
		kill "$slapd_pid"
		for _ in $(seq 50); do kill -0 "$slapd_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$slapd_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

rootpw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

if [ $# -ge 3 ]; then
	extra=$1 binddn=$2 bindpw=$3
else
	[ $# -eq 0 ] || fail "usage: $0 [EXTRA_LDIF BIND_DN BIND_PASSWORD]"
	binddn="uid=smoke.test,ou=people,$base"
	bindpw=$(head -c 12 /dev/urandom | base64 | tr -d '/+=')
	extra="$tmp/extra.ldif"
	cat >"$extra" <<-EOF
	dn: $binddn
	objectClass: inetOrgPerson
	objectClass: cafPractitioner
	uid: smoke.test
	cn: Smoke Test
	sn: Test
	mail: smoke.test@school.cafgate.test
	cafAgency: Northfield Primary School
	cafRole: practitioner
	cafVettingValidUntil: 20991231000000Z
	userPassword: $(slappasswd -h '{SSHA}' -s "$bindpw")
	EOF
fi

step "building cn=config in $tmp"
mkdir -p "$tmp/slapd.d" "$tmp/data"
cat >"$tmp/config.ldif" <<EOF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $tmp/slapd.pid
olcArgsFile: $tmp/slapd.args

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: $modules
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file://$schemadir/core.ldif

include: file://$schemadir/cosine.ldif

include: file://$schemadir/inetorgperson.ldif

include: file://$schema

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $base
olcDbDirectory: $tmp/data
olcDbMaxSize: 104857600
olcRootDN: $rootdn
olcRootPW: $rootpw
olcDbIndex: objectClass eq
olcDbIndex: mail eq
olcAccess: {0}to attrs=userPassword by anonymous auth by self write by * none
olcAccess: {1}to * by users read by * none
EOF
slapadd -n 0 -F "$tmp/slapd.d" -l "$tmp/config.ldif" >"$tmp/slapadd.log" 2>&1 ||
	{ cat "$tmp/slapadd.log" >&2; fail "slapadd of cn=config (with the cafgate schema) failed"; }
grep -q cafPractitioner "$tmp"/slapd.d/cn=config/cn=schema/*cafgate.ldif || fail "cafgate schema not in cn=config"

port=${SLAPD_PORT:-}
for try in 1 2 3 4 5; do
	[ -n "${SLAPD_PORT:-}" ] || port=$((20000 + RANDOM % 20000))
	url="ldap://127.0.0.1:$port"
	"$slapd" -d 0 -h "$url/" -F "$tmp/slapd.d" >"$tmp/slapd.log" 2>&1 &
	slapd_pid=$!
	for _ in $(seq 50); do
		ldapsearch -x -H "$url" -b "" -s base -LLL namingContexts >/dev/null 2>&1 && break
		kill -0 "$slapd_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$slapd_pid" 2>/dev/null && break
	slapd_pid=""
	[ "$try" -lt 5 ] && [ -z "${SLAPD_PORT:-}" ] || { cat "$tmp/slapd.log" >&2; fail "slapd did not start"; }
done
step "slapd (pid $slapd_pid) listening on $url"

ldapadd -x -H "$url" -D "$rootdn" -w "$rootpw" -f "$sample" >"$tmp/add.log" 2>&1 ||
	{ cat "$tmp/add.log" >&2; fail "ldapadd of $sample failed"; }
step "loaded $(grep -c '^dn:' "$sample") entries of $(basename "$sample")"
ldapadd -x -H "$url" -D "$rootdn" -w "$rootpw" -f "$extra" >"$tmp/add.log" 2>&1 ||
	{ cat "$tmp/add.log" >&2; fail "ldapadd of $extra failed"; }
step "loaded $(basename "$extra")"

who=$(ldapwhoami -x -H "$url" -D "$binddn" -w "$bindpw" 2>&1) || fail "bind as $binddn refused: $who"
[ "$who" = "dn:$binddn" ] || fail "ldapwhoami answered $who, want dn:$binddn"
step "ldapwhoami: $who"
set +e
ldapwhoami -x -H "$url" -D "$binddn" -w "wrong-$bindpw" >/dev/null 2>&1
rc=$?
set -e
[ "$rc" -eq 49 ] || fail "bind with a wrong password gave exit $rc, want 49 (invalid credentials)"
step "wrong password refused (49)"

search() { local b=$1; shift; ldapsearch -x -H "$url" -D "$rootdn" -w "$rootpw" -b "$b" -LLL "$@"; }
lapsed=$(search "ou=people,$base" '(&(objectClass=cafPractitioner)(cafVettingValidUntil<=20250101000000Z))' 1.1 | grep '^dn:' || true)
[ "$lapsed" = "dn: uid=oliver.sample,ou=people,$base" ] || fail "ordering filter on cafVettingValidUntil found: $lapsed"
sensitive=$(search "ou=people,$base" '(cafSensitiveService=TRUE)' 1.1 | grep '^dn:' || true)
[ "$sensitive" = "dn: uid=sam.fictitious,ou=people,$base" ] || fail "cafSensitiveService=TRUE found: $sensitive"
disabled=$(search "ou=people,$base" '(cafAccountDisabled=TRUE)' 1.1 | grep '^dn:' || true)
[ "$disabled" = "dn: uid=tom.pretend,ou=people,$base" ] || fail "cafAccountDisabled=TRUE found: $disabled"
step "filters on cafVettingValidUntil (ORDERING), cafSensitiveService and cafAccountDisabled work"

if grep -qi '^userCertificate' "$extra"; then
	search "$binddn" -s base userCertificate | grep -qi '^userCertificate;binary::' ||
		fail "userCertificate;binary of $binddn did not come back"
	step "userCertificate;binary stored and returned"
fi
step "PASS"
