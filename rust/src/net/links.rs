//! The paths between hosts: each directed link's shape (latency range, loss and the
//! retransmission backoff a lost segment costs) and whether the path is open
//! (partitions, asymmetric blocks, clogged nodes). What closing and reopening a path
//! does to the traffic on it is in `streams` (`hold_blocked_traffic`,
//! `release_held`).

use super::error::{check_delay, check_percent, NetError};
use super::ids::HostId;
use super::{ask, Choices, Network, MAX_DELAY_NS};
use std::collections::BTreeSet;
use std::convert::Infallible;

/// Label of the latency choice (streams and datagrams).
pub const LATENCY_LABEL: &str = "net.latency";
/// Label of the stream-segment loss choice (how many times it is retransmitted).
pub const LOSS_LABEL: &str = "net.loss";

/// Most retransmissions a lost segment may need (the backoff doubles each time).
pub const MAX_RETRANSMISSIONS: u32 = 16;

/// The link every pair of hosts uses unless shaped otherwise: 0.1 ms to 1 ms, no loss.
pub const DEFAULT_LINK: LinkShape = LinkShape {
    min_latency_ns: 100_000,
    max_latency_ns: 1_000_000,
    loss_percent: 0,
};
/// The first retransmission timeout of a lost segment (Linux's minimum RTO).
pub const DEFAULT_RETRANSMIT_TIMEOUT_NS: u64 = 200_000_000;
pub const DEFAULT_MAX_RETRANSMISSIONS: u32 = 3;

/// Latency range and loss of one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkShape {
    pub min_latency_ns: u64,
    pub max_latency_ns: u64,
    /// Chance that a stream segment is lost (and retransmitted), 0..=100.
    pub loss_percent: u32,
}

impl LinkShape {
    /// A link with one latency and no loss: it makes no choices at all.
    pub fn fixed(latency_ns: u64) -> LinkShape {
        LinkShape {
            min_latency_ns: latency_ns,
            max_latency_ns: latency_ns,
            loss_percent: 0,
        }
    }

    fn validate(&self) -> Result<(), NetError> {
        if self.max_latency_ns > MAX_DELAY_NS {
            return Err(NetError::invalid(
                "max_latency_ns",
                format!(
                    "must be at most {MAX_DELAY_NS}, got {}",
                    self.max_latency_ns
                ),
            ));
        }
        if self.min_latency_ns > self.max_latency_ns {
            return Err(NetError::invalid(
                "min_latency_ns",
                format!(
                    "must be at most max_latency_ns ({}), got {}",
                    self.max_latency_ns, self.min_latency_ns
                ),
            ));
        }
        check_percent("loss_percent", self.loss_percent)
    }
}

impl Default for LinkShape {
    fn default() -> Self {
        DEFAULT_LINK
    }
}

/// Which directed host-to-host paths are closed right now.
#[derive(Debug, Clone, Default)]
pub(super) struct Reachability {
    blocked_paths: BTreeSet<(HostId, HostId)>,
    clogged_out: BTreeSet<HostId>,
    clogged_in: BTreeSet<HostId>,
}

impl Reachability {
    pub(super) fn is_open(&self, src: HostId, dst: HostId) -> bool {
        src == dst
            || !(self.blocked_paths.contains(&(src, dst))
                || self.clogged_out.contains(&src)
                || self.clogged_in.contains(&dst))
    }
}

impl Network {
    // ---------------------------------------------------------------- shaping

    /// The link every directed pair of hosts uses unless [`Network::set_link`] says
    /// otherwise.
    pub fn set_default_link(&mut self, shape: LinkShape) -> Result<(), NetError> {
        shape.validate()?;
        self.default_link = shape;
        Ok(())
    }

    /// Shape the directed link `src → dst` (the reverse direction is separate).
    pub fn set_link(&mut self, src: HostId, dst: HostId, shape: LinkShape) -> Result<(), NetError> {
        self.host(src)?;
        self.host(dst)?;
        shape.validate()?;
        self.links.insert((src, dst), shape);
        Ok(())
    }

    /// Return `src → dst` to the default link.
    pub fn clear_link(&mut self, src: HostId, dst: HostId) {
        self.links.remove(&(src, dst));
    }

