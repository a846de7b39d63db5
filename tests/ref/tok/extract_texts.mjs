// Writes every string field (recursively) of the given JSONL files as {"text": ...} lines,
// the inputs of the tokenizer parity test.
//   node extract_texts.mjs FILE.jsonl... > texts.jsonl
import { readFileSync } from "node:fs";

const out = [];
const walk = (v) => {
  if (typeof v === "string") out.push(JSON.stringify({ text: v }));
  else if (Array.isArray(v)) v.forEach(walk);
  else if (v && typeof v === "object") Object.values(v).forEach(walk);
};
for (const f of process.argv.slice(2))
  for (const line of readFileSync(f, "utf8").split("\n")) if (line.trim()) walk(JSON.parse(line));
process.stdout.write(out.join("\n") + "\n");
