#!/usr/bin/env bash
# GetCreditGrade / BatchGetCreditGrades throughput and latency of credit-hub on the
# 50,000-enterprise demo, as a ratio to a hello-world tonic server (examples/
# hello_grades.rs: same contract, in-memory map) driven by the same h2load command in
# the same run. h2load counts gRPC errors (HTTP 200 + grpc-status != 0) as successes, so
# the script also checks that every response carried a body: an error is trailers-only.
#
# A third server on the same database runs with `--audit-log off`, so the same run also
# gives the audit log's cost (throughput with the log on / off).
# Each run also prints (stderr) the CPU time per call of the server it drove and, on
# PostgreSQL, of all PostgreSQL processes, and the audit writer's entries per group
# commit and busy share (from /metrics): where the audit log's cost goes.
#
# usage: bench/grade_lookup.sh sqlite|postgres [get|batch] [REQUESTS] [CLIENTS] [STREAMS] [--append]
# postgres uses a fresh database on 127.0.0.1:5432 (user postgres), dropped afterwards.
# KEEP=1 keeps the work directory (server logs, h2load output) for a post-mortem.
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}; mode=${2:-get}; n=${3:-100000}; c=${4:-16}; m=${5:-8}
append=no; [[ " $* " == *" --append "* ]] && append=yes
command -v h2load >/dev/null || { echo "h2load missing: apt-get install nghttp2-client" >&2; exit 1; }

cargo build --release --quiet --bin credit-hub --example hello_grades
bin=target/release/credit-hub; hello=target/release/examples/hello_grades
work=$(mktemp -d); pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$backend" = postgres ]; then psql -h 127.0.0.1 -U postgres -qc "drop database if exists \"$db\" with (force)" >/dev/null; fi
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

export CREDIT_HUB_DATA_DIR=$work/data
python3 -c "import os; print(os.urandom(32).hex())" > "$work/audit.key"
export CREDIT_HUB_AUDIT_KEY_FILE=$work/audit.key
python3 -c "import os; print(os.urandom(32).hex())" > "$work/cert.key"
export CREDIT_HUB_CERT_KEY_FILE=$work/cert.key
if [ "$backend" = postgres ]; then
  db=chbench_$$
  psql -h 127.0.0.1 -U postgres -qc "create database $db" >/dev/null
  export CREDIT_HUB_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db CREDIT_HUB_HMAC_KEY=bench-secret-0123456789
  $bin seed >/dev/null 2>&1
  psql -h 127.0.0.1 -U postgres -d "$db" -qtAc "select uscc from enterprises order by uscc" > "$work/usccs"
else
  $bin seed >/dev/null 2>&1
  python3 -c "import sqlite3,sys; [print(r[0]) for r in sqlite3.connect(sys.argv[1]).execute('select uscc from enterprises order by uscc')]" "$work/data/credit-hub.db" > "$work/usccs"
fi
token=$(awk -F'\t' '$1=="court"{print $3}' "$work/data/demo-tokens.txt")

$bin serve --listen 127.0.0.1:50961 --metrics-listen 127.0.0.1:50971 >"$work/serve.log" 2>&1 & pids+=($!)
$hello 127.0.0.1:50962 "$work/usccs" & pids+=($!)
$bin serve --listen 127.0.0.1:50963 --metrics-listen 127.0.0.1:50973 --audit-log off >"$work/serve-noaudit.log" 2>&1 & pids+=($!)
sleep 2

# The request, pre-encoded as one gRPC frame (5-byte prefix + protobuf message).
python3 - "$mode" "$work" <<'PY'
import sys
mode, work = sys.argv[1], sys.argv[2]
usccs = open(f"{work}/usccs").read().split()
def varint(n):
    out = b""
    while True:
        b = n & 0x7F; n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n: return out
def field(num, data): return varint(num << 3 | 2) + varint(len(data)) + data
purpose = varint(3 << 3) + varint(4)              # purpose = PURPOSE_JUDICIAL_ENFORCEMENT
if mode == "get":
    msg = field(1, f"enterprises/{usccs[len(usccs)//2]}".encode()) + purpose
else:
    step = len(usccs) // 1000
    msg = b"".join(field(1, f"enterprises/{u}".encode()) for u in usccs[::step][:1000]) + purpose
open(f"{work}/frame", "wb").write(b"\0" + len(msg).to_bytes(4, "big") + msg)
PY
method=GetCreditGrade; [ "$mode" = batch ] && method=BatchGetCreditGrades

# CPU time (clock ticks) of a process, and of every PostgreSQL process on the machine.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sys_ticks() { awk '{print $15}' "/proc/$1/stat"; }
pg_ticks() {
  [ "$backend" = postgres ] || { echo 0; return; }
  for p in $(pgrep -x postgres); do awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null; done | awk '{s += $1} END {print s + 0}'
}
hz=$(getconf CLK_TCK)

