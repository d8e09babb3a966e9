"""Make docs/img/timeline-raft.png: the toy Raft's double vote, as ``simloom
timeline`` draws it, photographed in headless Chromium (the OS package; ``make
screenshot`` installs it if missing and runs this from the repository's root).

It explores the planted bug with the command line (``simloom explore`` of
:data:`toy_raft_double_vote` below, 50 universes, no example database), writes the
failure's timeline, opens it, clicks the nearest passing universe's mark so the
details say where the two runs part, and saves a PNG of the page down to them.

    python scripts/timeline_screenshot.py [--out docs/img/timeline-raft.png] [--html FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import toy_raft  # noqa: E402

#: As root (CI) Chromium's sandbox cannot start; a container's /dev/shm is small.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]

#: The failing program the picture shows (a target for ``simloom explore``).
toy_raft_double_vote = toy_raft.scenario_main(toy_raft.DOUBLE_VOTE, toy_raft.QUICK)

TARGET = "scripts/timeline_screenshot.py:toy_raft_double_vote"


def main() -> int:
    from playwright.sync_api import sync_playwright
    from simloom import cli

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "timeline-raft.png")
    parser.add_argument("--html", type=Path, help="also keep the timeline's HTML here")
    args = parser.parse_args()
    chromium = os.environ.get("SIMLOOM_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        print("Chromium is missing: run `scripts/bootstrap.sh browser`", file=sys.stderr)
        return 2
    os.chdir(ROOT)  # the artifact names its target relative to here
    with tempfile.TemporaryDirectory() as scratch:
        artifacts = Path(scratch) / "failures"
        status = cli.main(
            ["explore", TARGET, "--runs", "50", "--no-database", "--artifacts", str(artifacts)]
        )
        if status != cli.FAILED:
            print("the toy Raft's planted bug was not found", file=sys.stderr)
            return 1
        (tape,) = sorted(artifacts.glob("*.tape.json"))
        page_file = args.html or Path(scratch) / "timeline.html"
        if cli.main(["timeline", str(tape), "-o", str(page_file)]) != cli.OK:
            return 1
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(page_file.resolve().as_uri())
            page.wait_for_selector("html[data-simloom-timeline=drawn]")
            # The whole board, not a scrolled window of it.
            page.add_style_tag(content="#board { max-height: none; }")
            page.locator("#zoom-fit").click()  # the whole universe in the picture
            page.locator("#chart .divergence").dispatch_event("click")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            # Down to the details box (the lists under it are the report's words).
            bottom = page.evaluate(
                "Math.ceil(document.getElementById('details').getBoundingClientRect().bottom"
                " + window.scrollY + 12)"
            )
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(
                path=str(args.out),
                full_page=True,
                clip={"x": 0, "y": 0, "width": width, "height": bottom},
            )
            browser.close()
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
