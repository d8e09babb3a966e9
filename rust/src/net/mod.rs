//! The simulated network: hosts and their addresses, TCP-like streams between
//! `(host, port)` endpoints, listeners with accept queues, UDP datagrams, and the
//! faults the world injects (latency, loss, partitions, clogs, resets, crashes).
//!
//! Owns: which bytes reach which endpoint and at what virtual time, the order of
//! everything it delivers, and the state of every connection, listener and datagram
//! socket. Must not: know about Python or asyncio, read or advance a clock (every
//! call that can schedule something is told `now_ns`), or draw randomness of its
//! own. Every nondeterministic decision goes through [`Choices`] (the one choice
//! interface, `crate::choices`), which the engine implements with its tape; choice 0
//! is always canonical, and an answer out of range is taken as 0 and reported
//! misaligned. The network's calls run to the end, so its source cannot fail
//! (`Error = Infallible`): the driver wraps the engine in a `Latch` and raises the
//! source's first error after the call.
//!
//! # How a driver uses it
//!
//! The driver (later: the FFI layer behind the Python transports) calls the API as
//! the program acts (`connect`, `send`, `close`, ...) and as the world injects faults
//! (`partition`, `heal`, `crash_host`, ...). Results come back only as [`NetEvent`]s:
//! the driver asks [`Network::next_event_time`], lets the clock reach it, and takes
//! [`Network::pop_due`]. Events come out ordered by (virtual time, sequence number),
//! so the same calls with the same choices give the same event sequence. Every map
//! whose order can show is a `BTreeMap`; `pop_due` itself never makes a choice.
//!
//! Time never runs backwards: the network keeps the latest `now_ns` it was given
//! (by any call, `pop_due` included) and treats an older one as that. A driver pops
//! everything due up to `now` before acting at `now`, as the engine's clock does.
//!
//! # Choices it makes
//!
//! A choice is asked only when there is a real alternative (a latency range wider
//! than one value, a fault percentage above zero), so an unshaped network adds
//! nothing to the tape.
//!
//! | label               | bound                     | percent          | 0 means          | a value `k > 0` means |
//! |---------------------|---------------------------|------------------|------------------|-----------------------|
//! | `net.latency`       | `max - min + 1` ns        | none (uniform)   | minimum latency  | `min + k` ns           |
//! | `net.loss`          | `max_retransmissions + 1` | `loss_percent`   | not lost         | lost `k` times: arrives `timeout × (2^k − 1)` later (backoff doubles) |
//! | `net.segment`       | bytes left in the write   | segmentation percent | the rest arrives in one read | the next read ends after `k` bytes; the rest asks again |
//! | `net.dgram.drop`    | 2                         | drop percent     | delivered        | dropped               |
//! | `net.dgram.dup`     | 2                         | duplicate percent| delivered once   | delivered twice       |
//! | `net.dgram.reorder` | 2                         | reorder percent  | in order         | held back by the reorder delay, so later datagrams overtake it |
//!
//! A stream segment asks `net.latency` then `net.loss` on the link it crosses; a
//! connect asks them for the SYN (client → server) and then for the reply (server →
//! client) when the SYN leaves. With segmentation on (off by default), a write asks
//! `net.segment` before each piece it sends (then that piece's transit). A datagram asks `net.dgram.drop`, then (if it was not
//! dropped) `net.latency`, `net.dgram.dup`, `net.dgram.reorder`.
//!
//! # Semantics
//!
//! - **Streams never corrupt.** Each direction of a connection is a pipe: a segment
//!   arrives at `max(now + transit, previous arrival in that direction)`, so bytes
//!   arrive in order, exactly once. Loss is retransmission delay, never a drop.
//! - **Windows bound what is in flight.** Each direction carries at most its window
//!   of bytes the receiver has not read (`consumed` reports reads); `send` takes only
//!   what fits and says how much, and a refused sender gets `Writable` once half the
//!   window is free again. A receiver that stops reading stops its sender; the bytes
//!   the sender still wants to write are its own to buffer.
//! - **Partitions hold.** While a path is blocked (a partition, an asymmetric block,
//!   a clogged node), a stream segment sent across it, or still in flight when it
//!   closed, is held; when the path reopens the held segments leave in order, each
//!   drawing its transit then. A connect across a blocked path hangs (no event) until
//!   it reopens; the caller's timeout decides what that means. A host's traffic to
//!   itself is never blocked.
//! - **Datagrams are not retransmitted.** One sent across a blocked path, or in
//!   flight when its path is blocked, is dropped; one sent to an address no socket is
//!   bound to when it arrives is dropped silently. Otherwise they are delivered in
//!   order per (socket, destination), exactly once, unless the datagram faults say
//!   otherwise.
//! - **Resets and crashes are immediate**: the sides told get a [`NetEvent::Reset`]
//!   (or [`NetEvent::Refused`] for a connect still waiting for its answer) at `now`,
//!   and whatever was in flight or held on those connections is discarded. A crash
//!   is a process crash on a host whose kernel stays up: peers are reset, and later
//!   connects are refused until something listens again.
//! - Connecting to an address with nobody listening, or to a paused listener whose
//!   accept queue is full, is refused after a round trip. Data sent to a side that
//!   has closed resets the sender when it arrives (as a real peer's RST would).
//!
//! # Where things are
//!
//! One file per concern, each with its own `impl Network` block and the tests of what
//! it holds: `ids` (the ids and [`Side`]), `events` ([`NetEvent`] and the queue that
//! orders it), `error` ([`NetError`]), `hosts` (addresses, ports, crashes), `links`
//! (link shapes, partitions, blocks, clogs), `streams` (listeners, connections and
//! their pipes, resets, held segments), `datagrams` (sockets and their faults). This
//! file holds [`Network`] itself, its `ask` and the network-wide property tests;
//! `test_support` the helpers every test module shares (the choice doubles are
//! `crate::choices::doubles`, shared with the disk's tests).

