#!/usr/bin/env bash
# Acceptance benchmark: cafgate's SMTP submission against a private Postfix, both with STARTTLS + AUTH
# PLAIN and a durable commit (fsync) before "250". See README.md beside this file.
#
#   integration/bench/run.sh [-quick] [-duration 15s] [-repeat 3] [-sizes "10KiB 1MiB"] [-conns "1 10 100"]
#                            [-out DIR] [-cafgate BIN] [-mailbox-test BIN] [-no-plain] [-no-ceiling] [-keep]
#
#   -quick       3s per run, one repeat, a short commit-ceiling benchmark (a smoke test, not figures to quote)
#   -duration    measuring time of every run (default 15s)
#   -repeat N    run every cell N times, alternating which server goes first; the table shows the median
#                and the range (default 3)
#   -out DIR     raw results (default /tmp/cafgate-bench-DATE); also $OUT
#   -cafgate BIN use this cafgate binary instead of building ./cmd/cafgate
#   -mailbox-test BIN  use this `go test -c ./mailbox/` binary for the commit ceiling
#   -no-plain    skip the extra Postfix runs without TLS/AUTH
#   -no-ceiling  skip `go test -bench BenchmarkCommitCeiling ./mailbox/`
#   -keep        keep the work directory (cafgate store, Postfix queue) for inspection
#
# Needs root (Postfix is installed if missing and run as a private instance; the system Postfix is never
# started). cafgate is measured if `go build ./cmd/cafgate` succeeds; otherwise only Postfix is.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$ROOT/integration/bench
DURATION=15s
REPEAT=3
BENCHTIME=1s
SIZES="10KiB 1MiB"
CONNS="1 10 100"
OUT=${OUT:-/tmp/cafgate-bench-$(date +%Y%m%d-%H%M%S)}
PLAIN=1
CEILING=1
KEEP=0
CAFGATE_BIN=
MAILBOX_TEST=
while [ $# -gt 0 ]; do
	case $1 in
	-quick) DURATION=3s REPEAT=1 ;;
	-repeat) REPEAT=$2; shift ;;
	-duration) DURATION=$2; shift ;;
	-sizes) SIZES=$2; shift ;;
	-conns) CONNS=$2; shift ;;
	-out) OUT=$2; shift ;;
	-cafgate) CAFGATE_BIN=$2; shift ;;
	-mailbox-test) MAILBOX_TEST=$2; shift ;;
	-no-plain) PLAIN=0 ;;
	-no-ceiling) CEILING=0 ;;
	-keep) KEEP=1 ;;
	*) sed -n '2,20p' "$0" >&2; exit 2 ;;
	esac
	shift
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/cafgate-bench-work.XXXX)
chmod 711 "$WORK" # Postfix's daemons run as user postfix and must reach WORK/postfix
CAFGATE_PID=
log() { echo "[bench $(date +%T)] $*" >&2; }

