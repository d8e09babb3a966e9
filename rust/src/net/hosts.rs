//! Hosts: their addresses, which host an address names from where, the source
//! address a host sends from, and its port tables (streams and datagrams have
//! separate ones, as in TCP and UDP). A host's crash is here too: it takes the host's
//! listeners, sockets and connections with it.

use super::error::NetError;
use super::events::Scheduled;
use super::ids::{ConnId, HostId, Side};
use super::Network;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub(super) const FIRST_EPHEMERAL_PORT: u16 = 49152;

/// Ports of one protocol on one host: how many sockets use each, and where the next
/// ephemeral search starts.
#[derive(Debug, Clone)]
pub(super) struct PortTable {
    pub(super) users: BTreeMap<u16, u32>,
    next_ephemeral: u16,
}

impl PortTable {
    pub(super) fn new() -> PortTable {
        PortTable {
            users: BTreeMap::new(),
            next_ephemeral: FIRST_EPHEMERAL_PORT,
        }
    }

    pub(super) fn take(&mut self, port: u16) {
        *self.users.entry(port).or_insert(0) += 1;
    }

    pub(super) fn release(&mut self, port: u16) {
        if let Some(count) = self.users.get_mut(&port) {
            *count -= 1;
            if *count == 0 {
                self.users.remove(&port);
            }
        }
    }

    /// The next free ephemeral port, searching round-robin like a kernel does.
    pub(super) fn ephemeral(&mut self) -> Option<u16> {
        let range_len = (u16::MAX - FIRST_EPHEMERAL_PORT) as u32 + 1;
        for _ in 0..range_len {
            let port = self.next_ephemeral;
            self.next_ephemeral = if port == u16::MAX {
                FIRST_EPHEMERAL_PORT
            } else {
                port + 1
            };
            if !self.users.contains_key(&port) {
                return Some(port);
            }
        }
        None
    }
}

#[derive(Debug, Clone)]
pub(super) struct Host {
    addresses: Vec<IpAddr>,
    pub(super) stream_ports: PortTable,
    pub(super) datagram_ports: PortTable,
}

/// Streams and datagrams have separate port spaces, as in TCP and UDP.
#[derive(Debug, Clone, Copy)]
pub(super) enum PortKind {
    Stream,
    Datagram,
}

impl Host {
    fn ports(&mut self, kind: PortKind) -> &mut PortTable {
        match kind {
            PortKind::Stream => &mut self.stream_ports,
            PortKind::Datagram => &mut self.datagram_ports,
        }
    }
}

/// Do two bound IPs of one host overlap (equal, or either the unspecified address)?
/// How a socket is bound, beyond its address: the options a kernel reads at bind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// SO_REUSEPORT: sockets that all set it may share one address.
    pub reuse_port: bool,
    /// IPV6_V6ONLY: an IPv6 wildcard (`::`) takes IPv6 only. Without it (Linux's
    /// default) `::` is dual-stack: it also takes IPv4, and holds its port there.
    pub v6only: bool,
}

/// What holds a port on a host: a bound socket's address and options.
#[derive(Debug, Clone, Copy)]
pub(super) struct PortHolder {
    pub(super) host: HostId,
    pub(super) address: SocketAddr,
    pub(super) options: BindOptions,
}

/// Whether a socket bound to `bound` (with `v6only`) takes traffic to `destination`:
/// its own address, or a wildcard of the destination's family (a dual-stack `::`
/// takes IPv4 too).
pub(super) fn takes(bound: IpAddr, v6only: bool, destination: IpAddr) -> bool {
    if bound == destination {
        return true;
    }
    match bound {
        IpAddr::V4(ip) => ip.is_unspecified() && destination.is_ipv4(),
        IpAddr::V6(ip) => ip.is_unspecified() && (destination.is_ipv6() || !v6only),
    }
}

/// Whether two bound sockets would hold the same port: either takes traffic to the
/// other's address (a wildcard covers its family's addresses, and a dual-stack `::`
/// the IPv4 ones too).
fn addresses_overlap(a: IpAddr, a_v6only: bool, b: IpAddr, b_v6only: bool) -> bool {
    takes(a, a_v6only, b) || takes(b, b_v6only, a)
}

