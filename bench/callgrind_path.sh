#!/usr/bin/env bash
# Instructions per payment of bench/payment_path.py, per mode, for the code in DIR (a worktree
# with its extension built in place, or .): callgrind at n = 6000 and n = 2000, the difference
# over 4000 (start-up cancels out). Subtract `gen` (making the request bytes) from the others.
# The harness is this checkout's bench/payment_path.py whatever DIR is: every variant of an A/B
# is measured by the same harness.
#
#   bench/callgrind_path.sh DIR [on|off] [MODE ...]      # MODE: request all gen (default: all)
#   bench/callgrind_path.sh /tmp/wt-old on request all gen
set -euo pipefail
dir=$(cd "${1:?usage: $0 DIR [on|off] [MODE ...]}" && pwd)
intake=${2:-on}
shift $(($# < 2 ? $# : 2))
modes=("${@:-all}")
py=$(command -v "${PYTHON:-python3}")
py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py")  # absolute: the runs cd into DIR
harness=$(cd "$(dirname "$0")" && pwd)/payment_path.py
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
total() { callgrind_annotate "$1" | awk '/TOTALS/ {gsub(",", "", $1); print $1}'; }
for mode in "${modes[@]}"; do
    for n in 2000 6000; do
        (cd "$dir" && PYTHONPATH="$dir" RINHA_INTAKE="$intake" RINHA_DATA_DIR="$out/data-$mode-$n" \
            valgrind --tool=callgrind --callgrind-out-file="$out/cg.$mode.$n" \
            "$py" "$harness" "$mode" -n "$n" >/dev/null 2>&1)
    done
    echo "$mode $(( ($(total "$out/cg.$mode.6000") - $(total "$out/cg.$mode.2000")) / 4000 ))"
done
