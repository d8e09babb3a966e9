"""Run every ``benchmarks/bench_*.py`` and print a combined summary.

Each benchmark runs in its own interpreter (``sys.executable``), so one benchmark's
heap (the million-object ballast, say) cannot slow the next one down. Its output is
shown as it runs; its results come back through ``--json``.

    python benchmarks/run_all.py                 # all benchmarks, text summary
    python benchmarks/run_all.py --markdown      # summary as Markdown tables (docs/benchmarks.md)
    python benchmarks/run_all.py --output summary.md --markdown
    python benchmarks/run_all.py --quick         # smaller workloads, best of 2 (smoke test)
    python benchmarks/run_all.py steps timers    # only bench_steps.py and bench_timers.py

Exit status: 0 if every benchmark ran (goal misses are reported, not failures: these
are measurements, not tests), 1 if a benchmark crashed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _common import machine_info

HERE = Path(__file__).resolve().parent


def run_bench(script: Path, extra: list[str]) -> dict[str, Any] | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "result.json")
        print(f"\n######## {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script), "--json", out, *extra], check=False)
        if proc.returncode != 0 or not os.path.exists(out):
            print(f"run_all: {script.name} failed (exit {proc.returncode})", file=sys.stderr)
            return None
        with open(out, encoding="utf-8") as f:
            result: dict[str, Any] = json.load(f)
            return result


def fmt_value(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}"


def text_summary(info: dict[str, str], results: list[dict[str, Any]]) -> str:
    lines = [
        "",
        "=" * 78,
        f"SUMMARY  {info['python']} | {info['cpu']} ({info['cores']} cores) | simloom {info['simloom']}",
        "=" * 78,
    ]
    for r in results:
        lines.append(f"\n{r['title']}")
        case_w = max((len(m["case"]) for m in r["measurements"]), default=0)
        contender_w = max((len(m["contender"]) for m in r["measurements"]), default=0)
        for m in r["measurements"]:
            lines.append(
                f"  {m['case']:<{case_w}} {m['contender']:<{contender_w}}"
                f" {fmt_value(m['value'], m['unit']):>22}   {m['ratios']}"
            )
        for n in r["notes"]:
            lines.append(f"  note: {n}")
    lines.append("\nGoals")
    for r in results:
        for g in r["goals"]:
            lines.append(f"  {'PASS' if g['passed'] else 'MISS'}  {g['text']}: {g['measured']}")
    goals = [g for r in results for g in r["goals"]]
    lines.append(f"\n{sum(g['passed'] for g in goals)}/{len(goals)} goals PASS")
    return "\n".join(lines)


def markdown_summary(info: dict[str, str], results: list[dict[str, Any]]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        f"Machine: {info['cpu']}, {info['cores']} cores; {info['python']}; {info['platform']};"
        f" simloom {info['simloom']}.",
        "",
    ]
    for r in results:
        lines += [
            f"#### {r['title']}",
            "",
            "| case | loop / runner | value | ratios |",
            "| --- | --- | ---: | --- |",
        ]
        for m in r["measurements"]:
            lines.append(
                f"| {cell(m['case'])} | {cell(m['contender'])} | {fmt_value(m['value'], m['unit'])}"
                f" | {cell(m['ratios'])} |"
            )
        lines.append("")
        for n in r["notes"]:
            lines.append(f"- {n}")
        if r["notes"]:
            lines.append("")
    lines += ["#### Goals", "", "| goal | measured | result |", "| --- | --- | --- |"]
    for r in results:
        for g in r["goals"]:
            verdict = "**PASS**" if g["passed"] else "**MISS**"
            lines.append(f"| {cell(g['text'])} | {cell(g['measured'])} | {verdict} |")
    goals = [g for r in results for g in r["goals"]]
    lines += ["", f"{sum(g['passed'] for g in goals)}/{len(goals)} goals PASS.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmarks/bench_*.py.")
    parser.add_argument("names", nargs="*", help="only these (e.g. steps timers)")
    parser.add_argument("--markdown", action="store_true", help="print the summary as Markdown")
    parser.add_argument("--output", metavar="PATH", help="also write the summary to PATH")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    parser.add_argument("--quick", action="store_true", help="smaller workloads, best of 2")
    parser.add_argument("--repeat", type=int, help="best of N (default: each benchmark's 5)")
    args = parser.parse_args()

    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        wanted = {n.removeprefix("bench_").removesuffix(".py") for n in args.names}
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in wanted]
        if not scripts:
            parser.error(f"no benchmark matches {args.names}")
    extra = ["--quick"] if args.quick else []
    if args.repeat:
        extra += ["--repeat", str(args.repeat)]

    results, failed = [], []
    for script in scripts:
        result = run_bench(script, extra)
        if result is None:
            failed.append(script.name)
        else:
            results.append(result)

    info = machine_info()
    summary = (markdown_summary if args.markdown else text_summary)(info, results)
    print(summary)
    if args.output:
        Path(args.output).write_text(summary + "\n", encoding="utf-8")
    if args.json:
        Path(args.json).write_text(
            json.dumps({"machine": info, "results": results}, indent=2) + "\n", encoding="utf-8"
        )
    if failed:
        print(f"\nrun_all: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
