//! Names both ways: which address a name means, and which name an address has.
//!
//! Keys are names as the caller folded them (the facade lower-cases and drops a
//! trailing dot, with the host language's own case rules, before asking), so this
//! table compares exactly. The loopback names mean 127.0.0.1 on every host, whatever
//! is registered under them.
//!
//! The reverse direction answers with the *earliest registered* name that still
//! means the address — a host's own name, which is registered when the host is
//! made, before any alias can point at it. Re-pointing a name keeps its place in
//! that order (a name's rank is when it was first registered), so the answer is
//! what a scan of the names in registration order would find, as a map lookup.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};

/// Names every host resolves to its own loopback.
pub const LOCAL_NAMES: [&str; 3] = ["localhost", "localhost.localdomain", "ip6-localhost"];

pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

#[derive(Debug, Clone, Default)]
pub struct Dns {
    /// Name → (rank, address); the rank is the order of first registration.
    forward: HashMap<String, (u64, IpAddr)>,
    /// Address → the names meaning it, by rank.
    reverse: HashMap<IpAddr, BTreeMap<u64, String>>,
    next_rank: u64,
}

impl Dns {
    pub fn new() -> Dns {
        Dns::default()
    }

    /// `name` means `address` from now on.
    pub fn register(&mut self, name: &str, address: IpAddr) {
        let rank = match self.forward.get(name) {
            Some(&(_, old)) if old == address => return,
            Some(&(rank, old)) => {
                if let Some(names) = self.reverse.get_mut(&old) {
                    names.remove(&rank);
                    if names.is_empty() {
                        self.reverse.remove(&old);
                    }
                }
                rank
            }
            None => {
                self.next_rank += 1;
                self.next_rank
            }
        };
        self.forward.insert(name.to_owned(), (rank, address));
        self.reverse
            .entry(address)
            .or_default()
            .insert(rank, name.to_owned());
    }

    /// The address `name` means: loopback for the local names, else what was
    /// registered under it.
    pub fn resolve(&self, name: &str) -> Option<IpAddr> {
        if LOCAL_NAMES.contains(&name) {
            return Some(LOOPBACK);
        }
        self.forward.get(name).map(|&(_, address)| address)
    }

    /// The earliest registered name that means `address`.
    pub fn name_of(&self, address: IpAddr) -> Option<&str> {
        self.reverse
            .get(&address)
            .and_then(|names| names.values().next())
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    #[test]
    fn names_resolve_to_what_was_registered_and_local_names_to_loopback() {
        let mut dns = Dns::new();
        dns.register("a", ip(2));
        dns.register("svc", ip(2));
        assert_eq!(dns.resolve("a"), Some(ip(2)));
        assert_eq!(dns.resolve("svc"), Some(ip(2)));
        assert_eq!(dns.resolve("b"), None);
        for name in LOCAL_NAMES {
            assert_eq!(dns.resolve(name), Some(LOOPBACK));
        }
        dns.register("localhost", ip(2));
        assert_eq!(dns.resolve("localhost"), Some(LOOPBACK), "never shadowed");
    }

    #[test]
    fn an_address_is_named_by_its_earliest_registered_name() {
        let mut dns = Dns::new();
        dns.register("a", ip(2));
        dns.register("b", ip(3));
        dns.register("alias", ip(2));
        assert_eq!(dns.name_of(ip(2)), Some("a"));
        assert_eq!(dns.name_of(ip(3)), Some("b"));
        assert_eq!(dns.name_of(ip(4)), None);
        assert_eq!(dns.name_of(LOOPBACK), None);
    }

    #[test]
    fn a_re_pointed_name_keeps_its_rank_and_leaves_its_old_address() {
        let mut dns = Dns::new();
        dns.register("a", ip(2));
        dns.register("alias", ip(2));
        dns.register("b", ip(3));
        // "a" now means b's address: a is older than b, so it names it, and a's old
        // address is named by the alias.
        dns.register("a", ip(3));
        assert_eq!(dns.resolve("a"), Some(ip(3)));
        assert_eq!(dns.name_of(ip(3)), Some("a"));
        assert_eq!(dns.name_of(ip(2)), Some("alias"));
        dns.register("alias", ip(3));
        assert_eq!(dns.name_of(ip(2)), None, "no name left");
        dns.register("a", ip(3));
        assert_eq!(
            dns.name_of(ip(3)),
            Some("a"),
            "registering again changes nothing"
        );
    }

    #[test]
    fn the_reverse_answer_is_what_a_scan_in_registration_order_finds() {
        // A scan of (name, address) in first-registration order, the reference.
        let mut dns = Dns::new();
        let mut scan: Vec<(String, IpAddr)> = Vec::new();
        let mut state = 7u64;
        for _ in 0..2000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let name = format!("n{}", (state >> 33) % 40);
            let address = ip(2 + ((state >> 20) % 6) as u8);
            dns.register(&name, address);
            match scan.iter_mut().find(|(n, _)| *n == name) {
                Some(entry) => entry.1 = address,
                None => scan.push((name, address)),
            }
            for last in 2..8 {
                let expected = scan
                    .iter()
                    .find(|(_, a)| *a == ip(last))
                    .map(|(n, _)| n.as_str());
                assert_eq!(dns.name_of(ip(last)), expected);
            }
        }
    }
}