    /// A lost segment is retransmitted after `timeout_ns`, then twice that, and so on,
    /// at most `max_retransmissions` times.
    pub fn set_retransmission(
        &mut self,
        timeout_ns: u64,
        max_retransmissions: u32,
    ) -> Result<(), NetError> {
        check_delay("timeout_ns", timeout_ns)?;
        if max_retransmissions > MAX_RETRANSMISSIONS {
            return Err(NetError::invalid(
                "max_retransmissions",
                format!("must be at most {MAX_RETRANSMISSIONS}, got {max_retransmissions}"),
            ));
        }
        self.retransmit_timeout_ns = timeout_ns;
        self.max_retransmissions = max_retransmissions;
        Ok(())
    }

    /// The shape of links that have none of their own.
    pub fn default_link(&self) -> LinkShape {
        self.default_link
    }

    /// The shape the link `src → dst` has now (its own, or the default).
    pub fn link_shape(&self, src: HostId, dst: HostId) -> LinkShape {
        self.link(src, dst)
    }

    fn link(&self, src: HostId, dst: HostId) -> LinkShape {
        self.links
            .get(&(src, dst))
            .copied()
            .unwrap_or(self.default_link)
    }

    pub(super) fn draw_latency(
        &self,
        choices: &mut dyn Choices<Error = Infallible>,
        src: HostId,
        dst: HostId,
    ) -> u64 {
        let shape = self.link(src, dst);
        let spread = shape.max_latency_ns - shape.min_latency_ns;
        shape.min_latency_ns + ask(choices, LATENCY_LABEL, spread + 1, None)
    }

    /// Latency plus the retransmission delay of a stream segment.
    pub(super) fn draw_transit(
        &self,
        choices: &mut dyn Choices<Error = Infallible>,
        src: HostId,
        dst: HostId,
    ) -> u64 {
        let latency = self.draw_latency(choices, src, dst);
        let loss_percent = self.link(src, dst).loss_percent;
        if loss_percent == 0 {
            return latency;
        }
        let bound = self.max_retransmissions as u64 + 1;
        let losses = ask(choices, LOSS_LABEL, bound, Some(loss_percent)) as u32;
        // Exponential backoff: timeout, 2 × timeout, 4 × timeout, ...
        latency + self.retransmit_timeout_ns * ((1u64 << losses) - 1)
    }

    // ----------------------------------------------------------------- faults

    /// Block both directions between every host of `side_a` and every host of
    /// `side_b` until healed.
    pub fn partition(&mut self, side_a: &[HostId], side_b: &[HostId]) -> Result<(), NetError> {
        for host in side_a.iter().chain(side_b) {
            self.host(*host)?;
        }
        for &a in side_a {
            for &b in side_b {
                if a != b {
                    self.reachability.blocked_paths.insert((a, b));
                    self.reachability.blocked_paths.insert((b, a));
                }
            }
        }
        self.hold_blocked_traffic();
        Ok(())
    }

    /// Reopen both directions between `side_a` and `side_b` (whatever closed them with
    /// `partition` or `block`); held segments leave in order.
    pub fn heal_between(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        side_a: &[HostId],
        side_b: &[HostId],
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        for host in side_a.iter().chain(side_b) {
            self.host(*host)?;
        }
        for &a in side_a {
            for &b in side_b {
                self.reachability.blocked_paths.remove(&(a, b));
                self.reachability.blocked_paths.remove(&(b, a));
            }
        }
        self.release_held(choices, now);
        Ok(())
    }

    /// Lift every partition, block and clog; held segments leave in order.
    pub fn heal(&mut self, choices: &mut dyn Choices<Error = Infallible>, now_ns: u64) {
        let now = self.advance(now_ns);
        self.reachability = Reachability::default();
        self.release_held(choices, now);
    }

    /// Block the one direction `src → dst`.
    pub fn block(&mut self, src: HostId, dst: HostId) -> Result<(), NetError> {
        self.host(src)?;
        self.host(dst)?;
        if src != dst {
            self.reachability.blocked_paths.insert((src, dst));
            self.hold_blocked_traffic();
        }
        Ok(())
    }

    pub fn unblock(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        src: HostId,
        dst: HostId,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        self.host(src)?;
        self.host(dst)?;
        self.reachability.blocked_paths.remove(&(src, dst));
        self.release_held(choices, now);
        Ok(())
    }

    /// Hold everything `host` sends to other hosts.
    pub fn clog_node_out(&mut self, host: HostId) -> Result<(), NetError> {
        self.host(host)?;
        self.reachability.clogged_out.insert(host);
        self.hold_blocked_traffic();
        Ok(())
    }

