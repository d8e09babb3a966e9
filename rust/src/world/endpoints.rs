//! Endpoint routing: who hears each stream side, listener and datagram socket, and
//! which host owns it. The payload is the caller's (the FFI layer keeps each
//! transport's handlers there); the network's ids are the keys, so nothing mirrors
//! them elsewhere.

use crate::net::{ConnId, DatagramSocketId, HostId, ListenerId, Side};
use std::collections::HashMap;

#[derive(Debug, Clone)]
struct Owned<E> {
    host: HostId,
    endpoint: E,
}

#[derive(Debug, Clone)]
pub struct Endpoints<E> {
    streams: HashMap<(ConnId, Side), Owned<E>>,
    listeners: HashMap<ListenerId, Owned<E>>,
    datagrams: HashMap<DatagramSocketId, Owned<E>>,
}

impl<E> Default for Endpoints<E> {
    fn default() -> Self {
        Endpoints {
            streams: HashMap::new(),
            listeners: HashMap::new(),
            datagrams: HashMap::new(),
        }
    }
}

/// Register `endpoint` under `key`, owned by `host`; the one it replaces.
fn register<K: std::hash::Hash + Eq, E>(
    map: &mut HashMap<K, Owned<E>>,
    key: K,
    host: HostId,
    endpoint: E,
) -> Option<E> {
    map.insert(key, Owned { host, endpoint })
        .map(|old| old.endpoint)
}

/// Take the endpoints `host` owns out of `map`, in key order.
fn take_owned_by<K: Copy + Ord + std::hash::Hash + Eq, E>(
    map: &mut HashMap<K, Owned<E>>,
    host: HostId,
) -> Vec<E> {
    let mut keys: Vec<K> = map
        .iter()
        .filter(|(_, owned)| owned.host == host)
        .map(|(key, _)| *key)
        .collect();
    keys.sort_unstable();
    keys.into_iter()
        .filter_map(|key| map.remove(&key).map(|owned| owned.endpoint))
        .collect()
}

impl<E> Endpoints<E> {
    pub fn new() -> Endpoints<E> {
        Endpoints::default()
    }

    pub fn register_stream(
        &mut self,
        conn: ConnId,
        side: Side,
        host: HostId,
        endpoint: E,
    ) -> Option<E> {
        register(&mut self.streams, (conn, side), host, endpoint)
    }

    pub fn stream(&self, conn: ConnId, side: Side) -> Option<&E> {
        self.streams.get(&(conn, side)).map(|owned| &owned.endpoint)
    }

    pub fn forget_stream(&mut self, conn: ConnId, side: Side) -> Option<E> {
        self.streams
            .remove(&(conn, side))
            .map(|owned| owned.endpoint)
    }

    pub fn register_listener(
        &mut self,
        listener: ListenerId,
        host: HostId,
        endpoint: E,
    ) -> Option<E> {
        register(&mut self.listeners, listener, host, endpoint)
    }

    pub fn listener(&self, listener: ListenerId) -> Option<&E> {
        self.listeners.get(&listener).map(|owned| &owned.endpoint)
    }

    pub fn forget_listener(&mut self, listener: ListenerId) -> Option<E> {
        self.listeners.remove(&listener).map(|owned| owned.endpoint)
    }

    pub fn register_datagram(
        &mut self,
        socket: DatagramSocketId,
        host: HostId,
        endpoint: E,
    ) -> Option<E> {
        register(&mut self.datagrams, socket, host, endpoint)
    }

    pub fn datagram(&self, socket: DatagramSocketId) -> Option<&E> {
        self.datagrams.get(&socket).map(|owned| &owned.endpoint)
    }

    pub fn forget_datagram(&mut self, socket: DatagramSocketId) -> Option<E> {
        self.datagrams.remove(&socket).map(|owned| owned.endpoint)
    }

    /// `host` crashed and the network tore down the connections `gone`: take out,
    /// in this order, the stream sides of `gone` that `host` owns, its listeners and
    /// its datagram sockets (each kind in id order). A side of `host` whose
    /// connection was already torn down stays: its last events are on their way to
    /// it and are dropped with the host's incarnation.
    pub fn take_crashed(&mut self, host: HostId, gone: &[ConnId]) -> Vec<E> {
        let mut taken = Vec::new();
        for &conn in gone {
            for side in Side::BOTH {
                if self
                    .streams
                    .get(&(conn, side))
                    .is_some_and(|owned| owned.host == host)
                {
                    taken.extend(self.forget_stream(conn, side));
                }
            }
        }
        taken.extend(take_owned_by(&mut self.listeners, host));
        taken.extend(take_owned_by(&mut self.datagrams, host));
        taken
    }