cleanup() {
	if [ -n "$CAFGATE_PID" ] && kill -0 "$CAFGATE_PID" 2>/dev/null; then
		kill "$CAFGATE_PID" 2>/dev/null || true
		for _ in $(seq 1 50); do kill -0 "$CAFGATE_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$CAFGATE_PID" 2>/dev/null || true
	fi
	"$BENCH/postfix.sh" stop "$WORK/postfix" || true
	if [ "$KEEP" = 1 ]; then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# json_field FILE KEY: a top-level string field of the one-line-per-field JSON postfix.sh writes.
json_field() { sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -1; }

cd "$ROOT"
log "building the load tool"
mkdir -p "$WORK/bin"
go build -o "$WORK/bin/load" ./integration/load
HAVE_CAFGATE=0
if [ -n "$CAFGATE_BIN" ]; then
	cp "$CAFGATE_BIN" "$WORK/bin/cafgate"
	HAVE_CAFGATE=1
elif go build -o "$WORK/bin/cafgate" ./cmd/cafgate 2>"$OUT/cafgate-build.log"; then
	HAVE_CAFGATE=1
else
	log "cafgate does not build (see $OUT/cafgate-build.log): measuring Postfix only"
fi

log "starting a private Postfix"
"$BENCH/postfix.sh" install
PF_JSON=$("$BENCH/postfix.sh" start "$WORK/postfix")
"$BENCH/postfix.sh" verify-fsync "$WORK/postfix" "$WORK/bin/load" | tee "$OUT/postfix-fsync.txt" >&2
"$BENCH/postfix.sh" purge "$WORK/postfix"
postconf -c "$WORK/postfix/etc" -n >"$OUT/postfix-main.cf"
postconf -c "$WORK/postfix/etc" mail_version >>"$OUT/postfix-main.cf"
PF_TLS=$(json_field "$PF_JSON" tls)
PF_PLAIN=$(json_field "$PF_JSON" plain)
PF_CA=$(json_field "$PF_JSON" ca_cert)
PF_FROM=$(json_field "$PF_JSON" from)
PF_TO=$(json_field "$PF_JSON" to)
PF_AUTH="$(json_field "$PF_JSON" user):$(json_field "$PF_JSON" password)"

if [ "$HAVE_CAFGATE" = 1 ]; then
	log "starting cafgate dev"
	"$WORK/bin/cafgate" dev --dir "$WORK/dev" --ports auto >"$OUT/cafgate.log" 2>&1 &
	CAFGATE_PID=$!
	for _ in $(seq 1 1200); do
		[ -s "$WORK/dev/dev.json" ] && break
		kill -0 "$CAFGATE_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -s "$WORK/dev/dev.json" ]; then
		"$WORK/bin/cafgate" version >"$OUT/cafgate-version.txt" 2>&1 || true
		# Postfix's queue is held (static:HOLD): hold cafgate's delivery too, so that no sealing or
		# queueing competes with acceptance. Accepted mail stays pending in the store.
		"$WORK/bin/cafgate" queue pause --reason "acceptance benchmark" --config "$WORK/dev/cafgate.toml" >&2 ||
			log "could not pause cafgate's delivery: its pipeline runs during the measurements"
		# dev.json may come before every part is ready: wait until one message is accepted. Gently: a
		# probe costs up to two failed sign-ins and cafgate blocks an address after 10 within 15 minutes.
		for _ in 1 2 3 4; do
			sleep 3
			"$WORK/bin/load" -dev "$WORK/dev/dev.json" -messages 1 >"$OUT/cafgate-probe.txt" 2>&1 && break
		done
		"$BENCH/cafgate-fsync.sh" "$CAFGATE_PID" "$WORK/dev/dev.json" "$WORK/bin/load" | tee "$OUT/cafgate-fsync.txt" >&2 ||
			log "could not verify cafgate's fsync before 250 (see $OUT/cafgate-fsync.txt)"
	else
		log "cafgate dev wrote no dev.json (see $OUT/cafgate.log): measuring Postfix only"
		HAVE_CAFGATE=0
	fi
fi

# cpu_ticks PID: CPU time (clock ticks) used by PID and all its descendants, including reaped children
# (utime + stime + cutime + cstime from /proc/PID/stat, read after the ")" that ends the command name).
cpu_ticks() {
	local total=0 p rest
	for p in $1 $(pgrep -P "$1" 2>/dev/null); do
		rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
		total=$((total + $(awk '{print $12 + $13 + $14 + $15}' <<<"$rest")))
	done
	echo "$total"
}

server_pid() {
	case $1 in
	cafgate) echo "$CAFGATE_PID" ;;
	*) head -1 "$WORK/postfix/spool/pid/master.pid" | tr -d ' ' ;;
	esac
}