    /// Hold everything other hosts send to `host`.
    pub fn clog_node_in(&mut self, host: HostId) -> Result<(), NetError> {
        self.host(host)?;
        self.reachability.clogged_in.insert(host);
        self.hold_blocked_traffic();
        Ok(())
    }

    pub fn unclog_node_out(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        host: HostId,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        self.host(host)?;
        self.reachability.clogged_out.remove(&host);
        self.release_held(choices, now);
        Ok(())
    }

    pub fn unclog_node_in(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        host: HostId,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        self.host(host)?;
        self.reachability.clogged_in.remove(&host);
        self.release_held(choices, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::events::NetEvent;
    use crate::net::hosts::FIRST_EPHEMERAL_PORT;
    use crate::net::ids::Side;
    use crate::net::test_support::{
        address, data, established, network, run_until, run_until_idle, Canonical, Scripted, MS,
    };

    // ----------------------------------------------------------- partitions

    #[test]
    fn a_partition_holds_bytes_and_heal_delivers_them_in_order() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.send(&mut choices, conn, Side::Client, b"in flight", start)
            .unwrap();
        net.partition(&[hosts[0]], &[hosts[1]]).unwrap();
        assert_eq!(net.next_event_time(), None, "the segment in flight is held");
        net.send(&mut choices, conn, Side::Client, b", sent", start + MS)
            .unwrap();
        net.send(&mut choices, conn, Side::Server, b"reply", start + MS)
            .unwrap();
        assert!(run_until(&mut net, start + 1_000 * MS).is_empty());
        let heal_at = start + 1_000 * MS;
        net.heal(&mut choices, heal_at);
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (heal_at + MS, data(conn, Side::Server, b"in flight")),
                (heal_at + MS, data(conn, Side::Server, b", sent")),
                (heal_at + MS, data(conn, Side::Client, b"reply")),
            ]
        );
    }

    #[test]
    fn a_segment_held_by_a_partition_draws_its_transit_again_when_released() {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 10 * MS,
                loss_percent: 0,
            },
        );
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        let mut choices = Scripted::per_label(&[(LATENCY_LABEL, &[9 * MS, 0])]);
        net.send(&mut choices, conn, Side::Client, b"slow", start)
            .unwrap();
        net.partition(&[hosts[0]], &[hosts[1]]).unwrap();
        net.heal(&mut choices, start + MS);
        // Retransmitted at the heal with the minimum latency, not its old 10 ms.
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 2 * MS, data(conn, Side::Server, b"slow"))]
        );
    }

    #[test]
    fn a_shaped_link_overrides_the_default_in_one_direction() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.set_link(hosts[0], hosts[1], LinkShape::fixed(7 * MS))
            .unwrap();
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        assert_eq!(start, 8 * MS, "7 ms there, 1 ms back");
        net.send(&mut choices, conn, Side::Client, b"there", start)
            .unwrap();
        net.send(&mut choices, conn, Side::Server, b"back", start)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (start + MS, data(conn, Side::Client, b"back")),
                (start + 7 * MS, data(conn, Side::Server, b"there")),
            ]
        );
        net.clear_link(hosts[0], hosts[1]);
        net.send(&mut choices, conn, Side::Client, b"fast", start + 7 * MS)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 8 * MS, data(conn, Side::Server, b"fast"))]
        );
    }

    #[test]
    fn heal_between_reopens_only_that_pair() {
        let (mut net, hosts) = network(3, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (to_b, _) = established(&mut net, hosts[0], hosts[1]);
        let (to_c, start) = established(&mut net, hosts[0], hosts[2]);
        net.partition(&[hosts[0]], &[hosts[1], hosts[2]]).unwrap();
        net.send(&mut choices, to_b, Side::Client, b"b", start)
            .unwrap();
        net.send(&mut choices, to_c, Side::Client, b"c", start)
            .unwrap();
        net.heal_between(&mut choices, &[hosts[1]], &[hosts[0]], start + 10 * MS)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 11 * MS, data(to_b, Side::Server, b"b"))]
        );
        net.heal(&mut choices, start + 20 * MS);
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 21 * MS, data(to_c, Side::Server, b"c"))]
        );
    }

    #[test]
    fn an_asymmetric_block_holds_one_direction_only() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.block(hosts[0], hosts[1]).unwrap();
        net.send(&mut choices, conn, Side::Client, b"held", start)
            .unwrap();
        net.send(&mut choices, conn, Side::Server, b"flows", start)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + MS, data(conn, Side::Client, b"flows"))]
        );
        net.unblock(&mut choices, hosts[0], hosts[1], start + 5 * MS)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 6 * MS, data(conn, Side::Server, b"held"))]
        );
    }

    #[test]
    fn a_connect_across_a_partition_hangs_until_heal() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let listener = net.listen(hosts[1], address(2, 80), 8).unwrap();
        net.partition(&[hosts[0]], &[hosts[1]]).unwrap();
        let conn = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        // A second connect is given up by its caller's timeout before the heal.
        let abandoned = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        assert_eq!(net.next_event_time(), None, "no event: the connect hangs");
        net.close(&mut choices, abandoned, Side::Client, 5_000 * MS)
            .unwrap();
        net.heal(&mut choices, 10_000 * MS);
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (
                    10_001 * MS,
                    NetEvent::Accept {
                        listener,
                        conn,
                        local: address(2, 80),
                        peer: address(1, FIRST_EPHEMERAL_PORT)
                    }
                ),
                (
                    10_002 * MS,
                    NetEvent::Connected {
                        conn,
                        local: address(1, FIRST_EPHEMERAL_PORT),
                        peer: address(2, 80)
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_connect_whose_answer_is_blocked_is_accepted_but_hangs_until_unblocked() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        net.listen(hosts[1], address(2, 80), 8).unwrap();
        net.block(hosts[1], hosts[0]).unwrap();
        let conn = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        let events = run_until_idle(&mut net);
        assert!(
            matches!(events.as_slice(), [(at, NetEvent::Accept { .. })] if *at == MS),
            "{events:?}"
        );
        net.send(&mut choices, conn, Side::Server, b"hello", MS)
            .unwrap();
        net.unblock(&mut choices, hosts[1], hosts[0], 50 * MS)
            .unwrap();
        let events = run_until_idle(&mut net);
        assert!(
            matches!(
                events.as_slice(),
                [(at, NetEvent::Connected { .. }), (_, NetEvent::Data { .. })] if *at == 51 * MS
            ),
            "{events:?}"
        );
    }

    #[test]
    fn clogged_nodes_hold_their_outgoing_or_incoming_traffic() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.clog_node_out(hosts[0]).unwrap();
        net.send(&mut choices, conn, Side::Client, b"out", start)
            .unwrap();
        net.send(&mut choices, conn, Side::Server, b"in", start)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + MS, data(conn, Side::Client, b"in"))]
        );
        net.clog_node_in(hosts[0]).unwrap();
        net.unclog_node_out(&mut choices, hosts[0], start + 10 * MS)
            .unwrap();
        net.send(
            &mut choices,
            conn,
            Side::Server,
            b"in again",
            start + 10 * MS,
        )
        .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 11 * MS, data(conn, Side::Server, b"out"))]
        );
        net.unclog_node_in(&mut choices, hosts[0], start + 20 * MS)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + 21 * MS, data(conn, Side::Client, b"in again"))]
        );
    }

    #[test]
    fn invalid_settings_name_the_argument() {
        let mut net = Network::new();
        let name_of = |result: Result<(), NetError>| match result {
            Err(NetError::InvalidArgument { name, .. }) => name,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name_of(net.set_default_link(LinkShape {
                min_latency_ns: 2,
                max_latency_ns: 1,
                loss_percent: 0
            })),
            "min_latency_ns"
        );
        assert_eq!(
            name_of(net.set_default_link(LinkShape {
                min_latency_ns: 0,
                max_latency_ns: MAX_DELAY_NS + 1,
                loss_percent: 0
            })),
            "max_latency_ns"
        );
        assert_eq!(
            name_of(net.set_default_link(LinkShape {
                loss_percent: 101,
                ..DEFAULT_LINK
            })),
            "loss_percent"
        );
        assert_eq!(name_of(net.set_datagram_reorder(101)), "percent");
        assert_eq!(
            name_of(net.set_retransmission(MS, MAX_RETRANSMISSIONS + 1)),
            "max_retransmissions"
        );
        assert_eq!(net.default_link, DEFAULT_LINK, "nothing invalid was kept");
    }
}
