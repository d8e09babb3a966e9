//! Test doubles and helpers shared by the network's unit tests: canonical, scripted
//! and seeded [`Choices`], a network of numbered hosts, and running it until idle.

use super::events::NetEvent;
use super::ids::{ConnId, HostId, Side};
use super::links::LinkShape;
use super::{Choices, Network};
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub(super) const MS: u64 = 1_000_000;

/// The canonical universe: answers 0 to everything, remembering what it was asked.
#[derive(Default)]
pub(super) struct Canonical {
    pub(super) asked: Vec<String>,
}

impl Choices for Canonical {
    fn choose(&mut self, label: &str, _bound: u64, _percent: Option<u32>) -> u64 {
        self.asked.push(label.to_string());
        0
    }
}

/// Replays scripted answers per label, in order; 0 once a label's script runs out.
#[derive(Default)]
pub(super) struct Scripted {
    answers: BTreeMap<&'static str, VecDeque<u64>>,
}

impl Scripted {
    pub(super) fn new(script: &[(&'static str, &[u64])]) -> Scripted {
        Scripted {
            answers: script
                .iter()
                .map(|(label, answers)| (*label, answers.iter().copied().collect()))
                .collect(),
        }
    }

    pub(super) fn exhausted(&self) -> bool {
        self.answers.values().all(VecDeque::is_empty)
    }
}

impl Choices for Scripted {
    fn choose(&mut self, label: &str, bound: u64, _percent: Option<u32>) -> u64 {
        let answer = self
            .answers
            .get_mut(label)
            .and_then(VecDeque::pop_front)
            .unwrap_or(0);
        assert!(answer < bound, "{label}: scripted {answer} ≥ bound {bound}");
        answer
    }
}

/// A seeded linear congruential generator that honours `percent` like the seeded
/// strategies do.
pub(super) struct Lcg(pub(super) u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    pub(super) fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

impl Choices for Lcg {
    fn choose(&mut self, _label: &str, bound: u64, percent: Option<u32>) -> u64 {
        match percent {
            Some(percent) if self.below(100) < percent as u64 => 1 + self.below(bound - 1),
            Some(_) => 0,
            None => self.below(bound),
        }
    }
}

pub(super) fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

pub(super) fn address(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(ip(last), port)
}

/// Hosts 10.0.0.1 ..= 10.0.0.`count` on a network whose every link is `link`.
pub(super) fn network(count: u8, link: LinkShape) -> (Network, Vec<HostId>) {
    let mut net = Network::new();
    net.set_default_link(link).unwrap();
    let hosts = (1..=count)
        .map(|n| net.add_host(&[ip(n)]).unwrap())
        .collect();
    (net, hosts)
}

/// Deliver every event due up to `until_ns`, stamped with its time.
pub(super) fn run_until(net: &mut Network, until_ns: u64) -> Vec<(u64, NetEvent)> {
    let mut events = Vec::new();
    while let Some(at) = net.next_event_time().filter(|at| *at <= until_ns) {
        events.extend(net.pop_due(at).into_iter().map(|event| (at, event)));
    }
    events
}

pub(super) fn run_until_idle(net: &mut Network) -> Vec<(u64, NetEvent)> {
    run_until(net, u64::MAX)
}

/// A connection from `client` to a listener on `server`:80, established with
/// canonical choices. Returns it and the time it was established.
pub(super) fn established(net: &mut Network, client: HostId, server: HostId) -> (ConnId, u64) {
    let server_ip = net.addresses(server).unwrap()[0];
    let to = SocketAddr::new(server_ip, 80);
    if net.listener_for(server, to).is_none() {
        net.listen(server, to, 16).unwrap();
    }
    let now = net.now_ns;
    let conn = net
        .connect(&mut Canonical::default(), client, to, now)
        .unwrap();
    let events = run_until_idle(net);
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, NetEvent::Connected { conn: c, .. } if *c == conn)),
        "{events:?}"
    );
    (conn, net.now_ns)
}

/// The bytes `side` of `conn` received, concatenated.
pub(super) fn received(events: &[(u64, NetEvent)], conn: ConnId, side: Side) -> Vec<u8> {
    events
        .iter()
        .filter_map(|(_, e)| match e {
            NetEvent::Data {
                conn: c,
                side: s,
                bytes,
            } if *c == conn && *s == side => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(super) fn data(conn: ConnId, side: Side, bytes: &[u8]) -> NetEvent {
    NetEvent::Data {
        conn,
        side,
        bytes: bytes.to_vec(),
    }
}
