//! The Unix-socket namespace: each host's socket paths and the loopback stream port
//! that serves each (a Unix server is a loopback listener under a path). A crash
//! frees every path of the host, as the kernel does when the processes die.

use crate::net::HostId;
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct UnixPaths {
    ports: HashMap<(HostId, String), u16>,
}

impl UnixPaths {
    pub fn new() -> UnixPaths {
        UnixPaths::default()
    }

    /// `path` on `host` is served by `port`; false (and nothing changes) if the
    /// path is taken.
    pub fn bind(&mut self, host: HostId, path: &str, port: u16) -> bool {
        let key = (host, path.to_owned());
        if self.ports.contains_key(&key) {
            return false;
        }
        self.ports.insert(key, port);
        true
    }

    pub fn port(&self, host: HostId, path: &str) -> Option<u16> {
        // A borrowed lookup would need a key type of its own; paths are short.
        self.ports.get(&(host, path.to_owned())).copied()
    }

    pub fn unbind(&mut self, host: HostId, path: &str) {
        self.ports.remove(&(host, path.to_owned()));
    }

    /// Free every path of `host`.
    pub fn clear_host(&mut self, host: HostId) {
        self.ports.retain(|(owner, _), _| *owner != host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_bound_once_per_host_and_freed_by_unbind_or_the_hosts_crash() {
        let mut paths = UnixPaths::new();
        let (a, b) = (HostId(1), HostId(2));
        assert!(paths.bind(a, "/run/x.sock", 49152));
        assert!(!paths.bind(a, "/run/x.sock", 49153), "taken");
        assert!(
            paths.bind(b, "/run/x.sock", 49152),
            "another host's namespace"
        );
        assert!(paths.bind(a, "/run/y.sock", 49154));
        assert_eq!(paths.port(a, "/run/x.sock"), Some(49152));
        paths.unbind(a, "/run/y.sock");
        assert_eq!(paths.port(a, "/run/y.sock"), None);
        paths.clear_host(a);
        assert_eq!(paths.port(a, "/run/x.sock"), None);
        assert_eq!(
            paths.port(b, "/run/x.sock"),
            Some(49152),
            "others keep theirs"
        );
        assert!(paths.bind(a, "/run/x.sock", 49155), "free again");
    }
}
