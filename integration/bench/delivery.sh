#!/usr/bin/env bash
# Delivery benchmark (issue #7): packages per second from SMTP acceptance to the relay sink's 250, and the
# queue drain rate after a backlog, cafgate (S/MIME: every copy signed and encrypted to its recipient)
# against a private Postfix relaying the same messages unencrypted to the same sink. See README.md.
#
#   integration/bench/delivery.sh [-sizes "4KiB 10KiB 1MiB"] [-messages "4KiB=2000 10KiB=2000 1MiB=400"]
#                                 [-backlog 10000] [-warmup 500] [-conns 10] [-out DIR] [-cafgate BIN] [-keep] [-quick]
#
#   -messages    packages per end-to-end run, by size (each to 3 recipients)
#   -backlog N   packages (10 KiB) submitted while delivery is held, then released and timed; 0 skips it
#   -warmup N    packages (4 KiB) through each server to the sink before its first timed run; 0 skips it
#   -conns N     submission connections (default 10)
#   -quick       5 packages per size and a backlog of 5: a functional check of the script, not figures
#
# Needs root (a private Postfix on loopback). Nothing listens outside 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/integration/bench
SIZES="4KiB 10KiB 1MiB"
MESSAGES="4KiB=2000 10KiB=2000 1MiB=400"
BACKLOG=10000
WARMUP=500
CONNS=10
OUT=${OUT:-/tmp/cafgate-delivery-$(date +%Y%m%d-%H%M%S)}
KEEP=0
CAFGATE_BIN=
TIMEOUT=30m
while [ $# -gt 0 ]; do
	case $1 in
	-sizes) SIZES=$2; shift ;;
	-messages) MESSAGES=$2; shift ;;
	-backlog) BACKLOG=$2; shift ;;
	-warmup) WARMUP=$2; shift ;;
	-conns) CONNS=$2; shift ;;
	-out) OUT=$2; shift ;;
	-cafgate) CAFGATE_BIN=$2; shift ;;
	-keep) KEEP=1 ;;
	-quick) MESSAGES="4KiB=5 10KiB=5 1MiB=5" BACKLOG=5 WARMUP=5 TIMEOUT=3m ;;
	*) sed -n '2,16p' "$0" >&2; exit 2 ;;
	esac
	shift
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/cafgate-delivery-work.XXXX)
chmod 711 "$WORK"
CAFGATE_PID=
SINK_PID=
log() { echo "[delivery $(date +%T)] $*" >&2; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

stop_cafgate() {
	if [ -n "$CAFGATE_PID" ] && kill -0 "$CAFGATE_PID" 2>/dev/null; then
		kill "$CAFGATE_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do kill -0 "$CAFGATE_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$CAFGATE_PID" 2>/dev/null || true
	fi
	CAFGATE_PID=
}
cleanup() {
	stop_cafgate
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
	"$BENCH/postfix.sh" stop "$WORK/postfix" || true
	if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

json_field() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -1; }
num_field() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$1" | head -1; }
now() { date +%s.%N; }
# cpu_ticks PID: CPU clock ticks of PID and its children, reaped ones included (as in run.sh)
cpu_ticks() {
	local total=0 p rest
	for p in $1 $(pgrep -P "$1" 2>/dev/null); do
		rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		total=$((total + $(awk '{print $12 + $13 + $14 + $15}' <<<"$rest")))
	done
	echo "$total"
}
server_pid() { if [ "$1" = cafgate ]; then echo "$CAFGATE_PID"; else head -1 "$WORK/postfix/spool/pid/master.pid" | tr -d ' '; fi; }
# cpu_mark SERVER: remember the server's CPU ticks now; cpu_since SERVER: seconds of CPU since the mark
cpu_mark() { CPU0=$(cpu_ticks "$(server_pid "$1")"); }
cpu_since() { awk -v d=$(($(cpu_ticks "$(server_pid "$1")") - CPU0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", d / hz }'; }
count_for() { # count_for SIZE: packages per run for SIZE from $MESSAGES
	local kv
	for kv in $MESSAGES; do [ "${kv%%=*}" = "$1" ] && { echo "${kv#*=}"; return; }; done
	echo 1000
}

cd "$ROOT"
log "building the load tool, the sink and cafgate"
mkdir -p "$WORK/bin"
go build -o "$WORK/bin/load" ./integration/load
go build -o "$WORK/bin/sink" ./integration/bench/sink
if [ -n "$CAFGATE_BIN" ]; then cp "$CAFGATE_BIN" "$WORK/bin/cafgate"; else go build -o "$WORK/bin/cafgate" ./cmd/cafgate; fi
CG=$WORK/bin/cafgate

# One sink address for the whole run; a new sink process per measurement, on the same port.
SINK_ADDR=127.0.0.1:$((20000 + RANDOM % 40000))
# start_sink NAME: a sink that exits once the number of recipients written to $WORK/expect later is
# delivered; its JSON in $OUT/NAME.sink.json
start_sink() {
	rm -f "$WORK/sink.ready" "$WORK/expect"
	"$WORK/bin/sink" -addr "$SINK_ADDR" -ready "$WORK/sink.ready" -expect-file "$WORK/expect" -timeout "$TIMEOUT" \
		>"$OUT/$1.sink.json" 2>"$OUT/$1.sink.err" &
	SINK_PID=$!
	for _ in $(seq 1 100); do [ -s "$WORK/sink.ready" ] && return 0; sleep 0.05; done
	log "the sink did not start (see $OUT/$1.sink.err)"; exit 1
}
wait_sink() { wait "$SINK_PID" || log "sink: $(cat "$OUT/$1.sink.err")"; SINK_PID=; }
# expect_from LOADJSON: every accepted package's 3 recipients are expected at the sink
expect_from() {
	local acc
	acc=$(num_field "$1" accepted)
	echo $((3 * ${acc:-0})) >"$WORK/expect.tmp"
	mv "$WORK/expect.tmp" "$WORK/expect"
	[ "${acc:-0}" -gt 0 ] || { log "nothing accepted (see $1)"; kill "$SINK_PID" 2>/dev/null || true; }
}
# pf_reload: postfix reload, then wait until the restarted smtpd answers again
pf_reload() {
	postfix -c "$PFC" reload >/dev/null 2>&1
	sleep 2
}

# --- Postfix: the private instance of the acceptance benchmark, here relaying to the sink ---
log "starting a private Postfix"
"$BENCH/postfix.sh" install
PF_JSON=$("$BENCH/postfix.sh" start "$WORK/postfix")
PF_PLAIN=$(json_field "$PF_JSON" plain)
PFC=$WORK/postfix/etc
# Relay everything to the sink, plain text (the sink has no TLS); the acceptance benchmark's HOLD is
# switched on only while the backlog is built.
postconf -c "$PFC" -e "relayhost = [127.0.0.1]:${SINK_ADDR##*:}" "smtp_tls_security_level = none" \
	"smtpd_data_restrictions =" "smtp_helo_name = bench.localhost"
pf_reload
postconf -c "$PFC" -n >"$OUT/postfix-main.cf"
postconf -c "$PFC" mail_version default_destination_concurrency_limit smtp_destination_recipient_limit >>"$OUT/postfix-main.cf"

# --- cafgate: the development setup, then served with hosted mailboxes off and one route to the sink ---
log "setting up cafgate dev"
"$CG" dev --dir "$WORK/dev" --ports auto >"$OUT/cafgate-dev.log" 2>&1 &
CAFGATE_PID=$!
for _ in $(seq 1 1200); do [ -s "$WORK/dev/dev.json" ] && break; kill -0 "$CAFGATE_PID" 2>/dev/null || break; sleep 0.1; done
[ -s "$WORK/dev/dev.json" ] || { log "cafgate dev wrote no dev.json (see $OUT/cafgate-dev.log)"; exit 1; }
stop_cafgate
python3 - "$WORK/dev/cafgate.toml" "$WORK/dev/bench.toml" "$SINK_ADDR" <<'PY'
import re, sys
src, dst, sink = sys.argv[1:]
conf = open(src).read()
# hosted mailboxes off: every copy goes out through the relay
conf = re.sub(r'(?m)^hosted_domains = \[.*\]$', 'hosted_domains = []', conf)
conf += f'''
[relay]
poll_interval = "1s"

# Every domain to the benchmark sink, plain text (loopback only). 20 connections, as Postfix's
# default_destination_concurrency_limit.
[[relay.route]]
domains = ["*"]
smart_host = "{sink}"
tls = "none"
max_connections = 20
'''
open(dst, 'w').write(conf)
PY
chmod 600 "$WORK/dev/bench.toml"
BCONF=$WORK/dev/bench.toml
"$CG" serve --config "$BCONF" >"$OUT/cafgate.log" 2>&1 &
CAFGATE_PID=$!
SUB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listen"]["submission"])' "$WORK/dev/dev.json")
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/${SUB%:*}/${SUB##*:}") 2>/dev/null && break; sleep 0.1; done
"$CG" version >"$OUT/cafgate-version.txt" 2>&1 || true

# Postfix gets the same three recipients' domains (3 destinations; relayhost sends all to the sink).
PF_TO=rcpt1@socialcare.bench.invalid,rcpt2@health.bench.invalid,rcpt3@police.bench.invalid
PF_FROM=bench@bench.invalid

# e2e SERVER SIZE N: submit N packages (3 recipients each) over $CONNS connections; the clock runs from
# the first connection's start to the sink's last 250.
e2e() {
	local server=$1 size=$2 n=$3 name t0 f
	name=$server-e2e-$size
	f=$OUT/$name.load.json
	start_sink "$name"
	sync
	cpu_mark "$server"
	t0=$(now)
	if [ "$server" = cafgate ]; then
		"$WORK/bin/load" -dev "$WORK/dev/dev.json" -rcpts 3 -size "$size" -conns "$CONNS" -messages "$n" -json -label "$name" >"$f" || true
	else
		"$WORK/bin/load" -addr "$PF_PLAIN" -from "$PF_FROM" -to "$PF_TO" -size "$size" -conns "$CONNS" -messages "$n" -json -label "$name" >"$f" || true
	fi
	expect_from "$f"
	wait_sink "$name"
	report "$name" "$t0" "$(num_field "$f" accepted)" "$(cpu_since "$server")"
}

# warmup SERVER: $WARMUP packages of 4 KiB through SERVER to the sink, untimed, so that neither server's
# first timed run pays for its start (Postfix spawning its smtpd, cleanup and smtp processes; cafgate
# filling its caches and growing its heap); then a pause for the reports and log writes they leave.
warmup() {
	local server=$1 name=$1-warmup f
	[ "$WARMUP" -gt 0 ] || return 0
	f=$OUT/$name.load.json
	start_sink "$name"
	if [ "$server" = cafgate ]; then
		"$WORK/bin/load" -dev "$WORK/dev/dev.json" -rcpts 3 -size 4KiB -conns "$CONNS" -messages "$WARMUP" -json -label "$name" >"$f" || true
	else
		"$WORK/bin/load" -addr "$PF_PLAIN" -from "$PF_FROM" -to "$PF_TO" -size 4KiB -conns "$CONNS" -messages "$WARMUP" -json -label "$name" >"$f" || true
	fi
	expect_from "$f"
	wait_sink "$name"
	sleep 3
	log "$name: $(num_field "$f" accepted) packages through $server before anything is timed"
}

# backlog SERVER N: hold delivery, submit N 10 KiB packages, release, time from release to the last 250.
backlog() {
	local server=$1 n=$2 name=$1-backlog t0
	f=$OUT/$name.load.json
	if [ "$server" = cafgate ]; then
		"$CG" queue pause --reason "delivery benchmark backlog" --config "$BCONF" >/dev/null
		"$WORK/bin/load" -dev "$WORK/dev/dev.json" -rcpts 3 -size 10KiB -conns "$CONNS" -messages "$n" -json -label "$name" >"$f" || true
	else
		postconf -c "$PFC" -e "smtpd_data_restrictions = check_client_access static:HOLD"
		pf_reload
		"$WORK/bin/load" -addr "$PF_PLAIN" -from "$PF_FROM" -to "$PF_TO" -size 10KiB -conns "$CONNS" -messages "$n" -json -label "$name" >"$f" || true
		postconf -c "$PFC" -e "smtpd_data_restrictions ="
		pf_reload
	fi
	start_sink "$name"
	expect_from "$f"
	sync
	cpu_mark "$server"
	t0=$(now)
	if [ "$server" = cafgate ]; then
		"$CG" queue resume --config "$BCONF" >/dev/null
	else
		# -H moves held mail to the deferred queue; postqueue -f has the queue manager take it now
		postsuper -c "$PFC" -H ALL >/dev/null 2>&1
		postqueue -c "$PFC" -f
	fi
	wait_sink "$name"
	report "$name" "$t0" "$(num_field "$f" accepted)" "$(cpu_since "$server")"
}

# report NAME T0 N CPU: one line of results.tsv
report() {
	local name=$1 t0=$2 n=$3 cpu=$4 sj=$OUT/$1.sink.json last rcpts secs rate acc
	last=$(num_field "$sj" last)
	rcpts=$(num_field "$sj" recipients)
	secs=$(awk -v a="$t0" -v b="${last:-0}" 'BEGIN { printf "%.2f", b - a }')
	rate=$(awk -v n="$n" -v s="$secs" -v r="${rcpts:-0}" 'BEGIN { if (s > 0 && r >= 3 * n) printf "%.1f", n / s; else print "incomplete" }')
	acc=$(num_field "$OUT/$name.load.json" rate_msgs_per_s)
	acc=$(awk -v a="${acc:-0}" 'BEGIN { printf "%.0f", a }')
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$n" "${rcpts:-0}" "$secs" "$rate" "$acc" "$cpu" "$(loadavg)" >>"$OUT/results.tsv"
	log "$name: $n packages, ${rcpts:-0} recipients at the sink in ${secs}s: $rate packages/s (acceptance $acc msg/s; server CPU ${cpu}s; load average $(loadavg))"
}

printf 'run\tpackages\trecipients_at_sink\tseconds\tpackages_per_s\tacceptance_msg_per_s\tserver_cpu_s\tload_average\n' >"$OUT/results.tsv"
echo "load average before: $(loadavg)" >"$OUT/loadavg.txt"
warmup postfix
warmup cafgate
for size in $SIZES; do
	n=$(count_for "$size")
	e2e postfix "$size" "$n"
	e2e cafgate "$size" "$n"
done
if [ "$BACKLOG" -gt 0 ]; then
	backlog postfix "$BACKLOG"
	backlog cafgate "$BACKLOG"
fi
echo "load average after: $(loadavg)" >>"$OUT/loadavg.txt"
grep -c 'event=encrypted' "$OUT/cafgate.log" >"$OUT/cafgate-encrypted-count.txt" || true
column -t -s $'\t' "$OUT/results.tsv" | tee "$OUT/report.txt"
log "raw results in $OUT"
