#!/usr/bin/env bash
# cafgate-fsync.sh PID DEV_JSON LOAD_TOOL: show that a running cafgate fsyncs before its "250".
#
# Traces every thread of PID (strace -f -yy: file descriptors shown with their paths and TCP endpoints)
# while the load tool sends one message, then checks the order: the last socket read carrying the
# message data, an fsync/fdatasync of a file, and only then the next socket write (the reply, which is
# TLS-encrypted, so it is recognised by position, not by text). Exits non-zero when the order is wrong.
set -euo pipefail
pid=${1:?PID}
dev=${2:?dev.json}
load=${3:?load tool}
trace=$(dirname "$dev")/fsync.strace

# strace must not keep our stdout open (a pipe reader would wait for ever) and must die with us
strace -f -tt -yy -e trace=read,write,fsync,fdatasync -e signal=none -s 16 -o "$trace" -p "$pid" >/dev/null 2>&1 &
st=$!
trap 'kill "$st" 2>/dev/null || true' EXIT
sleep 1
if ! "$load" -dev "$dev" -size 10KiB -messages 1 >"$trace.load" 2>&1; then
	echo "not verified: the test message was not accepted: $(cat "$trace.load")"
	exit 1
fi
sleep 0.5
kill "$st"
wait "$st" 2>/dev/null || true

# One pass over the trace in order: remember the last TCP read, the first completed fsync/fdatasync
# after it, and the first TCP write after that sync; a TCP write between the read and the sync fails.
# A sync before the first TCP read (the store's background WAL checkpointer, the ledger) is no evidence
# and is passed over.
awk '
	function tcp(s) { return s ~ /<TCP:\[/ }
	/ (read|write)\(/ && !tcp($0) { next }
	!synced && / read\(/ && / = [1-9][0-9]*$/ { lastread = $0; wrote_before = "" }
	!synced && / write\(/ && lastread != "" { wrote_before = $0 }
	!synced && lastread != "" && /(fsync|fdatasync)\(/ && / = 0$/ { sync = $0; synced = 1; next }
	!synced && lastread != "" && /(fsync|fdatasync)\(/ && /unfinished/ { pending[$1] = $0 }
	!synced && /<\.\.\. (fsync|fdatasync) resumed>/ && / = 0$/ && ($1 in pending) {
		sync = pending[$1] " ... " $2 " = 0"; synced = 1; next
	}
	synced && / write\(/ { reply = $0; exit }
	END {
		cut = 150
		if (lastread == "" || sync == "" || reply == "") { print "not verified: read/sync/write not all seen"; exit 1 }
		print "data in: " substr(lastread, 1, cut)
		print "sync   : " substr(sync, 1, cut)
		print "reply  : " substr(reply, 1, cut)
		if (wrote_before != "") { print "not verified: a socket write came before the sync: " substr(wrote_before, 1, cut); exit 1 }
		print "verified: cafgate synced a file between receiving the message and replying"
	}' "$trace"
