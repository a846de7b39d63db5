#!/usr/bin/python3
"""Feeds every JSONL batch command (tokenize, detokenize, score, generate, grade) hostile input
- random bytes, every JSON escape, lone surrogates, NULs (escaped and raw), CRLF, blank lines,
very long lines, empty files - and checks each output line with an independent strict reader:
Python's UTF-8 decoder in strict mode and its json module with NaN/Infinity refused. It also
checks the JSONL policy of include/mart/core.h (one answer per record in order, an error object
naming the line, exit status 1 only when a record failed) and, against Python's own
errors="replace" decoder, the U+FFFD repair of text that is not UTF-8.
Usage: batch_hostile.py MART_BINARY"""
import json, os, random, subprocess, sys, tempfile

MART = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="mart_hostile_")
failures = []
env = dict(os.environ, OMP_NUM_THREADS="1")
# A sanitizer report (sanitizer builds) must not pass for exit status 1, "a record failed".
for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
    env[var] = ":".join(filter(None, [env.get(var), "halt_on_error=1", "exitcode=86"]))


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def run(args, data):
    path = os.path.join(tmp, "in.jsonl")
    with open(path, "wb") as f:
        f.write(data)
    p = subprocess.run([MART] + args + ["--input", path], capture_output=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def no_constants(name):
    raise ValueError("non-finite number " + name)


def check_strings(x, where):
    """Strings must be encodable as UTF-8: no lone surrogates smuggled in as escapes."""
    if isinstance(x, str):
        x.encode("utf-8")
    elif isinstance(x, list):
        for v in x:
            check_strings(v, where)
    elif isinstance(x, dict):
        for k, v in x.items():
            check_strings(k, where)
            check_strings(v, where)


def strict_lines(out, where):
    """Every output line through the strict reader; returns the parsed objects."""
    objs = []
    if out and not out.endswith(b"\n"):
        fail(f"{where}: output does not end with a newline")
    for i, raw in enumerate(out.split(b"\n")[:-1] if out else []):
        try:
            text = raw.decode("utf-8")  # strict
            o = json.loads(text, parse_constant=no_constants)
            check_strings(o, where)
        except (UnicodeError, ValueError) as e:
            fail(f"{where}: output line {i + 1} is not strict JSON/UTF-8 ({e}): {raw[:200]!r}")
            continue
        if not isinstance(o, dict):
            fail(f"{where}: output line {i + 1} is not an object")
            continue
        objs.append(o)
    return objs


def records(data):
    """Line numbers of the records (non-blank lines) under the policy of core.h."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [i + 1 for i, l in enumerate(lines) if l.strip(b" \t\r") != b""]


def check_policy(cmd, args, data, n_per_record=1, result_key=None):
    """Runs cmd on data and checks the answers against the records; returns (rc, answers)."""
    rc, out, err = run([cmd] + args, data)
    where = f"{cmd} on {data[:60]!r}"
    if rc not in (0, 1):
        fail(f"{where}: exit status {rc} (crash?): {err[-300:]!r}")
        return rc, []
    objs = strict_lines(out, where)
    recs = records(data)
    k, n_err = 0, 0
    for line in recs:
        if k >= len(objs):
            fail(f"{where}: record on line {line} got no answer")
            break
        if "error" in objs[k]:
            if objs[k].get("line") != line or not isinstance(objs[k]["error"], str):
                fail(f"{where}: error answer {objs[k]} does not name line {line}")
            if f":{line}" not in objs[k]["error"]:
                fail(f"{where}: error message does not name line {line}: {objs[k]['error']}")
            k, n_err = k + 1, n_err + 1
            continue
        for _ in range(n_per_record):
            if k >= len(objs) or result_key not in objs[k]:
                fail(f"{where}: record on line {line} lacks its {n_per_record} result(s)")
                break
            k += 1
    if k != len(objs):
        fail(f"{where}: {len(objs)} answers for {len(recs)} records")
    if (rc == 1) != (n_err > 0):
        fail(f"{where}: exit status {rc} with {n_err} error answer(s): {err[-300:]!r}")
    return rc, objs


# ---- a model folder with a byte-level tokenizer (id b is byte b) ----
model = os.path.join(tmp, "m")
with open(os.path.join(tmp, "sft.jsonl"), "w") as f:
    f.write('{"problem":"1+1?","solution":"\\\\boxed{2}"}\n')
subprocess.run([MART, "pretrain", "--data", os.path.join(tmp, "sft.jsonl"), "--out", model,
                "--steps", "1", "--batch", "1", "--merges", "0"], check=True, env=env,
               capture_output=True)
vocab = json.load(open(os.path.join(model, "tokenizer.json")))["model"]["vocab"]
# GPT-2's byte <-> printable character table, written out here independently of mart.
bs = list(range(33, 127)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
cs, extra = bs[:], 0
for b in range(256):
    if b not in bs:
        bs.append(b)
        cs.append(256 + extra)
        extra += 1
char_to_byte = {chr(c): b for b, c in zip(bs, cs)}
id_bytes = {i: bytes(char_to_byte[ch] for ch in s) for s, i in vocab.items()}

# ---- hostile inputs shared by every command ----
rng = random.Random(15)
escapes = ['\\"', "\\\\", "\\/", "\\b", "\\f", "\\n", "\\r", "\\t"]
escapes += ["\\u%04x" % c for c in list(range(0x20)) + [0x7f, 0xe9, 0x2028, 0xfffd, 0xffff]]
escapes += ["\\ud83d\\ude00", "\\uD83D\\uDE00"]
lone = ["\\ud800", "\\udfff", "\\ud83d x", "\\ude00\\ud83d", "\\ud800\\u0041"]
hostile = {
    "empty": b"",
    "blank lines": b"\n\r\n \t\n\n",
    "crlf": None,  # per command, below
    "raw NUL": b'{"text":"a\x00b","ids":[1],"tokens":[1],"gold":"1","pred":"1","prompt":"a\x00"}\n',
    "not json": b"nope\n{\n}\n[1,2]\n\"str\"\n42\nnull\n",
    "truncated": b'{"text":"abc',
    "deep": b"[" * 5000 + b"]" * 5000 + b"\n",
    "non-finite": b'{"tokens":[1,NaN]}\n{"ids":[1e999]}\n{"pred":Infinity,"gold":"1"}\n',
}
for seed in range(6):
    n = rng.choice([1, 50, 3000])
    hostile[f"random {seed}"] = bytes(rng.choice(b'{}[]":,\\u0 \n\r\t\x00\xff\xe2\x82abc1')
                                      if seed % 2 else rng.randrange(256) for _ in range(n))


def field_lines(make):
    """One line per escape and per lone surrogate, each with the fields make(s) builds."""
    return "".join(make(s) + "\n" for s in escapes + lone + ["a\\u0000b", "\\u0000"]).encode()


# ---- tokenize ----
tok = ["--tokenizer", model]
texts = field_lines(lambda s: json.dumps({"text": "x"})[:-2] + s + '"}')
rc, objs = check_policy("tokenize", tok, texts, result_key="ids")
errs = [o["error"] for o in objs if "error" in o]
if len(errs) != len(lone) + 2 + escapes.count("\\u0000") or not any("U+0000" in e and "field 'text'" in e for e in errs) \
        or not any("lone surrogate" in e for e in errs):
    fail(f"tokenize: expected a refusal per lone surrogate and per U+0000, got {errs}")
long_text = "".join(rng.choice("ab cd\u00e9\u4e2d\U0001F600\n") for _ in range(200000))
for name, data in list(hostile.items()) + [
        ("crlf", b'{"text":"a"}\r\n\r\n{"text":"b"}\r\n'),
        ("long", (json.dumps({"text": long_text}) + "\n").encode())]:
    if data is not None:
        check_policy("tokenize", tok, data, result_key="ids")
# Valid text comes back unchanged through tokenize then detokenize.
sample = ["plain", "caf\u00e9 \u4e2d\u6587 \U0001F600", "<|im_end|> tab\t nl\n", long_text[:5000]]
rc, objs = check_policy("tokenize", tok, "".join(json.dumps({"text": t}) + "\n" for t in sample).encode(), result_key="ids")
rc, back = check_policy("detokenize", tok, "".join(json.dumps(o) + "\n" for o in objs).encode(), result_key="text")
if [o.get("text") for o in back] != sample:
    fail("tokenize/detokenize does not round-trip valid text")

# ---- detokenize: the U+FFFD repair against Python's decoder ----
id_runs = [[rng.randrange(256) for _ in range(rng.choice([1, 2, 3, 7, 40]))] for _ in range(300)]
id_runs += [[0xE2, 0x82], [0xF0, 0x9F, 0x98], [0xED, 0xA0, 0x80], [0xC0, 0xAF], [0xF4, 0x90, 0x80, 0x80],
            [0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64], [0], [0x7f]]
data = "".join(json.dumps({"ids": r}) + "\n" for r in id_runs).encode()
rc, objs = check_policy("detokenize", tok, data, result_key="text")
for r, o in zip(id_runs, objs):
    want = b"".join(id_bytes[i] for i in r).decode("utf-8", "replace")
    if o.get("text") != want:
        fail(f"detokenize {r}: {o.get('text')!r}, Python's decoder gives {want!r}")
        break
for name, data in list(hostile.items()) + [
        ("crlf", b'{"ids":[104]}\r\n\r\n{"ids":[105]}\r\n'),
        ("bad ids", b'{"ids":[-1]}\n{"ids":[99999999]}\n{"ids":[1.5]}\n{"ids":"x"}\n{}\n'),
        ("long", (json.dumps({"ids": [rng.randrange(256) for _ in range(300000)]}) + "\n").encode())]:
    if data is not None:
        check_policy("detokenize", tok, data, result_key="text")

# ---- grade: answers echo valid UTF-8 ----
grade_lines = field_lines(lambda s: '{"gold":"1","pred":"' + s + '"}')
check_policy("grade", [], grade_lines, result_key="equal")
raw_pred = b'{"gold":"1","pred":"\xe2\x82 \xff1"}\n{"gold":"2","response":"\\\\boxed{\xf0\x9f\x98}"}\n'
rc, objs = check_policy("grade", [], raw_pred, result_key="equal")
if [o.get("pred") for o in objs] != [b"\xe2\x82 \xff1".decode("utf-8", "replace"),
                                      b"\xf0\x9f\x98".decode("utf-8", "replace")]:
    fail(f"grade: echoed answers are not Python's repair of the input bytes: {objs}")
for name, data in list(hostile.items()) + [
        ("crlf", b'{"gold":"1","pred":"1"}\r\n\r\n{"gold":"2","pred":"3"}\r\n'),
        ("long", (json.dumps({"gold": "1", "response": "x" * 1000000 + "\\boxed{1}"}) + "\n").encode())]:
    if data is not None:
        check_policy("grade", [], data, result_key="equal")

# ---- score ----
sc = ["--model", model]
for name, data in list(hostile.items()) + [
        ("escapes", field_lines(lambda s: '{"tokens":[1,2],"note":"' + s + '"}')),
        ("crlf", b'{"tokens":[1,2]}\r\n\r\n{"tokens":[3]}\r\n'),
        ("bad tokens", b'{"tokens":[]}\n{"tokens":[259]}\n{"tokens":[-1]}\n{"tokens":[1,2]}\n'),
        ("long", (json.dumps({"tokens": [rng.randrange(256) for _ in range(4000)]}) + "\n").encode())]:
    if data is not None:
        check_policy("score", sc, data, result_key="logprobs")

# ---- generate: "text" is Python's repair of the sampled bytes ----
gen = ["--model", model, "--max-tokens", "6", "--n", "2", "--temperature", "1", "--seed", "3"]
prompts = field_lines(lambda s: '{"prompt":"q' + s + '"}') + b'{"tokens":[1,2,3]}\n{"tokens":[]}\n'
rc, objs = check_policy("generate", gen, prompts, n_per_record=2, result_key="tokens")
stops = {i for s, i in vocab.items() if s in ("<|im_end|>", "<|endoftext|>")}
for o in objs:
    if "tokens" not in o:
        continue
    ids = o["tokens"][:-1] if o["finish"] == "stop" and o["tokens"][-1] in stops else o["tokens"]
    want = b"".join(id_bytes.get(i, b"") for i in ids).decode("utf-8", "replace")
    if o["text"] != want or len(o["logprobs"]) != len(o["tokens"]):
        fail(f"generate: text {o['text']!r} of {o['tokens']}, Python's decoder gives {want!r}")
        break
for name, data in list(hostile.items()) + [
        ("crlf", b'{"prompt":"a"}\r\n\r\n{"prompt":"b"}\r\n'),
        ("long", (json.dumps({"prompt": "ab " * 3000}) + "\n").encode())]:
    if data is not None:
        check_policy("generate", gen, data, n_per_record=2, result_key="tokens")

# ---- absurd settings are refused up front, with the memory they would need ----
for cmd, args in [("generate", ["--model", model, "--n", "1000000000"]),
                  ("generate", ["--model", model, "--max-tokens", "10000000", "--n", "1000"]),
                  ("generate", ["--model", model, "--kv-mb", "100000000"]),
                  ("score", ["--model", model, "--batch-tokens", "2000000000"])]:
    rc, out, err = run([cmd] + args, b'{"prompt":"a","tokens":[1,2]}\n')
    if rc != 1 or b"would need" not in err or b"GiB" not in err or out:
        fail(f"{cmd} {' '.join(args[2:])}: exit {rc}, stderr {err[-200:]!r}: not refused up front")

subprocess.run(["rm", "-rf", tmp])
if failures:
    print(f"{len(failures)} failure(s)", file=sys.stderr)
    sys.exit(1)
print("ok: every answer is strict JSON and UTF-8, one per record, errors name their line")
