#!/usr/bin/env bash
# A private Postfix instance for the acceptance benchmark's baseline.
#
#   postfix.sh install          install postfix + sasl2-bin if missing (never starts the system postfix)
#   postfix.sh start DIR        configure and start an instance under DIR; writes DIR/postfix.json
#   postfix.sh verify-fsync DIR send one message under strace; show cleanup's fsync precedes smtpd's 250
#   postfix.sh purge DIR        delete every queued message (the hold queue grows during a run)
#   postfix.sh stop DIR         stop the instance
#
# The instance has its own config_directory (DIR/etc), queue_directory (DIR/spool) and data_directory
# (DIR/data) and listens only on two loopback ports, never on port 25:
#   plain: smtpd without TLS or AUTH (mynetworks = 127.0.0.0/8 may relay)
#   tls:   smtpd with STARTTLS required (self-signed CA in DIR/tls/ca.pem) and AUTH PLAIN (Cyrus sasldb),
#          the same protocol steps cafgate's submission port demands.
#
# What is measured: every message is accepted by smtpd, written by cleanup into a queue file, fsync()ed
# (src/global/mail_stream.c, mail_stream_finish_file: fflush, fchmod, fsync, unconditionally), and only
# then does smtpd send "250 2.0.0 Ok: queued". A client access rule "static:HOLD" sends every message to
# the hold queue, so the queue manager never picks it up: no delivery, no bounce, no extra disk work
# competes with acceptance. (A discard transport would add qmgr + discard + unlink per message;
# defer_transports would add qmgr moves and a growing deferred queue.) in_flow_delay is 0 because
# Postfix's arrival flow control refills its tokens only when mail is delivered, which never happens
# here: left at 1s it would throttle smtpd to an artificial rate.
set -euo pipefail

die() { echo "postfix.sh: $*" >&2; exit 1; }

