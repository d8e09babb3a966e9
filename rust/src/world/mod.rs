//! The simulated world of one universe, around its network: the hosts (names,
//! addresses, incarnations, which are up), DNS both ways, the Unix-path namespace,
//! and endpoint routing (who hears each stream side, listener and datagram socket,
//! and which host owns it), with the crash and restart that change them together.
//!
//! Owns: that state, by concern — `hosts` (records, incarnations), `dns` (names
//! both ways), `unix` (socket paths), `endpoints` (routing) — and the operations
//! that span them and the network ([`World::add_host`], [`World::crash`]). Must not:
//! know about Python (the host and endpoint payloads are generic; the FFI layer
//! keeps its Python objects there), model delivery (the network does), or decide
//! anything (nothing here is a choice). Argument checking with the user's words is
//! the facade's (`simloom.world`); what reaches here is already valid, and a
//! violation is a [`WorldError`].
//!
//! Ids are the network's: a host added here is added to the [`Network`] too, in one
//! order, so `HostId(n)` names the same host in both.

mod dns;
mod endpoints;
mod hosts;
mod unix;

pub use self::dns::{Dns, LOCAL_NAMES, LOOPBACK};
pub use self::endpoints::Endpoints;
pub use self::hosts::{HostRecord, MAIN_INCARNATION};
pub use self::unix::UnixPaths;

