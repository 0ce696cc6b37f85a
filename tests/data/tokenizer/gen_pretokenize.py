#!/usr/bin/env python3
"""Generates pretokenize.json: llama.cpp's regex-based pre-tokenizer stages applied to random
texts, for src/tokenizer/pretokenize.rs's tests.

llama.cpp runs these expressions with C++ std::regex (ECMAScript: leftmost match, ordered
alternation, greedy backtracking), either on a "collapsed" text (patterns with \\p{..}: same result
as Unicode classes) or as std::wregex on code points with non-ASCII white space replaced by 0x0B.
Each expression splits every current piece into its matches and the gaps between them
(unicode_regex_split in src/unicode.cpp). This script reproduces that with the PyPI `regex`
module, whose semantics agree with ECMAScript for these patterns. The texts use a fixed alphabet
of characters whose general category is the same in every recent Unicode version, and avoid
U+001C..U+001F (white space for Python, not for llama.cpp).

    pip install regex==2026.11.15 && python3 gen_pretokenize.py > pretokenize.json
"""
import json
import random

import regex

DS_LETTER = (
    "A-Za-z\u00b5\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u01ba\u01bc-\u01bf\u01c4-\u0293\u0295-\u02af"
    "\u0370-\u0373\u0376\u0377\u037b-\u037d\u037f\u0386\u0388-\u038a\u038c\u038e-\u03a1\u03a3-\u03f5"
    "\u03f7-\u0481\u048a-\u052f\u0531-\u0556\u10a0-\u10c5\u13a0-\u13f5\u13f8-\u13fd\u1c90-\u1cba"
    "\u1cbd-\u1cbf\u1d00-\u1d2b\u1d6b-\u1d77\u1d79-\u1d9a\u1e00-\u1f15\u1f18-\u1f1d\u1f20-\u1f45"
    "\u1f48-\u1f4d\u1f50-\u1f57\u1f59\u1f5b\u1f5d\u1f5f-\u1f7d\u1f80-\u1fb4\u1fb6-\u1fbc\u1fbe"
    "\u1fc2-\u1fc4\u1fc6-\u1fcc\u1fd0-\u1fd3\u1fd6-\u1fdb\u1fe0-\u1fec\u1ff2-\u1ff4\u1ff6-\u1ffc"
    "\u2102\u2107\u210a-\u2113\u2115\u2119-\u211d\u2124\u2126\u2128\u212a-\u212d\u212f-\u2134"
    "\u2139\u213c-\u213f\u2145-\u2149\u214e\u2183\u2184\u2c00-\u2c7b\u2c7e-\u2ce4\u2ceb-\u2cee"
    "\u2cf2\u2cf3\ua640-\ua66d\ua680-\ua69b\ua722-\ua76f\ua771-\ua787\ua78b-\ua78e\uab70-\uabbf"
    "\ufb00-\ufb06\ufb13-\ufb17\uff21-\uff3a\uff41-\uff5a\U00010400-\U0001044f\U000104b0-\U000104d3"
    "\U000104d8-\U000104fb\U00010c80-\U00010cb2\U00010cc0-\U00010cf2\U000118a0-\U000118df"
    "\U0001e900-\U0001e943"
)
CONTR = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
W = "wide"  # std::wregex path: non-ASCII white space becomes 0x0B first
C = "collapsed"

STAGES = {
    "qwen2": [(C, CONTR + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")],
    "gpt-4o": [(C, r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+" + CONTR + r"?|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*" + CONTR + r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")],
    "tekken": [(C, r"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")],
    "deepseek-llm": [
        (W, r"[\r\n]"),
        (W, r"\s?[" + DS_LETTER + r"]+"),
        (W, "\\s?[!-/:-~\uff01-\uff0f\uff1a-\uff5e\u2018-\u201f\u3000-\u3002]+"),
        (W, r"\s+$"),
        (W, "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"),
        (C, r"\p{N}+"),
    ],
    "deepseek-coder": [
        (W, r"[\r\n]"),
        (C, r"\s?\p{L}+"),
        (C, r"\s?\p{P}+"),
        (W, "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+"),
        (C, r"\p{N}"),
    ],
    "stage:default_punct": [(C, r"[\p{P}\$\+<=>\^~\|]+")],
    "stage:falcon_punct": [(C, r"[\p{P}\$\+<=>\^~\|`]+")],
    "stage:number_run": [(C, r"\p{N}+")],
    "stage:number_single": [(C, r"\p{N}")],
    "stage:digits3": [(W, r"[0-9][0-9][0-9]")],
}

WS = {"\u0085", "\u00a0", "\u1680", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000"} | {chr(c) for c in range(0x2000, 0x200B)}

ALPHABET = (
    list("abZQstmdrevlSTREVLMDxyz") * 4
    + list("0123456789") * 2
    + [" "] * 12
    + list("\t\n\r'.,!?/-_$+<=>^~|`()@#%&*:;\"[]{}\\")
    + ["'s", "'T", "'re", "'LL", "'d"] * 2
    + list("éÀßΩжЖ中文가あア٣½Ⅻ\u0301’“—€©😀\u00a0\u3000\u2028\u200bµǅʰ！。、ｱＡℂ\u212aﬀ\u0085\x7f")
)


def split(stages, text):
    pieces = [(0, len(text))]
    for kind, pat in stages:
        rx = regex.compile(pat)
        t = "".join("\x0b" if c in WS else c for c in text) if kind == W else text
        out = []
        for a, b in pieces:
            gap = a
            for m in rx.finditer(t, a, b):
                if m.start() > gap:
                    out.append((gap, m.start()))
                out.append((m.start(), m.end()))
                gap = m.end()
            if gap < b:
                out.append((gap, b))
        pieces = out
    return [text[a:b] for a, b in pieces]


def main():
    rnd = random.Random(20261124)
    cases = []
    for name, stages in STAGES.items():
        for _ in range(150):
            n = rnd.randint(1, 24)
            text = "".join(rnd.choice(ALPHABET) for _ in range(n))
            cases.append({"pre": name, "text": text, "pieces": split(stages, text)})
    print(json.dumps({"source": "gen_pretokenize.py (regex " + regex.__version__ + ")", "cases": cases}, ensure_ascii=False, indent=0))


main()