use crate::choices::Choices;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

mod datagrams;
mod error;
mod events;
mod hosts;
mod ids;
mod links;
mod streams;
#[cfg(test)]
mod test_support;

pub use self::datagrams::{
    DATAGRAM_DROP_LABEL, DATAGRAM_DUPLICATE_LABEL, DATAGRAM_REORDER_LABEL,
    DEFAULT_DATAGRAM_REORDER_DELAY_NS,
};
pub use self::error::NetError;
pub use self::events::NetEvent;
pub use self::hosts::BindOptions;
pub use self::ids::{ConnId, DatagramSocketId, HostId, ListenerId, Side};
pub use self::links::{
    LinkShape, DEFAULT_LINK, DEFAULT_MAX_RETRANSMISSIONS, DEFAULT_RETRANSMIT_TIMEOUT_NS,
    LATENCY_LABEL, LOSS_LABEL, MAX_RETRANSMISSIONS,
};

use self::datagrams::{DatagramFaults, DatagramSocket};
use self::events::{QueueKey, Scheduled};
use self::hosts::Host;
use self::links::Reachability;
use self::streams::{Connection, Listener};
pub use self::streams::{DEFAULT_STREAM_WINDOW, MAX_STREAM_WINDOW, SEGMENT_LABEL};

/// Longest latency, retransmission timeout or reorder delay accepted (one hour), so
/// that no sum of them can overflow the nanosecond clock.
pub const MAX_DELAY_NS: u64 = 3_600 * 1_000_000_000;

/// Ask through the one choice rule ([`crate::choices::ask`]). The network's calls
/// must run to the end, so its source cannot fail: the driver hands it a
/// [`crate::choices::Latch`] and raises the source's error after the call.
fn ask(
    choices: &mut dyn Choices<Error = Infallible>,
    label: &str,
    bound: u64,
    percent: Option<u32>,
) -> u64 {
    let Ok(value) = crate::choices::ask(choices, label, bound, percent);
    value
}

