//! The hosts of a world: each one's name, address, incarnation and whether it is up,
//! found by id, by name, or by the incarnation of the code running.
//!
//! An *incarnation* is one life of a host, numbered across the whole world from 1
//! in the order they begin (a host's first life when it is made, each restart a new
//! one). The first host is the one the program itself runs on: it has incarnation 0
//! for good, and never crashes. Code carries the incarnation it runs in (the FFI
//! layer keeps it in a context variable), so "which host is running" is a lookup.

use crate::net::HostId;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The incarnation of the first host's code, and of code that runs on no host.
pub const MAIN_INCARNATION: u64 = 0;

/// One host: what the world knows of it, and the caller's payload (the FFI layer
/// keeps the Python `Host` object there).
#[derive(Debug, Clone)]
pub struct HostRecord<H> {
    name: String,
    address: Ipv4Addr,
    incarnation: u64,
    alive: bool,
    payload: H,
}

impl<H> HostRecord<H> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The current (or, while crashed, the last) incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// False between a crash and the restart.
    pub fn alive(&self) -> bool {
        self.alive
    }

    pub fn payload(&self) -> &H {
        &self.payload
    }

    pub fn set_payload(&mut self, payload: H) {
        self.payload = payload;
    }
}

/// Every host, by id (the network's id: hosts are added to both in one order), by
/// exact name, and by incarnation.
#[derive(Debug, Clone)]
pub(super) struct Hosts<H> {
    records: Vec<HostRecord<H>>,
    by_name: HashMap<String, HostId>,
    /// Every incarnation ever begun (a crashed one still names its host: its tasks'
    /// contexts keep it).
    by_incarnation: HashMap<u64, HostId>,
    next_incarnation: u64,
}

impl<H> Hosts<H> {
    pub(super) fn new() -> Hosts<H> {
        Hosts {
            records: Vec::new(),
            by_name: HashMap::new(),
            by_incarnation: HashMap::new(),
            next_incarnation: MAIN_INCARNATION + 1,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// Add the host the network just called `id`; the first one added is the main
    /// host (incarnation 0), every later one begins its first incarnation.
    pub(super) fn add(&mut self, id: HostId, name: &str, address: Ipv4Addr, payload: H) {
        debug_assert_eq!(
            id.0 as usize,
            self.records.len(),
            "ids follow the network's"
        );
        let incarnation = if self.records.is_empty() {
            MAIN_INCARNATION
        } else {
            self.begin_incarnation(id)
        };
        self.by_name.insert(name.to_owned(), id);
        self.records.push(HostRecord {
            name: name.to_owned(),
            address,
            incarnation,
            alive: true,
            payload,
        });
    }

    fn begin_incarnation(&mut self, id: HostId) -> u64 {
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        self.by_incarnation.insert(incarnation, id);
        incarnation
    }

    pub(super) fn get(&self, id: HostId) -> Option<&HostRecord<H>> {
        self.records.get(id.0 as usize)
    }

    pub(super) fn named(&self, name: &str) -> Option<HostId> {
        self.by_name.get(name).copied()
    }

    /// The host whose code carries `incarnation` (0: the main host, once it exists).
    pub(super) fn running(&self, incarnation: u64) -> Option<HostId> {
        if incarnation == MAIN_INCARNATION {
            return (!self.records.is_empty()).then_some(HostId(0));
        }
        self.by_incarnation.get(&incarnation).copied()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &HostRecord<H>> {
        self.records.iter()
    }

    pub(super) fn get_mut(&mut self, id: HostId) -> Option<&mut HostRecord<H>> {
        self.records.get_mut(id.0 as usize)
    }

    pub(super) fn mark_crashed(&mut self, id: HostId) {
        self.records[id.0 as usize].alive = false;
    }

    /// A crashed host comes back in a new incarnation; its number.
    pub(super) fn restart(&mut self, id: HostId) -> u64 {
        let incarnation = self.begin_incarnation(id);
        let record = &mut self.records[id.0 as usize];
        record.incarnation = incarnation;
        record.alive = true;
        incarnation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Hosts<&'static str> {
        let mut hosts = Hosts::new();
        for (n, name) in ["main", "a", "b"].into_iter().enumerate() {
            hosts.add(
                HostId(n as u32),
                name,
                Ipv4Addr::new(10, 0, 0, n as u8 + 1),
                name,
            );
        }
        hosts
    }

    #[test]
    fn the_first_host_is_main_with_incarnation_zero_and_the_rest_count_from_one() {
        let hosts = three();
        let incarnations: Vec<u64> = hosts.iter().map(HostRecord::incarnation).collect();
        assert_eq!(incarnations, [0, 1, 2]);
        assert_eq!(hosts.running(0), Some(HostId(0)));
        assert_eq!(hosts.running(2), Some(HostId(2)));
        assert_eq!(hosts.running(3), None);
        assert_eq!(Hosts::<()>::new().running(0), None, "no main host yet");
    }

    #[test]
    fn hosts_are_found_by_exact_name() {
        let hosts = three();
        assert_eq!(hosts.named("a"), Some(HostId(1)));
        assert_eq!(hosts.named("A"), None);
        assert_eq!(*hosts.get(HostId(2)).unwrap().payload(), "b");
        assert_eq!(
            hosts.get(HostId(2)).unwrap().address(),
            Ipv4Addr::new(10, 0, 0, 3)
        );
    }

    #[test]
    fn a_restart_begins_a_new_incarnation_and_the_old_one_still_names_the_host() {
        let mut hosts = three();
        hosts.mark_crashed(HostId(1));
        assert!(!hosts.get(HostId(1)).unwrap().alive());
        assert_eq!(
            hosts.get(HostId(1)).unwrap().incarnation(),
            1,
            "the last one"
        );
        assert_eq!(hosts.restart(HostId(1)), 3);
        let record = hosts.get(HostId(1)).unwrap();
        assert!(record.alive());
        assert_eq!(record.incarnation(), 3);
        assert_eq!(hosts.running(1), Some(HostId(1)));
        assert_eq!(hosts.running(3), Some(HostId(1)));
    }
}
