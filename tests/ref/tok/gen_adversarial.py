#!/usr/bin/python3
"""Writes adversarial.jsonl: hard cases for tokenizer parity ({"text": ...} per line).

Usage: /usr/bin/python3 tests/ref/tok/gen_adversarial.py > tests/ref/tok/adversarial.jsonl
"""
import json
import sys

cases = [
    # whitespace runs, trailing spaces, CRLF, tabs, mixed line ends
    "a  b   c    d", "trailing   ", "   leading", " ", "  ", "\n", "\n\n\n", "a\r\nb\r\n\r\nc",
    "\r\r\n\n\r", "tab\tand\t\ttabs\t", " \t \n \t", "x \n y", "end with newline\n",
    "word  \n  word", "\u00a0nbsp\u00a0\u00a0x", "ideographic\u3000space", "thin\u2009space",
    "line\u2028sep\u2029para", "nel\u0085here",
    # digit runs
    "0", "12", "123", "1234567890", "3.14159265358979", "1,000,000", "x1y22z333", "-42", "1e-10",
    "\uff11\uff12\uff13", "\u0661\u0662\u0663", "\u00bd \u2153 \u2460",
    # contractions, both cases
    "don't", "DON'T", "I'm", "I'M", "we'll", "WE'LL", "you've", "YOU'VE", "they're", "THEY'RE",
    "she'd", "SHE'D", "it's", "IT'S", "'s", "'S'T'RE'VE'M'LL'D", "can't've", "o'clock", "rock'n'roll",
    "''", "'", "''s", "Don\u2019t",
    # CJK, Arabic, Hebrew, Devanagari, Thai, Korean
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u6570\u5b66\u95ee\u9898\uff1a\u6c42\u89e3 x^2 = 4",
    "\u3053\u3093\u306b\u3061\u306f\u4e16\u754c", "\u30ab\u30bf\u30ab\u30ca",
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "\u0627\u0644\u0639\u062f\u062f \u0663\u0664 \u0648 34", "\u05e9\u05dc\u05d5\u05dd",
    "\u0928\u092e\u0938\u094d\u0924\u0947", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35",
    "\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8", "\u1100\u1161\u11a8",  # conjoining jamo compose
    # emoji: ZWJ sequences, flags, skin tones, keycaps, variation selectors
    "\U0001F468\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466", "\U0001F1FA\U0001F1F8\U0001F1EF\U0001F1F5",
    "\U0001F44D\U0001F3FD", "1\ufe0f\u20e3", "\u2764\ufe0f", "\U0001F600\U0001F600\U0001F600",
    "emoji\U0001F389in\U0001F680text", "\U0001F3F3\ufe0f\u200d\U0001F308",
    # combining marks (NFC composes some of them)
    "e\u0301", "caf\u00e9 vs cafe\u0301", "a\u0308o\u0308u\u0308", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dA\u036b\u0357",
    "q\u0307\u0323", "\u0041\u030a", "\u212b", "\u1e9b\u0323", "\u00c5\u0327", "\u0958", "\uf900",
    "n\u0303\u0303", "\u0301leading mark", "x\u0300\u0316\u0301",
    # control characters
    "\x01\x02\x03", "bell\x07", "esc\x1b[31mred\x1b[0m", "del\x7f", "\x0b\x0c", "zero\u200bwidth",
    "\ufeffbom", "rtl\u202eoverride", "soft\u00adhyphen",
    # special-token look-alikes and real specials
    "<|im_start", "<|im_start>", "<im_start|>", "<|im_start|", "|im_start|>", "<|IM_START|>",
    "<|im_start|>", "<|im_start|><|im_end|>", "<|im_start|>user\nhi<|im_end|>\n",
    "<<|im_start|>>", "<|im_start|im_end|>", "<||im_end||>", "<|endoftext|>x<|endoftext|>",
    "<|endoftext", "< |im_end| >", "<|im_end|>\n<|im_start|>assistant\n", " <|im_end|> ",
    "<think>\n\n</think>\n\n", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>", "<|vision_pad|>",
    "<tool_call>", "</tool_call>", "<|box_start|>", "<|im_sep|>",
    # very long words and runs
    "a" * 3000, "ab" * 1500, "\u00e9" * 1000, "\u4e2d" * 1000, " " * 1000, "\n" * 500,
    "1" * 2000, "!" * 1000, "pneumonoultramicroscopicsilicovolcanoconiosis" * 20,
    "\U0001F600" * 300, "x" * 100 + " " * 100 + "y" * 100,
    # math / code flavoured
    "$\\frac{1}{2}$ and \\boxed{\\sqrt{3}}", "f(x) = x^2 + 2x + 1", "if (a<b && c>d) { return; }",
    "http://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Windows\\System32",
    "\u2200x\u2208\u211d: x\u00b2 \u2265 0", "\u03b1\u03b2\u03b3 \u0394\u03a3\u03a9",
    "   \\begin{align*}\n    x &= 1 \\\\\n  \\end{align*}", "",
]
for c in cases:
    sys.stdout.write(json.dumps({"text": c}, ensure_ascii=True) + "\n")