/// The simulated network of one universe.
#[derive(Debug, Clone)]
pub struct Network {
    now_ns: u64,
    next_sequence: u64,
    next_conn: u64,
    next_listener: u64,
    next_datagram_socket: u64,
    hosts: Vec<Host>,
    host_by_ip: BTreeMap<IpAddr, HostId>,
    default_link: LinkShape,
    links: BTreeMap<(HostId, HostId), LinkShape>,
    retransmit_timeout_ns: u64,
    max_retransmissions: u32,
    datagram_faults: DatagramFaults,
    /// Bytes one direction of a connection holds (see `streams`).
    stream_window_bytes: u64,
    /// Chance a stream write is cut into several reads.
    segment_percent: u32,
    reachability: Reachability,
    listeners: BTreeMap<ListenerId, Listener>,
    connections: BTreeMap<ConnId, Connection>,
    datagram_sockets: BTreeMap<DatagramSocketId, DatagramSocket>,
    /// Arrival time of the last datagram per (socket, destination), for FIFO.
    datagram_flows: BTreeMap<(DatagramSocketId, SocketAddr), u64>,
    queue: BTreeMap<QueueKey, Scheduled>,
}

impl Default for Network {
    fn default() -> Self {
        Self::new()
    }
}

impl Network {
    pub fn new() -> Network {
        Network {
            now_ns: 0,
            next_sequence: 0,
            next_conn: 0,
            next_listener: 0,
            next_datagram_socket: 0,
            hosts: Vec::new(),
            host_by_ip: BTreeMap::new(),
            default_link: DEFAULT_LINK,
            links: BTreeMap::new(),
            retransmit_timeout_ns: DEFAULT_RETRANSMIT_TIMEOUT_NS,
            max_retransmissions: DEFAULT_MAX_RETRANSMISSIONS,
            datagram_faults: DatagramFaults {
                drop_percent: 0,
                duplicate_percent: 0,
                reorder_percent: 0,
                reorder_delay_ns: DEFAULT_DATAGRAM_REORDER_DELAY_NS,
            },
            stream_window_bytes: DEFAULT_STREAM_WINDOW,
            segment_percent: 0,
            reachability: Reachability::default(),
            listeners: BTreeMap::new(),
            connections: BTreeMap::new(),
            datagram_sockets: BTreeMap::new(),
            datagram_flows: BTreeMap::new(),
            queue: BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{
        address, data, established, network, received, run_until, run_until_idle, Canonical,
        FailsAt, Lcg, OutOfRange, MS,
    };
    use super::*;
    use crate::choices::Latch;
    use std::collections::BTreeSet;

    // ------------------------------------------------------------- choices

    #[test]
    fn choices_are_asked_only_where_there_is_an_alternative() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.send(&mut choices, conn, Side::Client, b"x", start)
            .unwrap();
        let socket = net.bind_datagram(hosts[0], address(1, 53)).unwrap();
        net.send_datagram(&mut choices, socket, address(2, 53), b"x".to_vec(), start)
            .unwrap();
        assert!(choices.record.asked.is_empty(), "{:?}", choices.record);

        net.set_default_link(LinkShape {
            min_latency_ns: MS,
            max_latency_ns: 2 * MS,
            loss_percent: 10,
        })
        .unwrap();
        net.set_datagram_loss(1).unwrap();
        net.set_datagram_duplication(1).unwrap();
        net.set_datagram_reorder(1).unwrap();
        net.listen(hosts[1], address(2, 81), 8).unwrap();
        net.connect(&mut choices, hosts[0], address(2, 81), start)
            .unwrap();
        net.send_datagram(&mut choices, socket, address(2, 53), b"x".to_vec(), start)
            .unwrap();
        assert_eq!(
            choices.record.labels(),
            [
                LATENCY_LABEL,
                LOSS_LABEL,
                LATENCY_LABEL,
                LOSS_LABEL,
                DATAGRAM_DROP_LABEL,
                LATENCY_LABEL,
                DATAGRAM_DUPLICATE_LABEL,
                DATAGRAM_REORDER_LABEL
            ]
        );
    }

    /// Two hosts on a shaped, lossy link with every datagram fault; one connect, one
    /// write and one datagram, with choices from `choices`. Returns the events.
    fn one_of_each(choices: &mut dyn Choices<Error = Infallible>) -> Vec<(u64, NetEvent)> {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 9 * MS,
                loss_percent: 50,
            },
        );
        net.set_datagram_loss(50).unwrap();
        net.set_datagram_duplication(50).unwrap();
        net.set_datagram_reorder(50).unwrap();
        net.set_segmentation(50).unwrap();
        net.listen(hosts[1], address(2, 80), 8).unwrap();
        let conn = net.connect(choices, hosts[0], address(2, 80), 0).unwrap();
        let mut events = run_until_idle(&mut net);
        let now = events.last().map_or(0, |(at, _)| *at);
        net.send(choices, conn, Side::Client, b"hello", now)
            .unwrap();
        let socket = net.bind_datagram(hosts[0], address(1, 53)).unwrap();
        net.bind_datagram(hosts[1], address(2, 53)).unwrap();
        net.send_datagram(choices, socket, address(2, 53), b"x".to_vec(), now)
            .unwrap();
        events.extend(run_until_idle(&mut net));
        events
    }

    #[test]
    fn an_answer_out_of_range_is_taken_as_zero_and_marked_misaligned() {
        let mut canonical = Canonical::default();
        let expected = one_of_each(&mut canonical);
        let mut out_of_range = OutOfRange {
            extra: 1,
            ..OutOfRange::default()
        };
        assert_eq!(one_of_each(&mut out_of_range), expected);
        assert_eq!(out_of_range.record.asked, canonical.record.asked);
        let told: Vec<(String, u64, u64)> = canonical
            .record
            .asked
            .iter()
            .map(|(label, bound)| (label.clone(), *bound, bound + 1))
            .collect();
        assert_eq!(
            out_of_range.record.misaligned, told,
            "every answer was reported"
        );
        assert!(canonical.record.labels().contains(&SEGMENT_LABEL));
    }

    #[test]
    fn a_failing_source_lets_the_call_finish_canonically_and_keeps_its_error() {
        // The source answers its largest value twice, then fails: the rest of the
        // universe runs on canonical answers, and the error is there to raise.
        let mut latch = Latch::new(FailsAt(2));
        let events = one_of_each(&mut latch);
        assert_eq!(
            latch.take_error(),
            Some(crate::choices::doubles::SOURCE_RAISED)
        );
        let mut canonical = Canonical::default();
        assert_ne!(
            events,
            one_of_each(&mut canonical),
            "the first two answers counted"
        );
        assert!(events
            .iter()
            .any(|(_, e)| matches!(e, NetEvent::Datagram { .. })));
    }

    /// What one randomly driven universe did.
    struct Universe {
        events: Vec<(u64, NetEvent)>,
        /// Bytes each side sent, in order.
        sent: BTreeMap<(ConnId, Side), Vec<u8>>,
        /// Sides whose write side was shut.
        shut: BTreeSet<(ConnId, Side)>,
        /// Connections reset, refused or crashed: their streams may stop early.
        broken: BTreeSet<ConnId>,
        datagrams_sent: u64,
    }

    /// Three hosts, listeners on the second and third, lossy shaped links and every
    /// datagram fault; a workload of connects, sends, half-closes, partitions, blocks,
    /// clogs, resets and crashes driven by `seed`, with choices from `choices`.
    fn random_universe(seed: u64, choices: &mut dyn Choices<Error = Infallible>) -> Universe {
        let (mut net, hosts) = network(
            3,
            LinkShape {
                min_latency_ns: MS / 10,
                max_latency_ns: 5 * MS,
                loss_percent: 20,
            },
        );
        net.set_retransmission(10 * MS, 3).unwrap();
        net.set_datagram_loss(20).unwrap();
        net.set_datagram_duplication(20).unwrap();
        net.set_datagram_reorder(20).unwrap();
        // Small windows, so that sends are refused and resumed; writes are cut.
        net.set_stream_window(24).unwrap();
        net.set_segmentation(30).unwrap();
        net.set_link(
            hosts[0],
            hosts[2],
            LinkShape {
                min_latency_ns: 2 * MS,
                max_latency_ns: 30 * MS,
                loss_percent: 50,
            },
        )
        .unwrap();
        for n in [1, 2] {
            net.listen(hosts[n], address(n as u8 + 1, 80), 64).unwrap();
        }
        let sockets: Vec<DatagramSocketId> = (0..3)
            .map(|n| {
                net.bind_datagram(hosts[n], address(n as u8 + 1, 53))
                    .unwrap()
            })
            .collect();
        let mut workload = Lcg(seed ^ 0x5EED);
        let mut universe = Universe {
            events: Vec::new(),
            sent: BTreeMap::new(),
            shut: BTreeSet::new(),
            broken: BTreeSet::new(),
            datagrams_sent: 0,
        };
        let mut open: BTreeSet<(ConnId, Side)> = BTreeSet::new();
        let mut now = 0;
        let mut counter = 0u8;
        for _ in 0..300 {
            now += workload.below(3 * MS);
            for (at, event) in run_until(&mut net, now) {
                match &event {
                    NetEvent::Connected { conn, .. } => {
                        open.insert((*conn, Side::Client));
                    }
                    NetEvent::Accept { conn, .. } => {
                        open.insert((*conn, Side::Server));
                    }
                    NetEvent::Reset { conn, .. } | NetEvent::Refused { conn } => {
                        universe.broken.insert(*conn);
                        open.retain(|(c, _)| c != conn);
                    }
                    NetEvent::Data { conn, side, bytes } => {
                        // The driver reads everything at once; a reset may beat it.
                        let _ = net.consumed(*conn, *side, bytes.len() as u64, at);
                    }
                    _ => {}
                }
                universe.events.push((at, event));
            }
            let pick_host = |workload: &mut Lcg| hosts[workload.below(3) as usize];
            let pick_open = |workload: &mut Lcg, open: &BTreeSet<(ConnId, Side)>| {
                let at = workload.below(open.len() as u64) as usize;
                open.iter().nth(at).copied()
            };
            match workload.below(100) {
                0..=19 => {
                    let from = pick_host(&mut workload);
                    let to = address(2 + workload.below(2) as u8, 80);
                    net.connect(choices, from, to, now).unwrap();
                }
                20..=59 => {
                    if let Some((conn, side)) = pick_open(&mut workload, &open) {
                        let bytes: Vec<u8> = (0..1 + workload.below(8))
                            .map(|_| {
                                counter = counter.wrapping_add(1);
                                counter
                            })
                            .collect();
                        if let Ok(taken) = net.send(choices, conn, side, &bytes, now) {
                            let sent = universe.sent.entry((conn, side)).or_default();
                            sent.extend(&bytes[..taken]);
                        }
                    }
                }
                60..=62 => {
                    if let Some((conn, side)) = pick_open(&mut workload, &open) {
                        net.shutdown_write(choices, conn, side, now).unwrap();
                        universe.shut.insert((conn, side));
                    }
                }
                63..=67 => {
                    let lonely = pick_host(&mut workload);
                    let rest: Vec<HostId> =
                        hosts.iter().copied().filter(|h| *h != lonely).collect();
                    net.partition(&[lonely], &rest).unwrap();
                }
                68..=74 => net.heal(choices, now),
                75..=77 => net
                    .block(pick_host(&mut workload), pick_host(&mut workload))
                    .unwrap(),
                78..=79 => {
                    let (src, dst) = (pick_host(&mut workload), pick_host(&mut workload));
                    net.unblock(choices, src, dst, now).unwrap();
                }
                80..=81 => {
                    let (a, b) = (pick_host(&mut workload), pick_host(&mut workload));
                    let reset = net.reset_connections(a, b, now).unwrap();
                    universe.broken.extend(reset);
                }
                82 => {
                    let crashed = net.crash_host(hosts[2], now).unwrap();
                    for conn in &crashed {
                        open.retain(|(c, _)| c != conn);
                    }
                    universe.broken.extend(crashed);
                    net.listen(hosts[2], address(3, 80), 64).unwrap();
                }
                83..=94 => {
                    let from = workload.below(3) as usize;
                    let to = address(1 + workload.below(3) as u8, 53);
                    if net.datagram_address(sockets[from]).is_ok() {
                        universe.datagrams_sent += 1;
                        let bytes = universe.datagrams_sent.to_be_bytes().to_vec();
                        net.send_datagram(choices, sockets[from], to, bytes, now)
                            .unwrap();
                    }
                }
                95..=97 => net.clog_node_out(pick_host(&mut workload)).unwrap(),
                _ => net.clog_node_in(pick_host(&mut workload)).unwrap(),
            }
        }
        net.heal(choices, now);
        universe.events.extend(run_until_idle(&mut net));
        universe
    }

    #[test]
    fn same_choices_give_identical_event_sequences() {
        for seed in 0..100 {
            let first = random_universe(seed, &mut Lcg(seed));
            let second = random_universe(seed, &mut Lcg(seed));
            assert_eq!(first.events, second.events, "seed {seed}");
            assert!(!first.events.is_empty());
        }
        let one = random_universe(1, &mut Lcg(1)).events;
        let other = random_universe(1, &mut Lcg(2)).events;
        assert_ne!(one, other, "the choices do matter");
    }

    #[test]
    fn streams_never_corrupt_under_random_faults() {
        let mut resumed = 0;
        for seed in 0..100 {
            let universe = random_universe(seed, &mut Lcg(seed));
            resumed += universe
                .events
                .iter()
                .filter(|(_, e)| matches!(e, NetEvent::Writable { .. }))
                .count();
            let times: Vec<u64> = universe.events.iter().map(|(at, _)| *at).collect();
            assert!(times.is_sorted(), "seed {seed}: events in time order");
            for (&(conn, sender), sent) in &universe.sent {
                let receiver = sender.peer();
                let got = received(&universe.events, conn, receiver);
                if universe.broken.contains(&conn) {
                    assert!(sent.starts_with(&got), "seed {seed}: {conn:?} corrupt");
                } else {
                    assert_eq!(&got, sent, "seed {seed}: {conn:?} {sender:?}");
                }
            }
            for &(conn, sender) in &universe.shut {
                let receiver = sender.peer();
                let mut after_eof = universe.events.iter().skip_while(|(_, e)| {
                    *e != NetEvent::Eof {
                        conn,
                        side: receiver,
                    }
                });
                let saw_eof = after_eof.next().is_some();
                assert!(saw_eof || universe.broken.contains(&conn), "seed {seed}");
                assert!(
                    !after_eof.any(|(_, e)| matches!(
                        e,
                        NetEvent::Data { conn: c, side, .. } if *c == conn && *side == receiver
                    )),
                    "seed {seed}: no data after Eof"
                );
            }
        }
        assert!(resumed > 0, "some sends were refused, then resumed");
    }

    #[test]
    fn canonical_choices_never_fault() {
        // Every fault is as likely as it can be; the canonical answer still declines all.
        let (mut net, hosts) = network(
            3,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 100 * MS,
                loss_percent: 100,
            },
        );
        net.set_datagram_loss(100).unwrap();
        net.set_datagram_duplication(100).unwrap();
        net.set_datagram_reorder(100).unwrap();
        let mut choices = Canonical::default();
        let (to_b, _) = established(&mut net, hosts[0], hosts[1]);
        let (to_c, start) = established(&mut net, hosts[2], hosts[1]);
        let sockets: Vec<DatagramSocketId> = (0..3)
            .map(|n| {
                net.bind_datagram(hosts[n], address(n as u8 + 1, 53))
                    .unwrap()
            })
            .collect();
        let mut workload = Lcg(11);
        let mut now = start;
        let mut expected = Vec::new();
        let mut delivered = Vec::new();
        for i in 0..500u32 {
            now += workload.below(2 * MS);
            delivered.extend(run_until(&mut net, now));
            let bytes = i.to_be_bytes().to_vec();
            match workload.below(3) {
                0 => {
                    let (conn, side) = if workload.below(2) == 0 {
                        (to_b, Side::Client)
                    } else {
                        (to_c, Side::Server)
                    };
                    net.send(&mut choices, conn, side, bytes.clone(), now)
                        .unwrap();
                    expected.push((now + MS, data(conn, side.peer(), &bytes)));
                }
                _ => {
                    let from = workload.below(3) as usize;
                    let to = (from + 1 + workload.below(2) as usize) % 3;
                    let to_address = net.datagram_address(sockets[to]).unwrap();
                    net.send_datagram(&mut choices, sockets[from], to_address, bytes.clone(), now)
                        .unwrap();
                    expected.push((
                        now + MS,
                        NetEvent::Datagram {
                            socket: sockets[to],
                            from: net.datagram_address(sockets[from]).unwrap(),
                            bytes,
                        },
                    ));
                }
            }
        }
        delivered.extend(run_until_idle(&mut net));
        expected.sort_by_key(|(at, _)| *at);
        assert_eq!(delivered, expected);
        assert!(
            choices.record.asked.len() > 1000,
            "the faults were asked about"
        );
    }
}
