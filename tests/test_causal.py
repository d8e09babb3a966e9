"""The causal trace: for every step, the step that woke it, its task and the line
it resumes at, checked on programs whose wake-up graph is known; and the schedule
told in code in the report."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import simloom
from simloom import World, _causal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def traced(
    main: Any, tape: simloom.Tape | None = None
) -> tuple[simloom.RunResult, _causal.CausalTrace]:
    return _causal.traced(lambda: simloom.replay(main, tape or simloom.Tape()))


def steps_of(trace: _causal.CausalTrace, task: str) -> list[_causal.CausalStep]:
    return [step for step in trace.steps if step.task == task]


def line_of(text: str) -> int:
    """The line of this file holding ``text`` (the program's await, say)."""
    lines = Path(__file__).read_text().splitlines()
    (number,) = [
        i for i, line in enumerate(lines, start=1) if text in line and f'"{text}"' not in line
    ]
    return number


def test_a_pipeline_consumer_is_woken_by_the_producer_step_that_put() -> None:
    async def main() -> list[int]:
        queue: asyncio.Queue[int] = asyncio.Queue()
        got: list[int] = []

        async def producer() -> None:
            for item in range(3):
                await asyncio.sleep(1)
                queue.put_nowait(item)  # (the put that wakes the consumer)

        async def consumer() -> None:
            for _ in range(3):
                got.append(await queue.get())  # consumer waits here

        await asyncio.gather(
            asyncio.create_task(producer(), name="producer"),
            asyncio.create_task(consumer(), name="consumer"),
        )
        return got

    result, trace = traced(main)
    assert result.value == [0, 1, 2]
    wakeups = [s for s in steps_of(trace, "consumer") if not s.starts]
    assert len(wakeups) == 3
    for step in wakeups:
        # Where it resumes: the line of its await, in its own function.
        assert step.location is not None
        assert step.location.line == line_of("consumer waits here")
        assert step.location.function.endswith("consumer")
        # What woke it: the producer's step that put the item (after its sleep).
        parent = trace.woken_by(step)
        assert parent is not None and parent.task == "producer"
        assert parent.location is not None and parent.location.line == line_of(
            "await asyncio.sleep(1)"
        )
        assert parent.time_ns == step.time_ns


def test_a_lock_handoff_wakes_the_waiter_from_the_releasing_step() -> None:
    async def main() -> None:
        lock = asyncio.Lock()
        order = []

        async def holder() -> None:
            async with lock:
                await asyncio.sleep(5)  # holder sleeps with the lock
                order.append("holder")

        async def waiter() -> None:
            await asyncio.sleep(0)
            async with lock:  # waiter blocks here
                order.append("waiter")

        await asyncio.gather(
            asyncio.create_task(holder(), name="holder"),
            asyncio.create_task(waiter(), name="waiter"),
        )
        assert order == ["holder", "waiter"]

    result, trace = traced(main)
    result.raise_error()
    blocked = [
        s
        for s in steps_of(trace, "waiter")
        if s.location and s.location.line == line_of("waiter blocks here")
    ]
    (handoff,) = blocked  # one resumption, after the release
    assert handoff.time_ns == 5_000_000_000
    releaser = trace.woken_by(handoff)
    assert releaser is not None and releaser.task == "holder"
    assert releaser.location is not None and releaser.location.line == line_of(
        "holder sleeps with the lock"
    )
    # The holder's own resumption was woken by its timer, armed by its step at t=0.
    timer = trace.woken_by(releaser)
    assert timer is not None and timer.task is None and "set_result" in timer.label
    armed = trace.woken_by(timer)
    assert armed is not None and armed.task == "holder" and armed.time_ns == 0


def test_a_message_round_trip_links_the_reply_back_to_the_request() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()  # server reads the request
        writer.write(b"re: " + request)
        await writer.drain()
        writer.close()

    async def main(world: World) -> bytes:
        async def server() -> None:
            listener = await asyncio.start_server(serve, None, 9000)
            await listener.serve_forever()

        world.host("server").spawn(lambda: server())
        await world.sleep(0.01)

        async def client() -> bytes:
            reader, writer = await asyncio.open_connection("server", 9000)
            writer.write(b"ping\n")  # client sends
            reply = await reader.read()  # client waits for the reply
            writer.close()
            return reply

        return await asyncio.create_task(client(), name="client")

    result, trace = traced(main)
    assert result.value == b"re: ping\n"
    (reply,) = [
        s
        for s in steps_of(trace, "client")
        if s.location and s.location.line == line_of("client waits for the reply") and not s.starts
    ][-1:]
    chain = trace.chain(reply, limit=200)
    # Back from the client's reply: a delivery of the world's, the server's step
    # that read the request and wrote the reply, the delivery of the request, and
    # the client's step that sent it (it resumed from open_connection and wrote).
    client_reply, delivery, server_step, request_delivery, sender = chain[:5]
    assert client_reply.task == "client"
    assert delivery.task is None and request_delivery.task is None
    assert "_due" in delivery.label
    assert server_step.location is not None
    assert server_step.location.line == line_of("server reads the request")
    assert server_step.task not in (None, "client")
    assert sender.task == "client" and sender.location is not None
    assert sender.location.line == line_of("reader, writer = await asyncio.open_connection")
    assert [s.time_ns for s in chain[:5]] == sorted((s.time_ns for s in chain[:5]), reverse=True)
    # Each step names its host: the server's on "server", the client's on "main",
    # the world's deliveries on none.
    assert server_step.host == "server"
    assert client_reply.host == sender.host == "main"
    assert delivery.host is None and request_delivery.host is None


def test_recording_changes_nothing_the_universe_does() -> None:
    sys.path.insert(0, str(EXAMPLES))
    import bank_race

    for seed in range(10):
        found = simloom.run(bank_race.main, seed=seed)
        replayed, trace = _causal.traced(lambda t=found.tape: simloom.replay(bank_race.main, t))
        assert replayed.digest == found.digest and replayed.event_log_bytes == found.event_log_bytes
        assert len(trace.steps) <= found.steps
        assert [s.step for s in trace.steps] == sorted(s.step for s in trace.steps)


def test_the_report_tells_the_bank_race_in_code() -> None:
    sys.path.insert(0, str(EXAMPLES))
    import bank_race
    from hypothesis import settings

    test = settings(database=None)(simloom.test(runs=200)(bank_race.main))
    try:
        test()
    except AssertionError as exc:
        report = "\n".join(getattr(exc, "__notes__", []))
    else:
        raise AssertionError("the bank race was not found")
    told = report.split("the schedule in code:\n", 1)[1]
    lines = [line.strip() for line in told.splitlines() if line.strip().startswith("decision #")]
    assert lines, report
    # The tasks by their coroutines and the race's lines, in code.
    assert "(bob)" in told and "(alice)" in told
    assert "bank_race.py:" in told
    assert "ahead of `Task-" in lines[0]
    # The why: the nearest passing universe and where it parts from the failure.
    nearest = told.split("nearest passing universe: ", 1)[1]
    assert nearest.startswith("decision #") and "then part:" in nearest
    assert "the failure, step #" in nearest and "the passing run, step #" in nearest


def test_the_report_tells_bpo42130_as_the_two_timers_of_the_race() -> None:
    sys.path.insert(0, str(EXAMPLES))
    import bpo42130
    from hypothesis import settings

    test = settings(database=None)(simloom.test(runs=2000)(bpo42130.main_legacy))
    try:
        test()
    except AssertionError as exc:
        report = "\n".join(getattr(exc, "__notes__", []))
    else:
        raise AssertionError("bpo-42130 was not found")
    told = report.split("the schedule in code:\n", 1)[1]
    # Two timers due at one instant: the response's (fetch's sleep) and the
    # shutdown's (scenario's sleep); each named by its task and its line.
    assert "(fetch), waiting at bpo42130.py:" in told, report
    assert "in scenario `await asyncio.sleep(RESPONSE_AT)`" in told, report


def test_a_faithful_stall_is_told_as_a_long_iteration() -> None:
    async def main() -> None:
        async def sleepy(delay: float) -> None:
            await asyncio.sleep(delay)

        first = asyncio.create_task(sleepy(0.1))
        await asyncio.sleep(0)
        second = asyncio.create_task(sleepy(0.3))
        await asyncio.gather(first, second)

    for seed in range(200):
        found = simloom.run(main, seed=seed, scheduler="faithful")
        labels = _causal.decision_labels(found)
        stalls = [(i, v) for i, v in found.tape.deviations if labels.get(i) == "loop.stall"]
        if stalls:
            break
    else:
        raise AssertionError("no faithful universe stalled in 200 seeds")
    replayed, trace = _causal.traced(lambda: simloom.replay(main, found.tape, scheduler="faithful"))
    assert replayed.digest == found.digest
    (line, *_) = _causal.told_in_code(trace, stalls, labels)
    assert line.startswith(f"decision #{stalls[0][0]}: a loop iteration ran long (loop.stall)")
    assert "next ran " in line


def test_each_decision_keeps_its_alternatives() -> None:
    async def main() -> None:
        async def worker(n: int) -> None:
            await asyncio.sleep(0)

        await asyncio.gather(*(asyncio.create_task(worker(n), name=f"w{n}") for n in range(12)))

    found = simloom.run(main, seed=3, scheduler="random")
    _, trace = _causal.traced(lambda: simloom.replay(main, found.tape))
    decided = [step for step in trace.steps if step.decisions[1] > step.decisions[0]]
    assert decided, "a random walk over 12 ready tasks decides"
    for step in decided:
        # The others ready at the decision: none of them is the step itself, and
        # those it ran ahead of come first.
        assert step.ready_others >= len(step.alternatives) > 0
        assert len(step.alternatives) <= _causal.MAX_ALTERNATIVES
        if step.task is not None:  # a task is ready once: not among the others
            assert all(other.label != step.task for other in step.alternatives)
        assert (
            step.alternatives[: len(step.passed_over)] == step.passed_over[: len(step.alternatives)]
        )
    first = decided[0]
    words = _causal.alternatives_words(first)
    assert words.startswith(f"instead of {first.ready_others} other ready: ")
    # The first step of a 12-task gather chooses among all twelve workers.
    widest = max(decided, key=lambda s: s.ready_others)
    assert widest.ready_others >= 11
    assert len(widest.alternatives) == _causal.MAX_ALTERNATIVES
