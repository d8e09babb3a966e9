//! What a call on the network can refuse ([`NetError`]), and the checks of settings
//! that name the argument they reject.

use super::ids::{ConnId, DatagramSocketId, HostId, ListenerId, Side};
use super::MAX_DELAY_NS;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    UnknownHost(HostId),
    UnknownListener(ListenerId),
    UnknownDatagramSocket(DatagramSocketId),
    /// The connection never existed, or it was reset, refused or closed on both sides.
    NoSuchConnection(ConnId),
    /// That side is not open (still connecting, or closed).
    NotOpen {
        conn: ConnId,
        side: Side,
    },
    /// That side already shut its write side.
    WriteShut {
        conn: ConnId,
        side: Side,
    },
    /// The address belongs to another host already.
    AddressTaken(IpAddr),
    /// The host cannot bind this IP: it is not one of its addresses.
    AddressNotOnHost {
        host: HostId,
        ip: IpAddr,
    },
    AddressInUse(SocketAddr),
    /// No host has this address.
    NoRouteToHost(IpAddr),
    /// Every ephemeral port of the host is in use.
    PortsExhausted(HostId),
    InvalidArgument {
        name: &'static str,
        message: String,
    },
}

impl NetError {
    pub(super) fn invalid(name: &'static str, message: String) -> NetError {
        NetError::InvalidArgument { name, message }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::UnknownHost(host) => write!(f, "no host {}", host.0),
            NetError::UnknownListener(id) => write!(f, "no listener {}", id.0),
            NetError::UnknownDatagramSocket(id) => write!(f, "no datagram socket {}", id.0),
            NetError::NoSuchConnection(conn) => write!(f, "no connection {}", conn.0),
            NetError::NotOpen { conn, side } => {
                write!(f, "the {side:?} side of connection {} is not open", conn.0)
            }
            NetError::WriteShut { conn, side } => write!(
                f,
                "the {side:?} side of connection {} has shut its write side",
                conn.0
            ),
            NetError::AddressTaken(ip) => write!(f, "{ip} belongs to another host"),
            NetError::AddressNotOnHost { host, ip } => {
                write!(f, "{ip} is not an address of host {}", host.0)
            }
            NetError::AddressInUse(address) => write!(f, "{address} is already in use"),
            NetError::NoRouteToHost(ip) => write!(f, "no host has the address {ip}"),
            NetError::PortsExhausted(host) => {
                write!(f, "host {} has no free ephemeral port", host.0)
            }
            NetError::InvalidArgument { name, message } => write!(f, "{name}: {message}"),
        }
    }
}

impl std::error::Error for NetError {}

pub(super) fn check_percent(name: &'static str, percent: u32) -> Result<(), NetError> {
    if percent > 100 {
        return Err(NetError::invalid(
            name,
            format!("must be a percentage in 0..=100, got {percent}"),
        ));
    }
    Ok(())
}

pub(super) fn check_delay(name: &'static str, delay_ns: u64) -> Result<(), NetError> {
    if delay_ns > MAX_DELAY_NS {
        return Err(NetError::invalid(
            name,
            format!("must be at most {MAX_DELAY_NS} ns, got {delay_ns}"),
        ));
    }
    Ok(())
}