use self::hosts::Hosts;
use crate::net::{ConnId, HostId, NetError, Network};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Hosts get 10.0.0.1, 10.0.0.2, ... in creation order; the first (the main host,
/// where the program runs) is 10.0.0.1.
pub const FIRST_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorldError {
    UnknownHost(HostId),
    NameTaken(String),
    /// The main host runs the program itself.
    MainHostCannotCrash,
    AlreadyCrashed(HostId),
    NotCrashed(HostId),
    AddressesExhausted,
    Net(NetError),
}

impl From<NetError> for WorldError {
    fn from(error: NetError) -> Self {
        WorldError::Net(error)
    }
}

impl fmt::Display for WorldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorldError::UnknownHost(host) => write!(f, "no host {}", host.0),
            WorldError::NameTaken(name) => write!(f, "there is a host named {name:?} already"),
            WorldError::MainHostCannotCrash => write!(f, "the main host cannot crash"),
            WorldError::AlreadyCrashed(host) => write!(f, "host {} has crashed already", host.0),
            WorldError::NotCrashed(host) => write!(f, "host {} is running", host.0),
            WorldError::AddressesExhausted => write!(f, "no address is left for a new host"),
            WorldError::Net(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for WorldError {}

/// What a crash took down.
#[derive(Debug)]
pub struct Crashed<E> {
    /// The incarnation that ended.
    pub incarnation: u64,
    /// The connections that had a side on the host (the network's answer).
    pub connections: Vec<ConnId>,
    /// The endpoints to tell (see [`Endpoints::take_crashed`]), no longer routed.
    pub endpoints: Vec<E>,
}

#[derive(Debug, Clone)]
pub struct World<H, E> {
    hosts: Hosts<H>,
    dns: Dns,
    unix: UnixPaths,
    endpoints: Endpoints<E>,
}

impl<H, E> Default for World<H, E> {
    fn default() -> Self {
        World::new()
    }
}

impl<H, E> World<H, E> {
    pub fn new() -> World<H, E> {
        World {
            hosts: Hosts::new(),
            dns: Dns::new(),
            unix: UnixPaths::new(),
            endpoints: Endpoints::new(),
        }
    }

    // ------------------------------------------------------------------ hosts

    /// Make the host `name` with the next address, on `net` too. The first host is
    /// the main one (incarnation 0); every later one begins its first incarnation.
    /// Its name is not registered in DNS: the facade registers it under its own
    /// case folding (`register_name`).
    pub fn add_host(
        &mut self,
        net: &mut Network,
        name: &str,
        payload: H,
    ) -> Result<HostId, WorldError> {
        if self.hosts.named(name).is_some() {
            return Err(WorldError::NameTaken(name.to_owned()));
        }
        let address = u32::try_from(self.hosts.len())
            .ok()
            .and_then(|index| u32::from(FIRST_ADDRESS).checked_add(index))
            .map(Ipv4Addr::from)
            .filter(|address| address.octets()[0] == FIRST_ADDRESS.octets()[0])
            .ok_or(WorldError::AddressesExhausted)?;
        let id = net.add_host(&[IpAddr::V4(address)])?;
        self.hosts.add(id, name, address, payload);
        Ok(id)
    }

    pub fn host(&self, id: HostId) -> Result<&HostRecord<H>, WorldError> {
        self.hosts.get(id).ok_or(WorldError::UnknownHost(id))
    }

    /// Replace the host's payload (the FFI layer makes its `Host` once it knows the
    /// id and address).
    pub fn set_payload(&mut self, id: HostId, payload: H) -> Result<(), WorldError> {
        self.hosts
            .get_mut(id)
            .ok_or(WorldError::UnknownHost(id))?
            .set_payload(payload);
        Ok(())
    }

    pub fn host_named(&self, name: &str) -> Option<HostId> {
        self.hosts.named(name)
    }

    /// The host running code of `incarnation` (0: the main host).
    pub fn running_host(&self, incarnation: u64) -> Option<&HostRecord<H>> {
        self.hosts
            .running(incarnation)
            .and_then(|id| self.hosts.get(id))
    }

    /// Every host, in creation order.
    pub fn hosts(&self) -> impl Iterator<Item = &HostRecord<H>> {
        self.hosts.iter()
    }

    /// The host's processes die: the host is down, its incarnation ends, the
    /// network drops its listeners, sockets and connections (`Network::crash_host`),
    /// its Unix paths are freed, and the endpoints it owned are no longer routed and
    /// are handed back, for the caller to tell them.
    pub fn crash(
        &mut self,
        net: &mut Network,
        host: HostId,
        now_ns: u64,
    ) -> Result<Crashed<E>, WorldError> {
        let record = self.host(host)?;
        if record.incarnation() == MAIN_INCARNATION {
            return Err(WorldError::MainHostCannotCrash);
        }
        if !record.alive() {
            return Err(WorldError::AlreadyCrashed(host));
        }
        let incarnation = record.incarnation();
        let connections = net.crash_host(host, now_ns)?;
        self.hosts.mark_crashed(host);
        self.unix.clear_host(host);
        let endpoints = self.endpoints.take_crashed(host, &connections);
        Ok(Crashed {
            incarnation,
            connections,
            endpoints,
        })
    }

    /// A crashed host comes back in a new incarnation; its number.
    pub fn restart(&mut self, host: HostId) -> Result<u64, WorldError> {
        if self.host(host)?.alive() {
            return Err(WorldError::NotCrashed(host));
        }
        Ok(self.hosts.restart(host))
    }

    // -------------------------------------------------------------------- dns

    /// `name` (as the facade folds names) means `host`'s address from now on.
    pub fn register_name(&mut self, name: &str, host: HostId) -> Result<(), WorldError> {
        let address = self.host(host)?.address();
        self.dns.register(name, IpAddr::V4(address));
        Ok(())
    }

    pub fn resolve(&self, name: &str) -> Option<IpAddr> {
        self.dns.resolve(name)
    }

    /// Reverse DNS: the earliest registered name meaning `address`.
    pub fn name_of(&self, address: IpAddr) -> Option<&str> {
        self.dns.name_of(address)
    }

    // ------------------------------------------------------------ unix paths

    /// `path` on `host` is served by the loopback stream `port`; false if taken.
    pub fn bind_unix(&mut self, host: HostId, path: &str, port: u16) -> bool {
        self.unix.bind(host, path, port)
    }

    pub fn unix_port(&self, host: HostId, path: &str) -> Option<u16> {
        self.unix.port(host, path)
    }

    pub fn unbind_unix(&mut self, host: HostId, path: &str) {
        self.unix.unbind(host, path);
    }

    // -------------------------------------------------------------- routing

    pub fn endpoints(&self) -> &Endpoints<E> {
        &self.endpoints
    }

    pub fn endpoints_mut(&mut self) -> &mut Endpoints<E> {
        &mut self.endpoints
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{ListenerId, Side};
    use std::net::SocketAddr;

    fn world(names: &[&str]) -> (World<String, &'static str>, Network, Vec<HostId>) {
        let mut world = World::new();
        let mut net = Network::new();
        let ids = names
            .iter()
            .map(|name| {
                let id = world.add_host(&mut net, name, name.to_string()).unwrap();
                world.register_name(&name.to_lowercase(), id).unwrap();
                id
            })
            .collect();
        (world, net, ids)
    }

    use crate::choices::doubles::Canonical;

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn hosts_get_consecutive_addresses_on_the_network_too() {
        let (world, net, ids) = world(&["main", "a", "b"]);
        let addresses: Vec<Ipv4Addr> = world.hosts().map(HostRecord::address).collect();
        assert_eq!(
            addresses,
            [
                FIRST_ADDRESS,
                Ipv4Addr::new(10, 0, 0, 2),
                Ipv4Addr::new(10, 0, 0, 3)
            ]
        );
        assert_eq!(net.host_of(v4(3)), Some(ids[2]));
        assert_eq!(world.host_named("b"), Some(ids[2]));
        assert_eq!(world.host(ids[1]).unwrap().payload(), "a");
        let mut again = world.clone();
        let mut net = net;
        assert_eq!(
            again.add_host(&mut net, "a", String::new()),
            Err(WorldError::NameTaken("a".into()))
        );
    }

    #[test]
    fn many_hosts_each_have_their_own_address_and_reverse_name() {
        let names: Vec<String> = (0..600).map(|n| format!("h{n}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (world, _, ids) = world(&refs);
        for (n, id) in ids.iter().enumerate() {
            let address = world.host(*id).unwrap().address();
            assert_eq!(u32::from(address), u32::from(FIRST_ADDRESS) + n as u32);
            assert_eq!(world.resolve(&names[n]), Some(IpAddr::V4(address)));
            assert_eq!(world.name_of(IpAddr::V4(address)), Some(names[n].as_str()));
        }
    }

    #[test]
    fn dns_both_ways_over_hosts_and_aliases() {
        let (mut world, _, ids) = world(&["main", "Web", "db"]);
        world.register_name("www", ids[1]).unwrap();
        world.register_name("primary", ids[2]).unwrap();
        assert_eq!(world.resolve("web"), Some(v4(2)));
        assert_eq!(world.resolve("www"), Some(v4(2)));
        assert_eq!(world.resolve("localhost"), Some(LOOPBACK));
        assert_eq!(world.resolve("nowhere"), None);
        assert_eq!(
            world.name_of(v4(2)),
            Some("web"),
            "the host's own, folded name"
        );
        assert_eq!(world.name_of(v4(3)), Some("db"));
        assert_eq!(
            world.register_name("x", HostId(9)),
            Err(WorldError::UnknownHost(HostId(9)))
        );
    }

    #[test]
    fn the_running_host_follows_incarnations_across_crash_and_restart() {
        let (mut world, mut net, ids) = world(&["main", "a", "b"]);
        assert_eq!(world.running_host(0).unwrap().name(), "main");
        assert_eq!(world.running_host(1).unwrap().name(), "a");
        let crashed = world.crash(&mut net, ids[1], 0).unwrap();
        assert_eq!(crashed.incarnation, 1);
        assert!(!world.host(ids[1]).unwrap().alive());
        assert_eq!(
            world.crash(&mut net, ids[1], 0).unwrap_err(),
            WorldError::AlreadyCrashed(ids[1])
        );
        assert_eq!(world.restart(ids[1]), Ok(3));
        assert_eq!(world.restart(ids[1]), Err(WorldError::NotCrashed(ids[1])));
        assert_eq!(world.running_host(3).unwrap().name(), "a");
        assert_eq!(
            world.running_host(1).unwrap().name(),
            "a",
            "the old life's code"
        );
        assert_eq!(
            world.crash(&mut net, ids[0], 0).unwrap_err(),
            WorldError::MainHostCannotCrash
        );
    }

    #[test]
    fn a_crash_frees_the_hosts_unix_paths_and_hands_back_its_endpoints() {
        let (mut world, mut net, ids) = world(&["main", "a", "b"]);
        let (a, b) = (ids[1], ids[2]);
        let any = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let listener = net.listen(b, any(80), 8).unwrap();
        world
            .endpoints_mut()
            .register_listener(listener, b, "b's listener");
        let unix = net.listen(b, SocketAddr::new(LOOPBACK, 0), 8).unwrap();
        let port = net.listener_address(unix).unwrap().port();
        assert!(world.bind_unix(b, "/run/b.sock", port));
        assert!(world.bind_unix(a, "/run/b.sock", 1), "a's own namespace");
        world.endpoints_mut().register_listener(unix, b, "b's unix");
        let mut choices = Canonical::default();
        let conn = net
            .connect(&mut choices, a, SocketAddr::new(v4(3), 80), 0)
            .unwrap();
        world
            .endpoints_mut()
            .register_stream(conn, Side::Client, a, "a's side");
        let crashed = world.crash(&mut net, b, 0).unwrap();
        assert_eq!(crashed.endpoints, ["b's listener", "b's unix"]);
        assert_eq!(world.unix_port(b, "/run/b.sock"), None);
        assert_eq!(world.unix_port(a, "/run/b.sock"), Some(1));
        assert!(
            world.bind_unix(b, "/run/b.sock", port),
            "free after the crash"
        );
        assert_eq!(world.endpoints().listener(ListenerId(listener.0)), None);
        // a's connection attempt was to b; a's side is a's, and stays routed.
        assert_eq!(
            world.endpoints().stream(conn, Side::Client),
            Some(&"a's side")
        );
        let crashed = world.crash(&mut net, a, 0).unwrap();
        assert_eq!(crashed.connections, [conn]);
        assert_eq!(crashed.endpoints, ["a's side"]);
    }
}
