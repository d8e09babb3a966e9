//! Helpers shared by the network's unit tests: the choice doubles every model's tests
//! share (from [`crate::choices::doubles`]), a network of numbered hosts, and running
//! it until idle.

use super::events::NetEvent;
use super::hosts::BindOptions;
use super::ids::{ConnId, HostId, Side};
use super::links::LinkShape;
use super::Network;
pub(super) use crate::choices::doubles::{Canonical, FailsAt, Lcg, OutOfRange, Scripted};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub(super) const MS: u64 = 1_000_000;

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
    if net.listener_for(server, to, to).is_none() {
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

/// Bind options with SO_REUSEPORT set.
pub(super) const SHARED: BindOptions = BindOptions {
    reuse_port: true,
    v6only: false,
};
