#!/usr/bin/env bash
# mart data: `get` against a local HTTP server on 127.0.0.1 serving the data directory
# (byte-identical files, kept on a second run, a corrupt file and a missing file refused with
# nothing left behind), and `prepare` checked against an independent Python reading of the
# same files (MATH levels 3-5 without MATH-500, GSM8K's "#### N").
#   tests/data_cli.sh MART_BIN        (MART_DATA: the data directory, e.g. ../shared/data)
set -euo pipefail
mart=${1:?usage: data_cli.sh MART_BIN}
data=${MART_DATA:?MART_DATA must name the data directory}
tmp=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A server on a free port of the loopback interface; it writes its port once it listens.
mkdir -p "$tmp/served/bench" "$tmp/served/gsm8k"
cp "$data/bench/aime24.jsonl" "$data/bench/gsm8k.jsonl" "$tmp/served/bench/"
cp "$data/gsm8k/train.jsonl" "$data/gsm8k/test.jsonl" "$tmp/served/gsm8k/"
python3 -c '
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
h = functools.partial(Quiet, directory=sys.argv[1])
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), h)
open(sys.argv[2] + ".tmp", "w").write(str(s.server_address[1]))
__import__("os").rename(sys.argv[2] + ".tmp", sys.argv[2])
s.serve_forever()' "$tmp/served" "$tmp/port" &
server_pid=$!
for _ in $(seq 100); do [ -f "$tmp/port" ] && break; sleep 0.1; done
[ -f "$tmp/port" ] || fail "the local HTTP server did not start"
url="http://127.0.0.1:$(cat "$tmp/port")"

"$mart" data get aime24 gsm8k --data-dir "$tmp/d" --base-url "$url" 2> "$tmp/log" ||
    { cat "$tmp/log"; fail "data get"; }
for f in bench/aime24.jsonl bench/gsm8k.jsonl gsm8k/train.jsonl gsm8k/test.jsonl; do
    cmp -s "$data/$f" "$tmp/d/$f" || fail "$f differs from the served file"
done
MART_DATA_URL="$url" "$mart" data get aime24 --data-dir "$tmp/d" 2> "$tmp/log"
grep -q "present, sha256 checked" "$tmp/log" || fail "a present file was fetched again"

# A corrupt file: refused, nothing stored under the real name, no temporary file left.
echo '{"problem": "tampered"}' >> "$tmp/served/bench/aime24.jsonl"
if "$mart" data get aime24 --data-dir "$tmp/e" --base-url "$url" 2> "$tmp/log"; then
    fail "a file with the wrong sha256 was accepted"
fi
grep -q "sha256" "$tmp/log" || fail "the error does not mention the sha256: $(cat "$tmp/log")"
[ -z "$(ls -A "$tmp/e/bench")" ] || fail "files left after a refused download: $(ls "$tmp/e/bench")"
# A missing file (HTTP 404), and an unknown set.
if "$mart" data get amc23 --data-dir "$tmp/e" --base-url "$url" 2> "$tmp/log"; then
    fail "a missing file was accepted"
fi
grep -q "amc23.jsonl" "$tmp/log" || fail "the 404 error does not name the file: $(cat "$tmp/log")"
[ -z "$(ls -A "$tmp/e/bench")" ] || fail "files left after a failed download"
if "$mart" data get nosuchset --data-dir "$tmp/e" 2>/dev/null; then fail "unknown set accepted"; fi

# prepare, against an independent reading of the same files.
"$mart" data prepare math --levels 3-5 --exclude math500 --out "$tmp/math.jsonl" 2> "$tmp/log" ||
    { cat "$tmp/log"; fail "prepare math"; }
cat "$tmp/log"
"$mart" data prepare gsm8k --split train --out "$tmp/gsm8k.jsonl" 2> /dev/null || fail "prepare gsm8k"
python3 - "$data" "$tmp/math.jsonl" "$tmp/gsm8k.jsonl" <<'PY'
import json, sys
data, math_out, gsm_out = sys.argv[1:]
rows = lambda p: [json.loads(l) for l in open(p, encoding="utf-8")]
squeeze = lambda s: " ".join(s.split())

def last_boxed(s):
    """Content of the last \\boxed{...} (balanced braces) or \\boxed x, or None (an empty box
    counts as none)."""
    i = s.rfind("\\boxed")
    if i < 0:
        return None
    if s.startswith("\\boxed ", i):
        word = s[i + len("\\boxed "):].split("$")[0].split()
        return word[0] if word else None
    if not s.startswith("\\boxed{", i):
        return None
    j, depth = i + len("\\boxed{"), 1
    for k in range(j, len(s)):
        depth += {"{": 1, "}": -1}.get(s[k], 0)
        if depth == 0:
            return s[j:k].strip() or None
    return None

def all_boxed(s):
    """Contents of every \\boxed{...} in order."""
    out, i = [], 0
    while (i := s.find("\\boxed{", i)) >= 0:
        j, depth = i + len("\\boxed{"), 1
        for k in range(j, len(s)):
            depth += {"{": 1, "}": -1}.get(s[k], 0)
            if depth == 0:
                out.append(s[j:k].strip())
                break
        i = j
    return out

bench = {squeeze(r["problem"]) for r in rows(f"{data}/bench/math500.jsonl")}
want = []
for split in ("train", "test"):
    for r in rows(f"{data}/math/{split}.jsonl"):
        lv = r["level"].removeprefix("Level ")
        if squeeze(r["problem"]) in bench or lv not in ("3", "4", "5"):
            continue
        a = last_boxed(r["solution"])
        if a is not None:
            want.append((r["problem"], int(lv), r["id"], a, all_boxed(r["solution"])))
got = rows(math_out)
assert len(got) == len(want), (len(got), len(want))
joined = 0
for g, w in zip(got, want):
    assert (g["problem"], g["level"], g["id"]) == w[:3], (g, w)
    # the last box, or (the grader's rule for a closing sentence with several boxes) the
    # last k boxes joined by ", "
    if g["answer"] != w[3]:
        assert any(g["answer"] == ", ".join(w[4][-k:]) for k in range(2, len(w[4]) + 1)), (g, w)
        joined += 1
print(f"math: {len(got)} problems and answers as the reference selects ({joined} of them "
      f"several boxes of the closing sentence, joined)")
g = rows(gsm_out)
ref = rows(f"{data}/gsm8k/train.jsonl")
assert len(g) == len(ref)
for a, r in zip(g, ref):
    assert a["problem"] == r["question"]
    assert a["answer"] == r["answer"].split("####")[-1].strip().replace(",", ""), a
print(f"gsm8k: {len(g)} problems, answers as after '####'")
PY
echo "data get/prepare: ok"