install_postfix() {
	local need=()
	command -v postfix >/dev/null 2>&1 || need+=(postfix)
	command -v saslpasswd2 >/dev/null 2>&1 || need+=(sasl2-bin)
	command -v strace >/dev/null 2>&1 || need+=(strace)
	command -v openssl >/dev/null 2>&1 || need+=(openssl)
	[ ${#need[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || die "need root to apt-get install ${need[*]}"
	# "No configuration": the package writes no /etc/postfix/main.cf, so the system postfix has nothing
	# to run and its init script does not start it. policy-rc.d, if present, also blocks the start.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

# free_port prints a loopback TCP port nobody listens on.
free_port() {
	local p
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

make_tls() {
	local d=$1/tls
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=bench private CA" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/ext.cnf"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
	chmod 600 "$d"/*.key
}

make_sasl() {
	local dir=$1 user=$2 pass=$3
	# Debian's smtpd reads $config_directory/sasl/smtpd.conf whatever cyrus_sasl_config_path says
	# (the database lives outside etc/, which postfix wants owned by root, and is readable by postfix only)
	local sd=$dir/etc/sasl db=$dir/sasldb
	mkdir -p "$sd" "$db"
	cat >"$sd/smtpd.conf" <<EOF
pwcheck_method: auxprop
auxprop_plugin: sasldb
mech_list: PLAIN
sasldb_path: $db/sasldb2
EOF
	# the realm is part of the sasldb key; "-u bench.invalid" with the full address as user name
	printf '%s' "$pass" | saslpasswd2 -p -c -f "$db/sasldb2" -u bench.invalid "$user"
	chown -R postfix "$db"
	chmod 700 "$db"
	chmod 600 "$db/sasldb2"
}

write_main_cf() {
	local dir=$1
	cat >"$dir/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $dir/spool
data_directory = $dir/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
syslog_name = postfix-bench

myhostname = bench.localhost
mydomain = localhost
myorigin = \$myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
biff = no
smtpd_peername_lookup = no

smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit
smtpd_data_restrictions = check_client_access static:HOLD
in_flow_delay = 0
message_size_limit = 52428800
default_process_limit = 300
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0

smtpd_tls_cert_file = $dir/tls/server.pem
smtpd_tls_key_file = $dir/tls/server.key
smtpd_tls_security_level = none
smtpd_tls_session_cache_database =
smtpd_sasl_type = cyrus
smtpd_sasl_path = smtpd
cyrus_sasl_config_path = $dir/etc/sasl
smtpd_sasl_auth_enable = no
smtpd_tls_auth_only = yes
EOF
}

write_master_cf() {
	local dir=$1 plain=$2 tls=$3
	cat >"$dir/etc/master.cf" <<EOF
# service            type  private unpriv chroot wakeup maxproc command
127.0.0.1:$plain     inet  n       -      n      -      250     smtpd
127.0.0.1:$tls       inet  n       -      n      -      250     smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
cleanup              unix  n       -      n      -      0       cleanup
pickup               unix  n       -      n      60     1       pickup
qmgr                 unix  n       -      n      300    1       qmgr
tlsmgr               unix  -       -      n      1000?  1       tlsmgr
rewrite              unix  -       -      n      -      -       trivial-rewrite
bounce               unix  -       -      n      -      0       bounce
defer                unix  -       -      n      -      0       bounce
trace                unix  -       -      n      -      0       bounce
verify               unix  -       -      n      -      1       verify
flush                unix  n       -      n      1000?  0       flush
proxymap             unix  -       -      n      -      -       proxymap
smtp                 unix  -       -      n      -      -       smtp
showq                unix  n       -      n      -      -       showq
error                unix  -       -      n      -      -       error
retry                unix  -       -      n      -      -       error
discard              unix  -       -      n      -      -       discard
anvil                unix  -       -      n      -      1       anvil
scache               unix  -       -      n      -      1       scache
postlog              unix-dgram n  -      n      -      1       postlogd
EOF
}

start_instance() {
	local dir=$1
	[ "$(id -u)" -eq 0 ] || die "postfix must be started as root"
	install_postfix
	mkdir -p "$dir/etc" "$dir/spool" "$dir/data"
	dir=$(cd "$dir" && pwd)
	chmod 755 "$dir" # postfix daemons (user postfix) must reach their directories
	chown postfix "$dir/data"
	runuser -u postfix -- test -w "$dir/data" ||
		die "user postfix cannot reach $dir/data: every parent directory must be searchable (chmod o+x)"
	local plain tls user pass
	plain=$(free_port)
	tls=$(free_port)
	[ "$plain" != "$tls" ] || tls=$(free_port)
	user=bench@bench.invalid
	pass=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	make_tls "$dir"
	make_sasl "$dir" "$user" "$pass"
	write_main_cf "$dir"
	write_master_cf "$dir" "$plain" "$tls"
	# postfix(1) logs to stderr only on a terminal: on failure rerun under script(1) to show why
	postfix -c "$dir/etc" check || { script -qc "postfix -c '$dir/etc' check" /dev/null >&2; die "check failed"; }
	postfix -c "$dir/etc" start >/dev/null 2>&1 ||
		{ tail -20 "$dir/maillog" >&2 2>/dev/null; script -qc "postfix -c '$dir/etc' start" /dev/null >&2; die "start failed"; }
	wait_port "$plain"
	wait_port "$tls"
	cat >"$dir/postfix.json" <<EOF
{"plain":"127.0.0.1:$plain","tls":"127.0.0.1:$tls","ca_cert":"$dir/tls/ca.pem","hostname":"localhost",
 "user":"$user","password":"$pass","from":"$user","to":"rcpt@dest.invalid",
 "config_directory":"$dir/etc","queue_directory":"$dir/spool","maillog":"$dir/maillog"}
EOF
	echo "$dir/postfix.json"
}

wait_port() {
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	die "nothing listens on 127.0.0.1:$1"
}

stop_instance() {
	local dir=$1
	[ -f "$dir/etc/main.cf" ] || return 0
	postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
}

purge_queue() {
	postsuper -c "$1/etc" -d ALL >/dev/null 2>&1 || true
}

# verify_fsync traces the master and every child (and children forked later) while one message goes
# through the plain port, then checks that a cleanup process fsync()ed before an smtpd wrote "250".
verify_fsync() {
	local dir=$1 load=${2:-} master trace addr pids
	trace=$dir/fsync.strace
	master=$(head -1 "$dir/spool/pid/master.pid" | tr -d ' ')
	addr=$(sed -n 's/.*"plain":"\([^"]*\)".*/\1/p' "$dir/postfix.json")
	pids=(-p "$master")
	for p in $(pgrep -P "$master"); do pids+=(-p "$p"); done
	# strace must not keep our stdout open (a pipe reader would wait for ever) and must die with us
	strace -f -tt -e trace=openat,fsync,fdatasync,write -e signal=none -s 40 -o "$trace" "${pids[@]}" >/dev/null 2>&1 &
	local st=$!
	# shellcheck disable=SC2064 # expand $st now: it is local to this function
	trap "kill $st 2>/dev/null || true" EXIT
	sleep 1
	if [ -n "$load" ]; then
		"$load" -addr "$addr" -from bench@bench.invalid -to rcpt@dest.invalid -size 10KiB -messages 1 >/dev/null
	else
		smtp_one "$addr"
	fi
	sleep 0.5
	kill "$st"
	wait "$st" 2>/dev/null || true
	local fs ok
	# "PID TIME fsync(FD) = 0", joining strace's "<unfinished ...>" / "<... fsync resumed>" halves
	fs=$(awk '/fsync\(/ && / = 0$/ { print; exit }
		/fsync\(/ && /unfinished/ { match($0, /fsync\([0-9]+/); open[$1] = substr($0, RSTART, RLENGTH) }
		/<\.\.\. fsync resumed>/ && / = 0$/ && ($1 in open) { print $1, $2, open[$1] ") = 0 (completed)"; exit }' "$trace")
	ok=$(grep -E 'write\([0-9]+, "250 2\.0\.0 Ok: queued' "$trace" | head -1 || true)
	[ -n "$fs" ] || die "no fsync seen in $trace"
	[ -n "$ok" ] || die "no 250 queued reply seen in $trace"
	local tfs tok pid fd file
	tfs=$(awk '{print $2}' <<<"$fs")
	tok=$(awk '{print $2}' <<<"$ok")
	pid=$(awk '{print $1}' <<<"$fs")
	fd=$(sed -n 's/.*fsync(\([0-9]*\).*/\1/p' <<<"$fs")
	# the file that fd was opened on: the last openat by that process returning that fd
	file=$(awk -v p="$pid" -v fd="$fd" '$1 == p && /openat\(/ && $NF == fd { f = $0 } END { print f }' "$trace" |
		sed -n 's/.*openat([^"]*"\([^"]*\)".*/\1/p')
	echo "fsync  : $fs"
	echo "         by $(grep -o "[a-z]*\[$pid\]" "$dir/maillog" | head -1) on ${file:-?}"
	echo "250    : $ok"
	if [[ "$tfs" < "$tok" ]]; then
		echo "verified: cleanup fsync ($tfs) precedes smtpd 250 ($tok)"
	else
		die "fsync at $tfs is not before 250 at $tok"
	fi
}

# smtp_one sends one small message with bash's /dev/tcp, for when no load tool is at hand.
smtp_one() {
	local host=${1%:*} port=${1##*:}
	exec 3<>"/dev/tcp/$host/$port"
	local line
	read -r line <&3
	for cmd in "EHLO localhost" "MAIL FROM:<bench@bench.invalid>" "RCPT TO:<rcpt@dest.invalid>" "DATA"; do
		printf '%s\r\n' "$cmd" >&3
		while read -r line <&3; do [[ "$line" =~ ^[0-9]{3}- ]] || break; done
	done
	printf 'Subject: fsync check\r\nMessage-ID: <fsync-check@bench.invalid>\r\n\r\nhello\r\n.\r\nQUIT\r\n' >&3
	cat <&3 >/dev/null
	exec 3<&-
}

case "${1:-}" in
install) install_postfix ;;
start) start_instance "${2:?DIR}" ;;
stop) stop_instance "${2:?DIR}" ;;
purge) purge_queue "${2:?DIR}" ;;
verify-fsync) verify_fsync "${2:?DIR}" "${3:-}" ;;
*) sed -n '2,9p' "$0" >&2; exit 2 ;;
esac
