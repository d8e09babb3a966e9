"""``simloom timeline``: the HTML timeline of a failing universe, checked as a file
(self-contained, the same bytes every time, escaped) and in a real headless
Chromium (the OS package, which ``scripts/bootstrap.sh browser`` installs): it
loads with no console error and no request, one lane per host, an arrow per
message, a mark per deviation and per fault, and the nearest passing universe's
parting.

The browser test is never skipped: without Chromium or Playwright it fails and
says how to install them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import simloom
from simloom import cli

#: As root (CI) Chromium's sandbox cannot start; a container's /dev/shm is small.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage"]

#: A task name that would end the page's data <script> if it were not escaped.
EVIL = "</script><script>window.injected = 1</script><!--"

PROGRAM = textwrap.dedent(
    """
    import asyncio
    import simloom

    EVIL = {evil!r}


    async def serve(reader, writer):
        while line := await reader.readline():
            writer.write(b"ok " + line)
            await writer.drain()
        writer.close()


    async def client(name, count):
        reader, writer = await asyncio.open_connection("server", 7000)
        for i in range(count):
            writer.write(f"{{name}} {{i}}\\n".encode())
            await reader.readline()
        writer.close()


    async def main(world):
        async def listen():
            listener = await asyncio.start_server(serve, None, 7000)
            await listener.serve_forever()

        world.host("server").spawn(listen)
        await world.sleep(0.01)
        alice = world.host("alice").run(client("alice", 2), name=EVIL)
        world.net.partition(world.host("bob"), "server")
        await world.sleep(0.05)
        world.net.heal()
        bob = world.host("bob").run(client("bob", 1))
        await asyncio.gather(alice, bob)
        world.host("alice").crash()
        world.host("alice").restart()
        first = simloom.draw("first", 4)
        second = simloom.draw("second", 4)
        assert not (first and second), "both draws came up"
    """
).format(evil=EVIL)

#: The world's hosts in the program above.
HOSTS = ["main", "server", "alice", "bob"]


@pytest.fixture(scope="module")
def failure(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shrunk failure of PROGRAM, explored with the command line."""
    directory = tmp_path_factory.mktemp("timeline")
    program = directory / "three_hosts.py"
    program.write_text(PROGRAM)
    status = cli.main(
        [
            "explore",
            f"{program}:main",
            "--runs",
            "200",
            "--no-database",
            "--artifacts",
            str(directory / "failures"),
        ]
    )
    assert status == cli.FAILED
    (tape,) = sorted((directory / "failures").glob("*.tape.json"))
    return tape


@pytest.fixture(scope="module")
def page_file(failure: Path) -> Path:
    out = failure.parent / "timeline.html"
    assert cli.main(["timeline", str(failure), "-o", str(out)]) == cli.OK
    return out


def embedded(page: Path) -> dict[str, Any]:
    text = page.read_text("utf-8")
    match = re.search(
        r'<script type="application/json" id="simloom-data">(.*?)</script>', text, re.S
    )
    assert match is not None
    data: dict[str, Any] = json.loads(match[1])
    return data


# ------------------------------------------------------------------ the file


