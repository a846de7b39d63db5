#!/bin/sh
# The `mart grade` CLI contract: --input lines with pred or response, outputs in order, a bad
# line is answered with an error object naming the line (exit 1 after all lines), and
# --pred/--gold for one pair.
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
# The JSONL policy: every record answered in order (a bad one by an error object naming its
# line), blank lines skipped, exit 1 only after the last record.
printf '{"gold":"1","pred":"1"}\n\n{"gold":"1"}\r\n{"gold":"2","pred":"2"}\n\n' > "$dir/mixed.jsonl"
status=0
"$MART" grade --input "$dir/mixed.jsonl" > "$dir/out.jsonl" 2> /dev/null || status=$?
expected='{"equal":true,"pred":"1"}
{"error":"'"$dir"'/mixed.jsonl:3: needs a string field \"pred\" or \"response\"","line":3}
{"equal":true,"pred":"2"}'
[ "$status" = 1 ] && [ "$(cat "$dir/out.jsonl")" = "$expected" ] ||
  { echo "mixed batch: exit $status, output:"; cat "$dir/out.jsonl"; exit 1; }
[ "$("$MART" grade --pred '\dfrac{3}{2}' --gold '1.5')" = '{"equal":true,"pred":"\\dfrac{3}{2}"}' ] || exit 1
[ "$("$MART" grade --pred '2' --gold '3')" = '{"equal":false,"pred":"2"}' ] || exit 1
echo ok
