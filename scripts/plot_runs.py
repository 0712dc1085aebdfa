#!/usr/bin/env python3
"""Learning curves and a summary table from run directories, with no dependencies beyond Python.

    python3 scripts/plot_runs.py --output docs/pendulum-curves.svg DPPO=runs/compare/dppo-s* Gaussian=runs/compare/gaussian-s*

Each LABEL=GLOB groups runs (one per seed). The SVG plots the mean training-episode return
(`charts/episodic_return` of metrics.jsonl) against environment steps, one line per run, with the group
mean in bold; the table (markdown, on stdout) lists each run's initial and final evaluation return.
"""
import argparse, glob, json, math, os

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]


def load(run):
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl")) if line.strip()]
    curve = [(r["env_steps"], r["charts/episodic_return"]) for r in rows
             if "charts/episodic_return" in r and r["charts/episodic_return"] == r["charts/episodic_return"]]
    summary = json.load(open(os.path.join(run, "summary.json")))
    return curve, summary


def svg(groups, path, width=720, height=420, margin=60):
    points = [p for runs in groups.values() for curve, _ in runs for p in curve]
    x_max = max(p[0] for p in points)
    y_min = min(p[1] for p in points); y_max = max(p[1] for p in points)
    pad = 0.05 * (y_max - y_min or 1); y_min -= pad; y_max += pad
    sx = lambda x: margin + (width - 2 * margin) * x / x_max
    sy = lambda y: height - margin - (height - 2 * margin) * (y - y_min) / (y_max - y_min)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<line x1="{margin}" y1="{height - margin}" x2="{width - margin}" y2="{height - margin}" stroke="black"/>',
           f'<line x1="{margin}" y1="{margin}" x2="{margin}" y2="{height - margin}" stroke="black"/>',
           f'<text x="{width / 2}" y="{height - 20}" text-anchor="middle">environment steps</text>',
           f'<text x="16" y="{height / 2}" transform="rotate(-90 16 {height / 2})" text-anchor="middle">training episode return</text>']
    for k in range(5):
        x = x_max * k / 4; y = y_min + (y_max - y_min) * k / 4
        out.append(f'<text x="{sx(x)}" y="{height - margin + 16}" text-anchor="middle">{int(x):,}</text>')
        out.append(f'<text x="{margin - 6}" y="{sy(y) + 4}" text-anchor="end">{y:.0f}</text>')
    for index, (label, runs) in enumerate(groups.items()):
        color = COLORS[index % len(COLORS)]
        for curve, _ in runs:
            out.append('<polyline fill="none" stroke="%s" stroke-opacity="0.35" points="%s"/>' % (color, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in curve)))
        steps = sorted({x for curve, _ in runs for x, _ in curve})
        mean = [(x, sum(y for curve, _ in runs for cx, y in curve if cx == x) / sum(1 for curve, _ in runs for cx, _ in curve if cx == x)) for x in steps]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2.5" points="%s"/>' % (color, " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in mean)))
        out.append(f'<text x="{width - margin - 150}" y="{margin + 18 * index}" fill="{color}">{label} ({len(runs)} seeds)</text>')
    out.append("</svg>")
    open(path, "w").write("\n".join(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", help="LABEL=GLOB of run directories")
    parser.add_argument("--output", help="SVG file for the learning curves")
    args = parser.parse_args()
    groups = {}
    for spec in args.groups:
        label, pattern = spec.split("=", 1)
        runs = sorted(glob.glob(pattern))
        if not runs:
            raise SystemExit(f"no run directories match {pattern}")
        groups[label] = [load(run) + (run,) for run in runs]
    print("| method | run | initial eval return | final eval return | improvement | env steps | learner wall time |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, runs in groups.items():
        finals = []
        for curve, summary, run in runs:
            first, last = summary["initial_eval_return"], summary["final_eval_return"]
            finals.append(last)
            print(f"| {label} | {os.path.basename(run)} | {first:.1f} ± {summary['initial_eval_return_std']:.1f} | {last:.1f} ± {summary['final_eval_return_std']:.1f} "
                  f"| {last - first:+.0f} | {summary['env_steps']:,} | {summary['wall_seconds']:.0f} s |")
        mean = sum(finals) / len(finals)
        spread = math.sqrt(sum((f - mean) ** 2 for f in finals) / max(len(finals) - 1, 1))
        print(f"| **{label}** | mean over {len(finals)} seeds | | **{mean:.1f}** (sd {spread:.1f}) | | | |")
    if args.output:
        svg({label: [(c, s) for c, s, _ in runs] for label, runs in groups.items()}, args.output)


if __name__ == "__main__":
    main()