def test_the_timeline_is_one_self_contained_file(page_file: Path) -> None:
    text = page_file.read_text("utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # Nothing from outside: no linked style, script, image, font or request.
    assert not re.search(r"<(link|img|iframe|object|embed)\b", text)
    assert not re.search(
        r"\bsrc\s*=|@import|@font-face|fetch\(|XMLHttpRequest|url\(['\"]?http", text
    )
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls == {"http://www.w3.org/2000/svg"}  # the SVG namespace, never fetched


def test_the_model_has_a_lane_per_host_messages_faults_and_the_deviations(
    failure: Path, page_file: Path
) -> None:
    data = embedded(page_file)
    assert [host["name"] for host in data["hosts"]] == HOSTS
    steps = {step["n"]: step for step in data["steps"]}
    # Two requests and replies of alice's, one of bob's: each delivery wakes a reader.
    assert len(data["messages"]) >= 6
    for message in data["messages"]:
        sender, receiver = steps[message["from"]], steps[message["to"]]
        assert sender["host"] == message["src"] and receiver["host"] == message["dst"]
        assert message["from"] < message["via"] < message["to"]
        assert message["src"] != message["dst"]
    assert {message["dst"] for message in data["messages"]} >= {"server", "alice", "bob"}
    # The faults, when and where; a partition lasts until its heal, a crash until
    # the restart.
    kinds = [fault["kind"] for fault in data["faults"]]
    assert kinds == ["partition", "heal", "crash", "restart"]
    partition, heal, crash, restart = data["faults"]
    assert partition["until"] == heal["step"] and partition["sides"] == [["bob"], ["server"]]
    assert crash["until"] == restart["step"] and crash["hosts"] == ["alice"]
    assert data["locations"][partition["at"]]["name"] == "three_hosts.py"
    # Every deviation of the tape, told as the report tells it.
    tape = simloom.Tape.load(failure)
    assert [(d["decision"], d["value"]) for d in data["deviations"]] == list(tape.deviations)
    labels = {d["label"] for d in data["deviations"]}
    assert {"draw:first", "draw:second"} <= labels
    assert any(
        "draw:first = " in d["text"] and "three_hosts.py:" in d["text"] for d in data["deviations"]
    )
    # Undoing one draw passes: where that universe parts from the failure.
    nearest = data["nearest"]
    assert nearest is not None and nearest["step"] in steps and nearest["passing"]
    # What the passing run does after the two part, placed on the same board.
    rows = {
        (host["name"], row)
        for host in [*data["hosts"], data["world"]]
        for row in host["rows"] + host["passing_rows"]
    }
    assert nearest["after"] and all((g["lane"], g["row"]) in rows for g in nearest["after"])
    parting = next(k for k, step in enumerate(data["steps"]) if step["n"] == nearest["step"])
    assert nearest["after"][0]["i"] == (parting if nearest["within"] else nearest["common"])
    assert nearest["decision"] in dict(tape.deviations)


def test_the_same_artifact_gives_the_same_bytes(failure: Path, page_file: Path) -> None:
    again = failure.parent / "again.html"
    assert cli.main(["timeline", str(failure), "-o", str(again)]) == cli.OK
    assert again.read_bytes() == page_file.read_bytes()
    # ... in another process too (another hash seed, other ids in memory).
    other = failure.parent / "other.html"
    subprocess.run(
        [sys.executable, "-m", "simloom", "timeline", str(failure), "-o", str(other)],
        check=True,
        capture_output=True,
        timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert other.read_bytes() == page_file.read_bytes()


def test_a_task_name_cannot_end_the_data_script(page_file: Path) -> None:
    text = page_file.read_text("utf-8")
    # The template's own two scripts end; the name's "</script>" and "<!--" are escaped.
    assert text.count("</script>") == 2
    assert "window.injected" in text and "<script>window.injected" not in text
    data = embedded(page_file)
    assert any(step["task"] == EVIL for step in data["steps"])


# ------------------------------------------------------------------ the browser


def chromium() -> str:
    """The system Chromium; fails (never skips) when it is missing."""
    path = os.environ.get("SIMLOOM_CHROMIUM") or shutil.which("chromium")
    if not path:
        pytest.fail(
            "Chromium is not installed: the timeline's browser test needs the OS package. "
            "Install it with `scripts/bootstrap.sh browser` (apt-get install -y chromium; "
            "`make test` and `make setup` run it) or set SIMLOOM_CHROMIUM=/path/to/chromium."
        )
    return path


def test_without_chromium_the_browser_test_fails_saying_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SIMLOOM_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.fail.Exception, match=r"scripts/bootstrap.sh browser"):
        chromium()


def test_the_timeline_loads_in_headless_chromium_with_its_lanes_arrows_and_marks(
    page_file: Path,
) -> None:
    executable = chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is missing: `make setup` installs the dev dependencies")
    data = embedded(page_file)
    url = page_file.resolve().as_uri()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            requests: list[str] = []
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console {message.type}: {message.text}")
                    if message.type in ("error", "warning")
                    else None
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            page.wait_for_selector("html[data-simloom-timeline=drawn]", timeout=10_000)

            assert problems == []
            assert requests == [url]
            lanes = page.locator("#chart .host-lane")
            assert lanes.count() == len(HOSTS)
            assert [lanes.nth(k).get_attribute("data-host") for k in range(len(HOSTS))] == HOSTS
            assert page.locator("#chart .message").count() == len(data["messages"])
            assert page.locator("#chart .deviation").count() == len(data["deviations"])
            assert page.locator("#chart .fault-mark").count() == len(data["faults"])
            assert page.locator("#chart .fault-band.crash").count() == 1
            assert page.locator("#chart .divergence").count() == 1
            assert page.locator("#chart .step").count() == len(data["steps"])
            # The task name stayed text: no script of its own ran.
            assert page.evaluate("window.injected") is None
            assert page.locator("script").count() == 2

            # Click a step that received a message: its details name its line and sender.
            message = data["messages"][0]
            page.locator(f'#chart .step[data-step="{message["to"]}"]').click()
            details = page.locator("#details").inner_text()
            assert f"step #{message['to']}" in details
            assert "woken by: #" in details and "received a message from" in details
            # ... and the board draws a line to the step that woke it and to each it woke.
            clicked = next(step for step in data["steps"] if step["n"] == message["to"])
            assert page.locator("#chart .causes line").count() == 1 + len(clicked["woke"])
            woken_by = page.locator(f'#chart .step[data-step="{clicked["parent"]}"]')
            assert "related" in (woken_by.get_attribute("class") or "")
            # The right arrow walks on to the same task's next step.
            later = [
                step["n"]
                for step in data["steps"]
                if step["n"] > clicked["n"]
                and (step["lane"], step["row"]) == (clicked["lane"], clicked["row"])
            ]
            assert later  # the server's reader reads on
            page.keyboard.press("ArrowRight")
            assert f"step #{later[0]} " in page.locator("#details").inner_text()
            # A step a decision chose names what else was ready.
            chosen = next((step for step in data["steps"] if "alternatives" in step), None)
            assert chosen is not None
            page.locator(f'#chart .step[data-step="{chosen["n"]}"]').dispatch_event("click")
            details = page.locator("#details").inner_text()
            assert f"instead of {chosen['alternatives']['count']} other ready: " in details
            # The nearest passing universe's steps after it parts, on request.
            assert page.locator("#chart .ghost").count() == 0
            page.check("#compare")
            after = data["nearest"]["after"]
            assert page.locator("#chart .ghost").count() == len(after) > 0
            page.locator("#chart .ghost").first.dispatch_event("click")
            details = page.locator("#details").inner_text()
            assert f"the nearest passing universe, step #{after[0]['n']}" in details
            page.uncheck("#compare")
            # The filter dims every step not of bob's host.
            page.fill("#filter", "bob")
            page.wait_for_selector("#chart .step.dim")
            fields = ("task", "coroutine", "host", "lane", "row", "who")
            bobs = [s for s in data["steps"] if any("bob" in str(s[f] or "") for f in fields)]
            assert {s["lane"] for s in bobs} == {"bob"}
            assert page.locator("#chart .step:not(.dim)").count() == len(bobs) > 0
            # Unticking a host hides its lane.
            page.locator("#host-toggles input").nth(HOSTS.index("alice")).uncheck()
            assert page.locator("#chart .host-lane").count() == len(HOSTS) - 1
            assert problems == []
        finally:
            browser.close()
