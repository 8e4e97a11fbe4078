#!/usr/bin/env bash
# System calls per proxied keep-alive GET, by name: counts, not timings, so they hold on a
# loaded machine. Runs bench/proxy/callgrind.sh with TOOL=strace twice (N1 and N2 sequential
# GETs on one connection) and prints (calls(N2) - calls(N1)) / (N2 - N1) per system call: the
# start-up and shutdown cancel out.
#
# usage: bench/proxy/syscalls.sh FERRY_BIN ECHO_BIN [N1 [N2]]   (defaults 1000 and 3000)
#   PEER=haproxy counts HAProxy instead; TLS=1 puts TLS on the listener (see callgrind.sh).
set -euo pipefail
if [[ $# -lt 2 ]]; then
  sed -n '2,9p' "$0" >&2
  exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
N1=${3:-1000}
N2=${4:-3000}
a=$(mktemp) b=$(mktemp)
trap 'rm -f "$a" "$b"' EXIT
TOOL=strace bash "$here/callgrind.sh" "$1" "$2" "$N1" >"$a"
TOOL=strace bash "$here/callgrind.sh" "$1" "$2" "$N2" >"$b"
python3 - "$a" "$b" "$N1" "$N2" <<'PY'
import sys

def calls(path):
    out = {}
    for line in open(path):
        f = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
            out[f[-1]] = int(f[3])
    return out

a, b = calls(sys.argv[1]), calls(sys.argv[2])
n = int(sys.argv[4]) - int(sys.argv[3])
rows = sorted(((b.get(k, 0) - a.get(k, 0)) / n, k) for k in set(a) | set(b))
total = 0.0
for per, name in reversed(rows):
    if abs(per) >= 0.005:
        print(f"{name:<16} {per:6.2f}")
        total += per
print(f"{'all':<16} {total:6.2f}")
PY
