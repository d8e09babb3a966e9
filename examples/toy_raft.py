"""A toy Raft: leader election over the simulated network, term and vote on disk.

Five nodes elect a leader as the Raft paper describes (RequestVote, AppendEntries
heartbeats, randomized election timeouts; no log). Each node is ordinary asyncio
code: one server (``asyncio.start_server``), line-delimited JSON over streams to its
peers (``asyncio.open_connection`` by host name), every call under a timeout, a
broken connection reopened on the next call, and its current term and vote made
durable on its host's disk (write a temporary file, fsync, rename, fsync the
directory) before it answers.

:func:`election_under_faults` is the test. A nemesis partitions the network (a pair
from the other three, or two pairs with the fifth node bridging them), crashes nodes
and restarts them; then the network heals, every node comes back, and the cluster
must settle on one leader that every node follows. Throughout, an observer outside
the cluster keeps the record Raft's *Election Safety* is about (term → leader) and
fails the universe the moment a term has two leaders.

The planted bug (``--bug double-vote``) is the classic one: a node grants its vote
without making it durable first. A node that votes, loses power and comes back has
forgotten the vote and may give it again in the same term; if two candidates can
both reach that voter, the term gets two leaders.

    python examples/toy_raft.py                             # the correct Raft survives
    python examples/toy_raft.py --bug double-vote           # two leaders in one term, shrunk
    python examples/toy_raft.py --bug double-vote --seed 6  # run one universe again

Owns: the Raft node, the election-safety observer, the nemesis, and the scenarios
that ``tests/test_toy_raft.py``, ``examples/demo.py`` and ``benchmarks/bench_raft.py``
run. Must not: reach into simloom's internals (it uses the world API,
``simloom.draw`` and ``simloom.reached`` only).
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import functools
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import simloom
from simloom.disk import Disk
from simloom.world import Host, World

#: Every node listens on this port on its own host.
RAFT_PORT = 7000

#: The planted bug's name, for ``--bug`` and ``planted_bug=``.
DOUBLE_VOTE = "double-vote"
PLANTED_BUGS = (DOUBLE_VOTE,)

#: Coverage labels (``simloom.reached``) of the faults the nemesis caused, and of the
#: check the planted bug defeats (a node refusing a second vote in one term).
FAULT_COVERAGE = ("nemesis.partition", "nemesis.crash", "nemesis.restart", "nemesis.heal")
RAFT_COVERAGE = ("raft.elected", "raft.vote_refused_already_voted")


@dataclass(frozen=True)
class Timing:
    """Raft's clocks, in (virtual) seconds.

    The election timeout is one of ``election_timeout_slots`` values spread evenly
    over ``[election_timeout_min, election_timeout_max)``, chosen by a tape draw: it
    replays and shrinks. Each node adds its own stagger to the draw, so even the
    canonical universe (every draw 0) elects a leader instead of splitting the vote
    forever.
    """

    heartbeat_interval: float = 0.5
    election_timeout_min: float = 1.5
    election_timeout_max: float = 3.0
    election_timeout_slots: int = 16
    rpc_timeout: float = 0.25
    retry_pause: float = 0.1

    def election_timeout(self, node_index: int) -> float:
        slots = self.election_timeout_slots
        slot = (simloom.draw("raft.election_timeout", slots) + 3 * node_index) % slots
        spread = self.election_timeout_max - self.election_timeout_min
        return self.election_timeout_min + slot * spread / slots


# ---------------------------------------------------------------- durable state


class DurableState:
    """A node's current term and vote, on its disk.

    ``save`` replaces the state atomically and durably: write a temporary file,
    fsync it, rename it over the state, fsync the directory. After ``save`` returns,
    a power cut leaves either the new state or, if the cut came first, the old one.
    """

    PATH = "raft/state.json"
    TEMPORARY = "raft/state.json.tmp"

    def __init__(self, disk: Disk) -> None:
        self.disk = disk

    def load(self) -> tuple[int, str | None]:
        if not self.disk.exists(self.PATH):
            return 0, None
        state = json.loads(self.disk.read_bytes(self.PATH))
        return state["term"], state["voted_for"]

    def save(self, term: int, voted_for: str | None) -> None:
        data = json.dumps({"term": term, "voted_for": voted_for}).encode()
        with self.disk.open(self.TEMPORARY, "wb") as file:
            file.write(data)
            file.fsync()
        self.disk.rename(self.TEMPORARY, self.PATH)
        self.disk.fsync_dir()


# ---------------------------------------------------------------- RPC


def encode(message: dict[str, Any]) -> bytes:
    """One message: a line of JSON."""
    return json.dumps(message).encode() + b"\n"


#: What a failed call can raise besides a timeout: a refused, reset or closed
#: connection, an unknown name (``socket.gaierror`` is an ``OSError``), a garbled line.
CALL_FAILURES = (OSError, EOFError, ValueError)


class PeerLink:
    """One node's connection to one peer: opened on first use and reopened after a
    failure, one call at a time, each under the RPC timeout.

    A call that times out leaves the connection open (a partition holds the bytes,
    it does not break the connection): every request carries an id, and a reply
    that comes too late is recognised by its id and skipped."""

    def __init__(self, peer: str, timing: Timing) -> None:
        self.peer = peer
        self.timing = timing
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()
        self._last_id = 0

    async def call(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """Send ``request`` and return the peer's reply, or ``None`` if there was
        none within the RPC timeout."""
        async with self._lock:
            self._last_id += 1
            try:
                return await asyncio.wait_for(
                    self._exchange({**request, "id": self._last_id}), self.timing.rpc_timeout
                )
            except TimeoutError:
                return None
            except CALL_FAILURES:
                self._close()
                return None

    async def _exchange(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.peer, RAFT_PORT)
        reader, writer = self._streams
        writer.write(encode(request))
        await writer.drain()
        while True:
            line = await reader.readline()
            if not line:
                raise EOFError(f"{self.peer} closed the connection")
            reply: dict[str, Any] = json.loads(line)
            if reply["id"] == request["id"]:
                return reply

    def _close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


# ---------------------------------------------------------------- the node


class Role(enum.Enum):
    """What a node is doing in its current term."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