/// One of `candidates` (sockets sharing an address through SO_REUSEPORT, in id
/// order) for traffic from `peer`: a fixed hash of the peer's address, so one peer
/// keeps reaching the same socket, as with Linux's spreading by the 4-tuple.
pub(super) fn pick_by_hash<T: Copy>(candidates: &[T], peer: SocketAddr) -> Option<T> {
    match candidates {
        [] => None,
        [only] => Some(*only),
        _ => {
            // FNV-1a over the peer's address and port.
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            let octets: Vec<u8> = match peer.ip() {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            };
            for byte in octets.iter().chain(peer.port().to_be_bytes().iter()) {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
            Some(candidates[(hash % candidates.len() as u64) as usize])
        }
    }
}

impl Network {
    // ------------------------------------------------------------------ hosts

    /// Add a host owning `addresses` (none of them loopback, unspecified or owned by
    /// another host). Every host also answers on loopback, to itself.
    pub fn add_host(&mut self, addresses: &[IpAddr]) -> Result<HostId, NetError> {
        for (at, ip) in addresses.iter().enumerate() {
            if ip.is_loopback() || ip.is_unspecified() {
                return Err(NetError::invalid(
                    "addresses",
                    format!("{ip} is loopback or unspecified; every host has those already"),
                ));
            }
            if self.host_by_ip.contains_key(ip) || addresses[..at].contains(ip) {
                return Err(NetError::AddressTaken(*ip));
            }
        }
        let host = HostId(self.hosts.len() as u32);
        for ip in addresses {
            self.host_by_ip.insert(*ip, host);
        }
        self.hosts.push(Host {
            addresses: addresses.to_vec(),
            stream_ports: PortTable::new(),
            datagram_ports: PortTable::new(),
        });
        Ok(host)
    }

    /// The host that owns `ip`, if any (loopback belongs to every host, so: none).
    pub fn host_of(&self, ip: IpAddr) -> Option<HostId> {
        self.host_by_ip.get(&ip).copied()
    }

    pub fn addresses(&self, host: HostId) -> Result<&[IpAddr], NetError> {
        Ok(&self.host(host)?.addresses)
    }

    pub(super) fn host(&self, host: HostId) -> Result<&Host, NetError> {
        self.hosts
            .get(host.0 as usize)
            .ok_or(NetError::UnknownHost(host))
    }

    pub(super) fn host_mut(&mut self, host: HostId) -> &mut Host {
        &mut self.hosts[host.0 as usize]
    }

    /// The host `ip` names when `from` sends to it.
    pub(super) fn resolve(&self, from: HostId, ip: IpAddr) -> Option<HostId> {
        if ip.is_loopback() {
            Some(from)
        } else {
            self.host_of(ip)
        }
    }

    /// The source address `from` uses toward `destination`.
    pub(super) fn source_ip(&self, from: HostId, destination: IpAddr) -> IpAddr {
        let (loopback, unspecified) = match destination {
            IpAddr::V4(_) => (
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            ),
            IpAddr::V6(_) => (
                IpAddr::V6(Ipv6Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ),
        };
        if destination.is_loopback() {
            return loopback;
        }
        let addresses = &self.hosts[from.0 as usize].addresses;
        addresses
            .iter()
            .find(|ip| ip.is_ipv4() == destination.is_ipv4())
            .or(addresses.first())
            .copied()
            .unwrap_or(unspecified)
    }

    /// Can `host` bind `ip`: unspecified, loopback, or one of its own addresses.
    /// Check that `address` can be bound on `host` (none of `bound_to` holds it) and
    /// reserve its port, an ephemeral one for port 0; the address actually bound.
    /// With SO_REUSEPORT (`options`), the address may be shared with sockets that
    /// set it too.
    pub(super) fn reserve_port(
        &mut self,
        host: HostId,
        address: SocketAddr,
        kind: PortKind,
        bound_to: &[PortHolder],
        options: BindOptions,
    ) -> Result<SocketAddr, NetError> {
        self.check_bindable(host, address.ip())?;
        let port = if address.port() == 0 {
            self.host_mut(host)
                .ports(kind)
                .ephemeral()
                .ok_or(NetError::PortsExhausted(host))?
        } else {
            let clash = bound_to.iter().any(|holder| {
                holder.host == host
                    && holder.address.port() == address.port()
                    && addresses_overlap(
                        holder.address.ip(),
                        holder.options.v6only,
                        address.ip(),
                        options.v6only,
                    )
                    && !(holder.options.reuse_port && options.reuse_port)
            });
            if clash {
                return Err(NetError::AddressInUse(address));
            }
            address.port()
        };
        self.host_mut(host).ports(kind).take(port);
        Ok(SocketAddr::new(address.ip(), port))
    }

    fn check_bindable(&self, host: HostId, ip: IpAddr) -> Result<(), NetError> {
        let owned = &self.host(host)?.addresses;
        if ip.is_unspecified() || ip.is_loopback() || owned.contains(&ip) {
            Ok(())
        } else {
            Err(NetError::AddressNotOnHost { host, ip })
        }
    }

    /// The processes on `host` crash: its listeners and datagram sockets vanish, its
    /// connections are gone (their peers on other hosts see a reset, or a refusal if
    /// still connecting), and what it had in flight or held is dropped. Connects to it
    /// that have not arrived yet carry on and find whatever listens when they do.
    /// Returns the connections that had a side on `host`, in id order; the crashed
    /// side gets no event.
    pub fn crash_host(&mut self, host: HostId, now_ns: u64) -> Result<Vec<ConnId>, NetError> {
        let now = self.advance(now_ns);
        self.host(host)?;
        self.listeners.retain(|_, listener| listener.host != host);
        self.datagram_sockets
            .retain(|_, socket| socket.host != host);
        let sockets = &self.datagram_sockets;
        self.datagram_flows
            .retain(|(socket, _), _| sockets.contains_key(socket));
        let crashed = self.host_mut(host);
        crashed.stream_ports = PortTable::new();
        crashed.datagram_ports = PortTable::new();
        let affected: Vec<(ConnId, [bool; 2])> = self
            .connections
            .iter()
            .filter_map(|(id, c)| {
                let client_here = c.endpoint(Side::Client).host == host;
                let server_here = c.endpoint(Side::Server).host == host;
                if client_here {
                    Some((*id, [false, !server_here]))
                } else if server_here && c.connect_arrived() {
                    Some((*id, [true, false]))
                } else {
                    None
                }
            })
            .collect();
        for &(conn, notify) in &affected {
            self.tear_down(conn, notify, now);
        }
        self.queue.retain(
            |_, scheduled| !matches!(scheduled, Scheduled::Datagram(d) if d.src_host == host),
        );
        Ok(affected.into_iter().map(|(conn, _)| conn).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::events::NetEvent;
    use crate::net::links::LinkShape;
    use crate::net::test_support::{
        address, established, ip, network, run_until_idle, Canonical, MS,
    };

    #[test]
    fn addresses_bind_once_and_ephemeral_ports_are_distinct() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.listen(hosts[0], address(1, 80), 8).unwrap();
        assert_eq!(
            net.listen(hosts[0], address(1, 80), 8),
            Err(NetError::AddressInUse(address(1, 80)))
        );
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
        assert_eq!(
            net.listen(hosts[0], any, 8),
            Err(NetError::AddressInUse(any))
        );
        assert_eq!(
            net.listen(hosts[0], address(2, 81), 8),
            Err(NetError::AddressNotOnHost {
                host: hosts[0],
                ip: ip(2)
            })
        );
        let first = net.listen(hosts[0], address(1, 0), 8).unwrap();
        let second = net.listen(hosts[0], address(1, 0), 8).unwrap();
        assert_ne!(
            net.listener_address(first).unwrap(),
            net.listener_address(second).unwrap()
        );
        let socket = net.bind_datagram(hosts[0], address(1, 80)).unwrap();
        assert_eq!(net.datagram_address(socket), Ok(address(1, 80)));
        assert_eq!(net.add_host(&[ip(2)]), Err(NetError::AddressTaken(ip(2))));
    }

    #[test]
    fn a_crashed_host_resets_its_peers_and_loses_its_listeners_sockets_and_outgoing_data() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, _) = established(&mut net, hosts[0], hosts[1]);
        // The crashing host is also the client of a connection to the survivor.
        let (outgoing, start) = established(&mut net, hosts[1], hosts[0]);
        net.send(&mut choices, outgoing, Side::Client, b"dropped", start)
            .unwrap();
        let receiver = net.bind_datagram(hosts[0], address(1, 53)).unwrap();
        let sender = net.bind_datagram(hosts[1], address(2, 53)).unwrap();
        net.send(&mut choices, conn, Side::Server, b"dropped", start)
            .unwrap();
        net.send_datagram(
            &mut choices,
            sender,
            address(1, 53),
            b"dropped".to_vec(),
            start,
        )
        .unwrap();
        // A connect on its way to the crashing host finds no listener when it arrives.
        let late = net
            .connect(&mut choices, hosts[0], address(2, 80), start)
            .unwrap();
        assert_eq!(net.crash_host(hosts[1], start), Ok(vec![conn, outgoing]));
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (
                    start,
                    NetEvent::Reset {
                        conn,
                        side: Side::Client
                    }
                ),
                (
                    start,
                    NetEvent::Reset {
                        conn: outgoing,
                        side: Side::Server
                    }
                ),
                (start + 2 * MS, NetEvent::Refused { conn: late }),
            ]
        );
        assert_eq!(
            net.datagram_address(sender),
            Err(NetError::UnknownDatagramSocket(sender))
        );
        assert!(net.datagram_address(receiver).is_ok());
        // The host comes back and listens again.
        net.listen(hosts[1], address(2, 80), 8).unwrap();
        let (_, _) = established(&mut net, hosts[0], hosts[1]);
    }
}
