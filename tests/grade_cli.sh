#!/bin/sh
# The `mart grade` CLI contract: --input lines with pred or response, outputs in order, exactly
# one output line per record under the JSONL policy of include/mart/core.h (blank lines are not
# records; a bad record is an error object naming its line, and the exit status is 1 once all
# are answered), valid UTF-8 output, undecided verdicts with a reason, and --pred/--gold for one
# pair.
set -eu
MART="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cat > "$dir/in.jsonl" <<'J'
{"gold":"\\frac{1}{2}","pred":"0.5"}
{"gold":"(1,2)","response":"so we get \\boxed{(2,1)} finally"}
{"gold":"3","response":"no box here"}
{"gold":27.0,"pred":"27"}
{"gold":"1, -3","response":"the roots are $\\boxed{1}$ and $\\boxed{-3}$."}
{"gold":"10^{10^6}+1","pred":"10^{10^6}"}
J
"$MART" grade --input "$dir/in.jsonl" > "$dir/out.jsonl"
expected='{"equal":true,"pred":"0.5"}
{"equal":false,"pred":"(2,1)"}
{"equal":false,"pred":""}
{"equal":true,"pred":"27"}
{"equal":true,"pred":"1, -3"}
{"equal":false,"pred":"10^{10^6}","verdict":"undecided","reason":"a value too large to compare exactly"}'
[ "$(cat "$dir/out.jsonl")" = "$expected" ] || { echo "unexpected output:"; cat "$dir/out.jsonl"; exit 1; }

# --fallback: a final-answer phrase, then the last number, each marked with where it was found
printf '%s\n' '{"gold":"12","response":"The final answer is 12."}' \
  '{"gold":"116","response":"so $m+n=116$."}' > "$dir/fb.jsonl"
"$MART" grade --fallback --input "$dir/fb.jsonl" > "$dir/fb.out"
expected='{"equal":true,"pred":"12","found":"phrase"}
{"equal":true,"pred":"116","found":"last_number"}'
[ "$(cat "$dir/fb.out")" = "$expected" ] || { echo "unexpected fallback output:"; cat "$dir/fb.out"; exit 1; }

# malformed lines: bad JSON, a lone surrogate escape, a missing field, blank lines (one of them
# trailing, one CRLF), a non-object, invalid UTF-8 bytes; every record answered, in order
printf '{"gold":"1","pred":"1"}\nnot json\n{"gold":"2","pred":"\\ud800"}\n{"gold":"1"}\n\r\n[1]\n{"gold":"4","pred":"4\377"}\n{"gold":"5","pred":"5"}\n\n' > "$dir/bad.jsonl"
if "$MART" grade --input "$dir/bad.jsonl" > "$dir/bad.out" 2> "$dir/err"; then
  echo "a batch with bad lines must exit non-zero"; exit 1
fi
[ "$(wc -l < "$dir/bad.out")" -eq 7 ] || { echo "not one output line per record:"; cat "$dir/bad.out"; exit 1; }
for n in 2 3 4 6; do
  grep -q "^{\"line\":$n,\"error\":\".*bad.jsonl:$n: " "$dir/bad.out" ||
    { echo "line $n is not answered by an error object naming it:"; cat "$dir/bad.out"; exit 1; }
done
[ "$(sed -n 5p "$dir/bad.out" | cut -c1-10)" = '{"line":6,' ] || { echo "answers out of order"; exit 1; }
[ "$(sed -n 7p "$dir/bad.out")" = '{"equal":true,"pred":"5"}' ] || { echo "line 8 not graded"; exit 1; }
[ "$(sed -n 6p "$dir/bad.out")" = "$(printf '{"equal":false,"pred":"4\357\277\275"}')" ] ||
  { echo "invalid UTF-8 not replaced by U+FFFD:"; sed -n 6p "$dir/bad.out"; exit 1; }
iconv -f UTF-8 -t UTF-8 "$dir/bad.out" > /dev/null || { echo "output is not valid UTF-8"; exit 1; }
# blank lines alone (a trailing one included) are no failure
printf '{"gold":"1","pred":"1"}\n\n' > "$dir/blank.jsonl"
[ "$("$MART" grade --input "$dir/blank.jsonl")" = '{"equal":true,"pred":"1"}' ] ||
  { echo "a trailing blank line must not fail the batch"; exit 1; }
grep -q "bad.jsonl:2" "$dir/err" || { echo "error does not name the line:"; cat "$dir/err"; exit 1; }

[ "$("$MART" grade --pred '\dfrac{3}{2}' --gold '1.5')" = '{"equal":true,"pred":"\\dfrac{3}{2}"}' ] || exit 1
[ "$("$MART" grade --pred '2' --gold '3')" = '{"equal":false,"pred":"2"}' ] || exit 1
echo ok