# one SERVER SIZE CONNS REPEAT ARGS...: a measured run, raw JSON in $OUT/SERVER-SIZE-cCONNS-rREPEAT.json
# and the server's CPU seconds during it in the .cpu file beside it
one() {
	local server=$1 size=$2 conns=$3 rep=$4 f pid t0 t1
	shift 4
	f="$OUT/$server-$size-c$conns-r$rep.json"
	sync # the previous run's writes must not land in this one's window
	pid=$(server_pid "$server")
	t0=$(cpu_ticks "$pid")
	# at most 20 sessions per source address: cafgate's default max_sessions_per_ip
	"$WORK/bin/load" -label "$server" -size "$size" -conns "$conns" -sources $(((conns + 19) / 20)) \
		-duration "$DURATION" -json "$@" >"$f" || true
	t1=$(cpu_ticks "$pid")
	awk -v d=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f\n", d / hz }' >"${f%.json}.cpu"
	log "$server $size x$conns #$rep: $(sed -n 's/.*"rate_msgs_per_s":\([0-9]*\).*/\1/p' "$f") msg/s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

run_postfix() {
	LOAD_AUTH=$PF_AUTH one postfix "$@" -addr "$PF_TLS" -starttls -ca "$PF_CA" -servername localhost -from "$PF_FROM" -to "$PF_TO"
	"$BENCH/postfix.sh" purge "$WORK/postfix"
	if [ "$PLAIN" = 1 ]; then
		one postfix-plain "$@" -addr "$PF_PLAIN" -from "$PF_FROM" -to "$PF_TO"
		"$BENCH/postfix.sh" purge "$WORK/postfix"
	fi
}

run_cafgate() {
	[ "$HAVE_CAFGATE" = 1 ] || return 0
	one cafgate "$@" -dev "$WORK/dev/dev.json"
}

# Cells in the same order every repeat; within a cell the server going first alternates, so neither
# always inherits the other's disk write-back.
for rep in $(seq 1 "$REPEAT"); do
	for size in $SIZES; do
		for conns in $CONNS; do
			if [ $((rep % 2)) = 1 ]; then
				run_postfix "$size" "$conns" "$rep"
				run_cafgate "$size" "$conns" "$rep"
			else
				run_cafgate "$size" "$conns" "$rep"
				run_postfix "$size" "$conns" "$rep"
			fi
		done
	done
done

if [ "$CEILING" = 1 ]; then
	log "store commit ceiling: go test -bench BenchmarkCommitCeiling ./mailbox/"
	if [ -n "$MAILBOX_TEST" ]; then
		sync
		(cd mailbox && "$MAILBOX_TEST" -test.run '^$' -test.bench 'BenchmarkCommitCeiling' -test.benchtime "$BENCHTIME" \
			-test.count "$REPEAT") >"$OUT/ceiling.txt" 2>&1 || log "the ceiling benchmark failed (see $OUT/ceiling.txt)"
	elif grep -rqs 'func BenchmarkCommitCeiling' mailbox/; then
		sync
		go test -run '^$' -bench 'BenchmarkCommitCeiling' -benchtime "$BENCHTIME" -count "$REPEAT" ./mailbox/ \
			>"$OUT/ceiling.txt" 2>&1 ||
			log "the ceiling benchmark failed (see $OUT/ceiling.txt)"
	else
		echo "BenchmarkCommitCeiling: missing (no such benchmark in mailbox/)" >"$OUT/ceiling.txt"
		log "BenchmarkCommitCeiling is missing from mailbox/"
	fi
fi

{
	echo "# cafgate acceptance benchmark $(date -u +%Y-%m-%dT%H:%MZ)"
	echo
	echo "$(nproc) cores, Linux $(uname -r), Postfix $(postconf -c "$WORK/postfix/etc" -h mail_version)," \
		"$(go env GOVERSION), $DURATION per run, median of $REPEAT (range in brackets);" \
		"load average before $LOADAVG_START, after $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	go run ./integration/bench/report -out "$OUT"
} | tee "$OUT/report.md"
log "raw results in $OUT"