    /// Every endpoint, in no particular order (for a garbage collector's visit).
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.streams
            .values()
            .chain(self.listeners.values())
            .chain(self.datagrams.values())
            .map(|owned| &owned.endpoint)
    }

    /// Forget everything; what was registered.
    pub fn clear(&mut self) -> Vec<E> {
        let streams = self.streams.drain().map(|(_, owned)| owned.endpoint);
        let listeners = self.listeners.drain().map(|(_, owned)| owned.endpoint);
        let datagrams = self.datagrams.drain().map(|(_, owned)| owned.endpoint);
        streams.chain(listeners).chain(datagrams).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_found_by_id_and_replaced_or_forgotten() {
        let mut endpoints = Endpoints::new();
        let (a, b) = (HostId(1), HostId(2));
        assert_eq!(
            endpoints.register_stream(ConnId(1), Side::Client, a, "c1"),
            None
        );
        assert_eq!(
            endpoints.register_stream(ConnId(1), Side::Server, b, "s1"),
            None
        );
        assert_eq!(endpoints.stream(ConnId(1), Side::Server), Some(&"s1"));
        assert_eq!(
            endpoints.register_stream(ConnId(1), Side::Server, b, "s1'"),
            Some("s1")
        );
        assert_eq!(endpoints.forget_stream(ConnId(1), Side::Client), Some("c1"));
        assert_eq!(endpoints.stream(ConnId(1), Side::Client), None);
        endpoints.register_listener(ListenerId(4), b, "l4");
        endpoints.register_datagram(DatagramSocketId(2), a, "d2");
        assert_eq!(endpoints.listener(ListenerId(4)), Some(&"l4"));
        assert_eq!(endpoints.datagram(DatagramSocketId(2)), Some(&"d2"));
        assert_eq!(endpoints.forget_listener(ListenerId(4)), Some("l4"));
        assert_eq!(endpoints.forget_datagram(DatagramSocketId(2)), Some("d2"));
        assert_eq!(endpoints.iter().count(), 1);
    }

    #[test]
    fn a_crash_takes_the_hosts_torn_down_sides_listeners_and_sockets_in_id_order() {
        let mut endpoints = Endpoints::new();
        let (a, b) = (HostId(1), HostId(2));
        for n in [3, 1, 2] {
            endpoints.register_listener(ListenerId(n), a, format!("a-listener-{n}"));
            endpoints.register_datagram(DatagramSocketId(n), a, format!("a-socket-{n}"));
        }
        endpoints.register_listener(ListenerId(9), b, "b-listener".to_owned());
        endpoints.register_datagram(DatagramSocketId(9), b, "b-socket".to_owned());
        // Connection 5: a is the client, b the server. Connection 6: both sides on a.
        // Connection 7: a's side, already torn down (not in `gone`).
        endpoints.register_stream(ConnId(5), Side::Client, a, "a-5".to_owned());
        endpoints.register_stream(ConnId(5), Side::Server, b, "b-5".to_owned());
        endpoints.register_stream(ConnId(6), Side::Server, a, "a-6s".to_owned());
        endpoints.register_stream(ConnId(6), Side::Client, a, "a-6c".to_owned());
        endpoints.register_stream(ConnId(7), Side::Client, a, "a-7".to_owned());
        let taken = endpoints.take_crashed(a, &[ConnId(6), ConnId(5)]);
        assert_eq!(
            taken,
            [
                "a-6c",
                "a-6s",
                "a-5",
                "a-listener-1",
                "a-listener-2",
                "a-listener-3",
                "a-socket-1",
                "a-socket-2",
                "a-socket-3"
            ]
        );
        let mut left: Vec<&String> = endpoints.iter().collect();
        left.sort();
        assert_eq!(left, ["a-7", "b-5", "b-listener", "b-socket"]);
        assert_eq!(endpoints.clear().len(), 4);
        assert_eq!(endpoints.iter().count(), 0);
    }
}
