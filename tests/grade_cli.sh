#!/bin/sh
# The `mart grade` CLI contract: --input lines with pred or response, outputs in order, a bad
# line is an error naming the line (non-zero exit), and --pred/--gold for one pair.
set -eu
MART="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/in.jsonl" <<'J'
{"gold":"\\frac{1}{2}","pred":"0.5"}
{"gold":"(1,2)","response":"so we get \\boxed{(2,1)} finally"}
{"gold":"3","response":"no box here"}
{"gold":27.0,"pred":"27"}
J
"$MART" grade --input "$dir/in.jsonl" > "$dir/out.jsonl"
expected='{"equal":true,"pred":"0.5"}
{"equal":false,"pred":"(2,1)"}
{"equal":false,"pred":""}
{"equal":true,"pred":"27"}'
[ "$(cat "$dir/out.jsonl")" = "$expected" ] || { echo "unexpected output:"; cat "$dir/out.jsonl"; exit 1; }
printf '{"gold":"1","pred":"1"}\n{"gold":"1"}\n' > "$dir/bad.jsonl"
if "$MART" grade --input "$dir/bad.jsonl" > /dev/null 2> "$dir/err"; then
  echo "a line without pred/response must fail"; exit 1
fi
grep -q "bad.jsonl:2" "$dir/err" || { echo "error does not name the line:"; cat "$dir/err"; exit 1; }
[ "$("$MART" grade --pred '\dfrac{3}{2}' --gold '1.5')" = '{"equal":true,"pred":"\\dfrac{3}{2}"}' ] || exit 1
[ "$("$MART" grade --pred '2' --gold '3')" = '{"equal":false,"pred":"2"}' ] || exit 1
echo ok