run() { # name port pid extra-header...
  local name=$1 port=$2 pid=$3; shift 3
  local t0 s0 p0; t0=$(ticks "$pid"); s0=$(sys_ticks "$pid"); p0=$(pg_ticks)
  h2load -n "$n" -c "$c" -m "$m" -d "$work/frame" -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
    --log-file "$work/$name.log" "http://127.0.0.1:$port/credithub.v1.GradeService/$method" > "$work/$name.out"
  local cpu sys pg_cpu
  cpu=$(( ($(ticks "$pid") - t0) * 1000000 / hz / n )); sys=$(( ($(sys_ticks "$pid") - s0) * 1000000 / hz / n ))
  pg_cpu=$(( ($(pg_ticks) - p0) * 1000000 / hz / n ))
  echo "$name: server CPU $cpu us/call ($sys in the kernel), PostgreSQL CPU $pg_cpu us/call" >&2
  python3 - "$work/$name.log" "$work/$name.out" "$name" "$n" <<'PY'
import re, sys
log, out, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
lat = sorted(int(l.split()[2]) for l in open(log) if l.strip())
text = open(out).read()
rps = float(re.search(r"finished in [^,]+, ([0-9.]+) req/s", text).group(1))
ok = int(re.search(r"(\d+) succeeded", text).group(1))
data = int(re.search(r"\(([0-9]+)\) data", text).group(1))
pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] / 1000
print(f"{name} {rps:.0f} {pct(0.5):.2f} {pct(0.99):.2f} {ok} {data}")
PY
}
read -r _ hello_rps hello_p50 hello_p99 hello_ok hello_data < <(run hello 50962 "${pids[1]}")
read -r _ hub_rps hub_p50 hub_p99 hub_ok hub_data < <(run hub 50961 "${pids[0]}" -H "authorization: Bearer $token")
# The audit writer's counters after the audited run: entries per group commit, and the
# share of the run it spent appending.
python3 - "$work/hub.out" >&2 <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen("http://127.0.0.1:50971/metrics").read().decode()
value = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))
secs = float(re.search(r"finished in ([0-9.]+)s", open(sys.argv[1]).read()).group(1))
groups, entries = value("credithub_audit_groups_total"), value("credithub_audit_entries_total")
print(f"hub: audit writer {entries / max(groups, 1):.1f} entries per group, "
      f"busy {value('credithub_audit_append_seconds_total') / secs:.0%} of the run")
PY
read -r _ off_rps off_p50 off_p99 off_ok off_data < <(run noaudit 50963 "${pids[2]}" -H "authorization: Bearer $token")

# Every response must carry a message: trailers-only responses are gRPC errors.
python3 - "$n" "$hello_ok" "$hello_data" "$hub_ok" "$hub_data" "$off_ok" "$off_data" <<'PY'
import sys
n, hok, hdata, cok, cdata, ook, odata = map(int, sys.argv[1:])
for name, ok, data in (("hello", hok, hdata), ("credit-hub", cok, cdata), ("credit-hub, audit off", ook, odata)):
    if ok != n:
        sys.exit(f"{name}: only {ok} of {n} requests succeeded at the HTTP level")
    if data < n * 20:
        sys.exit(f"{name}: {data} body bytes for {n} responses: some responses carried no message (gRPC errors)")
PY
grep -q "grpc-status" "$work/serve.log" "$work/serve-noaudit.log" && { echo "unexpected errors in the server log" >&2; exit 1; }
# Every credit-hub call of the audited run is in the chain, which still verifies. The
# audited server is stopped first: on SIGTERM its writer signs a last checkpoint over
# the run's entries, which `audit verify` with a signing key expects to find.
kill "${pids[0]}"; wait "${pids[0]}" || true
$bin audit verify >&2

ratio=$(python3 -c "print(f'{$hub_rps/$hello_rps:.2f}')")
row="| $(date +%F) | $backend | $method | $n / -c $c -m $m | $hub_rps | $hub_p50 / $hub_p99 ms | $hello_rps | $hello_p50 / $hello_p99 ms | $ratio |"
audit_row="| $(date +%F) | $backend | $method | $n / -c $c -m $m | $hub_rps | $hub_p50 / $hub_p99 ms | $off_rps | $off_p50 / $off_p99 ms | $(python3 -c "print(f'{1 - $hub_rps/$off_rps:.0%}')") |"
echo "$row"
echo "audit on/off: $audit_row"
if [ "$append" = yes ]; then
  echo "$row" >> BENCHMARKS.md
fi
