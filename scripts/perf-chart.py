#!/usr/bin/env python3
"""Turns `kiln bench -o json` and `llama-bench -o json` output into the README's performance
table (Markdown, on stdout) and chart (SVG).

Both tools write the same JSON fields (model_filename, n_threads, n_prompt, n_gen, avg_ts,
stddev_ts), so rows are matched on (model file name, threads, test):

    kiln bench -m MODEL -p 128,512 -n 64 -t 1,2 -r 5 -o json > kiln.json
    llama-bench -m MODEL -p 128,512 -n 64 -t 1,2 -r 5 -o json > llama.json
    scripts/perf-chart.py kiln.json llama.json --svg docs/perf.svg

Several files per side may be given as `kiln1.json,kiln2.json` (e.g. one per model).
Python 3 standard library only.
"""

import argparse
import json
import os
import sys


def load(paths):
    rows = {}
    for path in paths.split(","):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        for r in data:
            model = os.path.basename(r["model_filename"])
            test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
            rows[(model, int(r["n_threads"]), test)] = (float(r["avg_ts"]), float(r["stddev_ts"]))
    return rows


def short(model):
    m = model.lower()
    if "smollm2" in m:
        return "SmolLM2-135M Q4_1"
    if "gemma" in m:
        return "Gemma 3 270M Q4_K_M"
    return model


def test_key(test):
    return (0 if test.startswith("pp") else 1, int(test[2:]))


def table(kiln, llama):
    keys = sorted(set(kiln) & set(llama), key=lambda k: (k[0], test_key(k[2]), k[1]))
    out = [
        "| model | test | threads | kiln tok/s | llama.cpp tok/s | kiln / llama.cpp |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for k in keys:
        (a, sa), (b, sb) = kiln[k], llama[k]
        out.append(
            f"| {short(k[0])} | {k[2]} | {k[1]} | {a:.1f} ± {sa:.1f} | {b:.1f} ± {sb:.1f} "
            f"| {a / b:.2f} |"
        )
    return "\n".join(out), keys


def svg(kiln, llama, keys):
    """One panel per model, bars per (test, threads): kiln and llama.cpp side by side, the
    height the ratio to llama.cpp (so pp and tg share an axis); 1.0 and 1.2 marked."""
    models = sorted({k[0] for k in keys})
    bw, gap, panel_gap, left, top, h = 16, 14, 40, 50, 40, 220
    groups = {m: [k for k in keys if k[0] == m] for m in models}
    width = left + sum(len(g) * (2 * bw + gap) + panel_gap for g in groups.values()) + 20
    height = top + h + 70
    vmax = max(2.0, max(kiln[k][0] / llama[k][0] for k in keys) * 1.1)

    def y(v):
        return top + h - v / vmax * h

    s = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="18" font-size="13">Tokens/s relative to llama.cpp '
        f"(same machine, same model and threads; higher is better)</text>",
    ]
    for v in (0.5, 1.0, 1.2, 1.5, 2.0):
        if v <= vmax:
            dash = "" if v == 1.0 else ' stroke-dasharray="4 3"'
            s.append(
                f'<line x1="{left}" x2="{width - 10}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                f'stroke="#999"{dash}/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                f'text-anchor="end">{v:.1f}x</text>'
            )
    x = left + 10
    for m in models:
        x0 = x
        for k in groups[m]:
            r = kiln[k][0] / llama[k][0]
            s.append(
                f'<rect x="{x}" y="{y(1.0):.1f}" width="{bw}" height="{h - (y(1.0) - top):.1f}" '
                f'fill="#bbb"><title>llama.cpp {llama[k][0]:.1f} tok/s</title></rect>'
            )
            s.append(
                f'<rect x="{x + bw}" y="{y(r):.1f}" width="{bw}" height="{top + h - y(r):.1f}" '
                f'fill="#d2691e"><title>kiln {kiln[k][0]:.1f} tok/s ({r:.2f}x)</title></rect>'
            )
            s.append(
                f'<text x="{x + bw}" y="{top + h + 14}" text-anchor="middle">{k[2]}</text>'
                f'<text x="{x + bw}" y="{top + h + 27}" text-anchor="middle">t{k[1]}</text>'
            )
            x += 2 * bw + gap
        s.append(
            f'<text x="{(x0 + x - gap) / 2:.0f}" y="{top + h + 47}" text-anchor="middle" '
            f'font-size="12">{short(m)}</text>'
        )
        x += panel_gap
    s.append(
        f'<rect x="{left}" y="{height - 16}" width="10" height="10" fill="#bbb"/>'
        f'<text x="{left + 14}" y="{height - 7}">llama.cpp (1.0)</text>'
        f'<rect x="{left + 110}" y="{height - 16}" width="10" height="10" fill="#d2691e"/>'
        f'<text x="{left + 124}" y="{height - 7}">kiln</text>'
    )
    s.append("</svg>")
    return "\n".join(s) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("kiln", help="kiln bench -o json output (comma-separated list)")
    ap.add_argument("llama", help="llama-bench -o json output (comma-separated list)")
    ap.add_argument("--svg", help="write the chart here")
    a = ap.parse_args()
    kiln, llama = load(a.kiln), load(a.llama)
    md, keys = table(kiln, llama)
    if not keys:
        sys.exit("no (model, threads, test) rows in common")
    print(md)
    if a.svg:
        with open(a.svg, "w", encoding="utf-8") as f:
            f.write(svg(kiln, llama, keys))


if __name__ == "__main__":
    main()