class RaftNode:
    """One Raft server (leader election only; the log is left out).

    ``elected(term, name)`` is called the moment the node becomes leader: it is how
    the observer outside the cluster learns who led which term.
    """

    def __init__(
        self,
        name: str,
        peers: list[str],
        disk: Disk,
        *,
        index: int,
        elected: Callable[[int, str], None],
        timing: Timing,
        planted_bug: str | None = None,
    ) -> None:
        if planted_bug not in (None, *PLANTED_BUGS):
            raise ValueError(f"unknown planted bug {planted_bug!r}; known: {PLANTED_BUGS}")
        self.name = name
        self.index = index
        self.timing = timing
        self.planted_bug = planted_bug
        self._elected = elected
        self.durable = DurableState(disk)
        self.current_term, self.voted_for = self.durable.load()
        self.role = Role.FOLLOWER
        self.leader: str | None = None
        self.links = {peer: PeerLink(peer, timing) for peer in peers}
        self.majority = (len(peers) + 1) // 2 + 1
        self._votes: list[str] = []
        #: Drawn at boot and again for every candidacy (which is what ends split
        #: votes); a follower's resets reuse it, so the tape does not grow with
        #: every heartbeat.
        self.election_timeout = timing.election_timeout(index)
        self._election_timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def serve(self) -> None:
        """Run the node: answer peers, and stand for election when the leader is
        silent for an election timeout."""
        server = await asyncio.start_server(self._serve_connection, None, RAFT_PORT)
        self._arm_election_timer()
        async with server:
            await server.serve_forever()

    # -- state changes

    def _persist(self) -> None:
        self.durable.save(self.current_term, self.voted_for)

    def _arm_election_timer(self) -> None:
        if self._election_timer is not None:
            self._election_timer.cancel()
        self._election_timer = asyncio.get_running_loop().call_later(
            self.election_timeout, self._start_election
        )

    def _disarm_election_timer(self) -> None:
        if self._election_timer is not None:
            self._election_timer.cancel()
            self._election_timer = None

    def _follow(self, term: int) -> None:
        """Become a follower in ``term`` (a newer term forgets the old vote, on disk
        first)."""
        if term > self.current_term:
            self.current_term, self.voted_for = term, None
            self._persist()
        if self.role is not Role.FOLLOWER:
            self.role = Role.FOLLOWER
            self.leader = None
            self._arm_election_timer()

    def _start_election(self) -> None:
        self.current_term += 1
        self.voted_for = self.name
        self._persist()  # a candidate's own vote counts only once it is durable
        self.role = Role.CANDIDATE
        self.leader = None
        self._votes = [self.name]
        self.election_timeout = self.timing.election_timeout(self.index)
        self._arm_election_timer()
        term = self.current_term
        for link in self.links.values():
            self._spawn(self._canvass(link, term))

    def _become_leader(self) -> None:
        self.role = Role.LEADER
        self.leader = self.name
        self._disarm_election_timer()
        simloom.reached("raft.elected")
        self._elected(self.current_term, self.name)
        for link in self.links.values():
            self._spawn(self._send_heartbeats(link, self.current_term))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Start a background task, keeping a reference until it is done."""
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        # A method rather than self._tasks.discard: simloom keeps a scheduled
        # builtin method (and so this set) alive past the universe, which then leaks
        # when the set holds a crashed host's tasks (see tests/test_toy_raft.py,
        # test_a_builtin_method_callback_does_not_keep_a_universe_alive).
        task.add_done_callback(self._forget_task)

    def _forget_task(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)

    # -- as a candidate

    async def _canvass(self, link: PeerLink, term: int) -> None:
        """Ask one peer for its vote in ``term`` until it answers or the election
        is over."""
        request = {"type": "vote", "term": term, "candidate": self.name}
        while self.role is Role.CANDIDATE and self.current_term == term:
            reply = await link.call(request)
            if reply is None:
                await asyncio.sleep(self.timing.retry_pause)
                continue
            if reply["term"] > self.current_term:
                self._follow(reply["term"])
            elif reply["granted"] and self.role is Role.CANDIDATE and self.current_term == term:
                self._votes.append(link.peer)
                if len(self._votes) >= self.majority:
                    self._become_leader()
            return

    # -- as the leader

    async def _send_heartbeats(self, link: PeerLink, term: int) -> None:
        """Keep one follower in ``term`` for as long as this node leads it."""
        request = {"type": "append", "term": term, "leader": self.name}
        while self.role is Role.LEADER and self.current_term == term:
            reply = await link.call(request)
            if reply is not None and reply["term"] > self.current_term:
                self._follow(reply["term"])
                return
            await asyncio.sleep(self.timing.heartbeat_interval)

    # -- answering peers

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while line := await reader.readline():
                request = json.loads(line)
                writer.write(encode({**self._answer(request), "id": request["id"]}))
                await writer.drain()
        except (OSError, ValueError):
            pass  # the peer reset the connection or sent garbage: drop it
        except asyncio.CancelledError:
            # The server is shutting down. Ending quietly rather than re-raising
            # matters on early CPython 3.12 releases (3.12.1, for one): their stream
            # server calls task.exception() on a cancelled handler and reports the
            # CancelledError as an "Exception in callback" (3.13 checks first).
            pass
        finally:
            writer.close()

    def _answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["type"] == "vote":
            return self._on_request_vote(request["term"], request["candidate"])
        return self._on_append_entries(request["term"], request["leader"])

    def _on_request_vote(self, term: int, candidate: str) -> dict[str, Any]:
        if term > self.current_term:
            self._follow(term)
        granted = False
        if term == self.current_term:
            if self.voted_for in (None, candidate):
                granted = True
            else:
                simloom.reached("raft.vote_refused_already_voted")
        if granted:
            self.voted_for = candidate
            # The vote must be durable before the candidate can count it. The planted
            # bug skips this: the vote is only in memory when the reply leaves.
            if self.planted_bug != DOUBLE_VOTE:
                self._persist()
            self._arm_election_timer()
        return {"term": self.current_term, "granted": granted}

    def _on_append_entries(self, term: int, leader: str) -> dict[str, Any]:
        if term < self.current_term:
            return {"term": self.current_term, "success": False}
        self._follow(term)
        self.leader = leader
        self._arm_election_timer()
        return {"term": self.current_term, "success": True}


# ---------------------------------------------------------------- the observer


class ElectionSafety:
    """Raft's Election Safety, watched from outside the cluster: at most one leader
    is ever elected in a term. Nodes report each election; :meth:`check` fails if
    some term had two leaders."""

    def __init__(self) -> None:
        self.leaders: dict[int, tuple[str, float]] = {}
        self.violation: str | None = None

    def elected(self, term: int, name: str) -> None:
        now = asyncio.get_running_loop().time()
        first, at = self.leaders.setdefault(term, (name, now))
        if first != name and self.violation is None:
            self.violation = (
                f"two leaders in term {term}: {first} (elected at {at:.3f} s) "
                f"and {name} (at {now:.3f} s)"
            )

    def check(self, history: list[str]) -> None:
        if self.violation is not None:
            raise AssertionError("\n".join([self.violation, "faults so far:", *history]))


# ---------------------------------------------------------------- the cluster


class Cluster:
    """``size`` Raft nodes, one per host ``n1 … nN``, and the observer."""

    def __init__(self, world: World, size: int, *, timing: Timing, planted_bug: str | None) -> None:
        self.world = world
        self.timing = timing
        self.planted_bug = planted_bug
        self.safety = ElectionSafety()
        self.hosts = [world.host(f"n{i}") for i in range(1, size + 1)]
        # Every link has its own fixed one-way latency (1 ms plus a few tens of
        # microseconds that differ per link), so a leader's heartbeats reach their
        # peers one at a time, as on a real network, without a tape draw per packet.
        for link, (src, dst) in enumerate(
            (src, dst) for src in self.hosts for dst in self.hosts if src is not dst
        ):
            world.net.set_latency(0.001 + 0.000_037 * link, src=src, dst=dst)
        #: The running incarnation of each node (absent while its host is down).
        self.nodes: dict[str, RaftNode] = {}
        for index, host in enumerate(self.hosts):
            host.spawn(functools.partial(self._boot, host, index))

    async def _boot(self, host: Host, index: int) -> None:
        node = RaftNode(
            host.name,
            [peer.name for peer in self.hosts if peer is not host],
            host.disk,
            index=index,
            elected=self.safety.elected,
            timing=self.timing,
            planted_bug=self.planted_bug,
        )
        self.nodes[host.name] = node
        await node.serve()

    def crash(self, host: Host) -> None:
        host.crash()
        self.nodes.pop(host.name, None)

    def stable_leader(self) -> str | None:
        """The leader every node follows in its term, if there is one."""
        if len(self.nodes) < len(self.hosts):
            return None
        leaders = [node for node in self.nodes.values() if node.role is Role.LEADER]
        if len(leaders) != 1:
            return None
        leader = leaders[0]
        agreed = all(
            node.current_term == leader.current_term and node.leader == leader.name
            for node in self.nodes.values()
        )
        return leader.name if agreed else None

    def describe(self) -> str:
        return ", ".join(
            f"{name}: {node.role.value} in term {node.current_term}"
            for name, node in sorted(self.nodes.items())
        )


# ---------------------------------------------------------------- the nemesis


@dataclass(frozen=True)
class Fault:
    """One planned fault: at ``at`` seconds, ``action``, with a drawn ``parameter``
    in ``[0, 50)`` saying which nodes and for how long (see :meth:`Nemesis.inflict`)."""

    at: float
    action: str
    parameter: int


class Nemesis:
    """Faults from the tape, one every ``every`` seconds until ``until``, drawn with
    ``simloom.draw`` so that a failing universe shrinks to the faults it needs
    (draw 0 is "nothing").

    Actions: partition a minority pair from the other three; partition two pairs
    with the fifth node connected to both (a bridge); heal; crash a node, restarted
    after a drawn downtime. Bridges and crashes are the likelier ones.

    The whole plan is drawn before the cluster starts, two draws per fault whatever
    the action: the faults are the first decisions of the universe, so taking one out
    (or changing what happens between faults) never shifts the draws of the others,
    and the shrinker can remove faults one at a time. ``history`` tells what
    happened, in words.
    """

    ACTIONS = ("nothing", "partition", "bridge", "heal", "crash", "bridge", "crash", "crash")

    def __init__(self, world: World, cluster: Cluster, *, every: float, until: float) -> None:
        self.world = world
        self.cluster = cluster
        self.history: list[str] = []
        self._restarts: list[asyncio.Task[None]] = []
        self.plan = [
            Fault(
                at=round(slot * every, 3),
                action=self.ACTIONS[simloom.draw("nemesis.action", len(self.ACTIONS))],
                parameter=simloom.draw("nemesis.parameter", 50),
            )
            for slot in range(1, int(until / every) + 1)
        ]

    def _log(self, event: str) -> None:
        now = asyncio.get_running_loop().time()
        self.history.append(f"  {now:7.3f} s  {event}")

    async def inflict(self, fault: Fault) -> None:
        """Wait for the fault's time, then cause it."""
        await asyncio.sleep(fault.at - asyncio.get_running_loop().time())
        hosts = self.cluster.hosts
        if fault.action == "partition":
            # A pair (one of the 10 pairs of 5 nodes) and the rest.
            pairs = [(a, b) for a in range(len(hosts)) for b in range(a + 1, len(hosts))]
            a, b = pairs[fault.parameter % len(pairs)]
            minority = [hosts[a], hosts[b]]
            self._partition(minority, [host for host in hosts if host not in minority])
        elif fault.action == "bridge":
            # Two pairs that cannot talk, and a fifth node that talks to both.
            bridge = hosts[fault.parameter % len(hosts)]
            others = [host for host in hosts if host is not bridge]
            left = [others[0], others[1 + fault.parameter // len(hosts) % 3]]
            right = [host for host in others if host not in left]
            self._partition(left, right, bridge=bridge)
        elif fault.action == "heal":
            self.world.net.heal()
            simloom.reached("nemesis.heal")
            self._log("heal")
        elif fault.action == "crash":
            host = hosts[fault.parameter % len(hosts)]
            if host.alive:
                downtime = 0.1 + fault.parameter // len(hosts) / 10
                self.cluster.crash(host)
                simloom.reached("nemesis.crash")
                self._log(f"crash {host.name} (back after {downtime:.1f} s)")
                self._restarts.append(asyncio.create_task(self._restart_later(host, downtime)))

    def _partition(
        self, side_a: list[Host], side_b: list[Host], bridge: Host | None = None
    ) -> None:
        self.world.net.heal()
        self.world.net.partition(side_a, side_b)
        simloom.reached("nemesis.partition")
        names = [" ".join(host.name for host in side) for side in (side_a, side_b)]
        bridging = f", {bridge.name} bridging them" if bridge is not None else ""
        self._log(f"partition {names[0]} | {names[1]}{bridging}")

    async def _restart_later(self, host: Host, downtime: float) -> None:
        await asyncio.sleep(downtime)
        self._restart(host)

    def _restart(self, host: Host) -> None:
        if not host.alive:
            host.restart()
            simloom.reached("nemesis.restart")
            self._log(f"restart {host.name}")

    def stop(self) -> None:
        """Heal the network and bring every node back."""
        for task in self._restarts:
            task.cancel()
        self.world.net.heal()
        self._log("faults end: heal, restart every node")
        for host in self.cluster.hosts:
            self._restart(host)


# ---------------------------------------------------------------- the scenario


@dataclass(frozen=True)
class Scenario:
    """How long the faults last, how often one is drawn, and how long the cluster
    then has to settle on a leader (the universe lasts ``total_seconds``)."""

    fault_seconds: float
    fault_every: float
    total_seconds: float


#: The soak test's and the benchmark's: a 30-second election, a fault drawn every
#: 0.7 s for the first 20 seconds.
STANDARD = Scenario(fault_seconds=20.0, fault_every=0.7, total_seconds=30.0)
#: The bug hunt's: faults packed into the first 8 seconds (one drawn every 0.4 s),
#: and done at 12. A failing universe is short, so it shrinks in seconds rather than
#: minutes (every shrink candidate is a whole universe).
QUICK = Scenario(fault_seconds=8.0, fault_every=0.4, total_seconds=12.0)
SCENARIOS = {"standard": STANDARD, "quick": QUICK}


async def election_under_faults(
    world: World,
    *,
    planted_bug: str | None = None,
    scenario: Scenario = STANDARD,
    size: int = 5,
    timing: Timing | None = None,
) -> str:
    """Run ``size`` nodes for the scenario's virtual time, with faults at first;
    fail the moment a term has two leaders, or if after the faults the cluster does
    not settle on one leader that every node follows. Returns that leader's name."""
    loop = asyncio.get_running_loop()
    cluster = Cluster(world, size, timing=timing or Timing(), planted_bug=planted_bug)
    nemesis = Nemesis(world, cluster, every=scenario.fault_every, until=scenario.fault_seconds)
    for fault in nemesis.plan:
        await nemesis.inflict(fault)
        cluster.safety.check(nemesis.history)
    await asyncio.sleep(scenario.fault_seconds - loop.time())
    nemesis.stop()
    settle_within = scenario.total_seconds - scenario.fault_seconds
    try:
        await world.until(
            lambda: cluster.stable_leader() is not None, timeout=settle_within, interval=0.1
        )
    except TimeoutError:
        cluster.safety.check(nemesis.history)
        raise AssertionError(
            f"no leader followed by every node {settle_within:g} s after the faults ended "
            f"({cluster.describe()})"
        ) from None
    cluster.safety.check(nemesis.history)
    await asyncio.sleep(scenario.total_seconds - loop.time())
    cluster.safety.check(nemesis.history)
    leader = cluster.stable_leader()
    assert leader is not None, f"the leader was lost without faults ({cluster.describe()})"
    return leader


def scenario_main(
    planted_bug: str | None = None, scenario: Scenario = STANDARD
) -> Callable[[World], Awaitable[str]]:
    """The scenario as a ``main(world)`` for ``simloom.run`` and ``@simloom.test``."""

    async def toy_raft_election(world: World) -> str:
        return await election_under_faults(world, planted_bug=planted_bug, scenario=scenario)

    return toy_raft_election


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bug", choices=PLANTED_BUGS, help="plant a bug")
    parser.add_argument(
        "--scenario", choices=SCENARIOS, default="quick", help="quick (default) or standard"
    )
    parser.add_argument("--runs", type=int, default=100, help="universes to explore")
    parser.add_argument("--seed", type=int, help="run the one universe exploration calls N")
    args = parser.parse_args(argv)
    program = scenario_main(args.bug, SCENARIOS[args.scenario])
    if args.seed is not None:
        scheduler = simloom.testing.scheduler_for_seed(args.seed)  # as exploration does
        result = simloom.run(program, seed=args.seed, scheduler=scheduler)
        outcome = f"leader {result.value}" if result.ok else f"{result.error}"
        print(f"seed {args.seed} ({scheduler}): {outcome}\ndigest {result.digest}")
        return 0 if result.ok else 1

    from hypothesis import settings
    from hypothesis.database import InMemoryExampleDatabase

    test = settings(database=InMemoryExampleDatabase())(simloom.test(runs=args.runs)(program))
    try:
        test()
    except AssertionError as failure:
        print(failure)
        for note in getattr(failure, "__notes__", []):
            print(note)
        return 1
    stats = simloom.testing.session_stats[-1]
    coverage = ", ".join(f"{label}={hits}" for label, hits in sorted(stats.coverage.items()))
    print(f"survived {stats.universes} universes; coverage: {coverage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
