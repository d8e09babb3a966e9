//! UDP-like datagrams: sockets, sending under the datagram faults (drop, duplicate,
//! reorder), and delivery to whatever is bound when a datagram arrives.

use super::error::{check_delay, check_percent, NetError};
use super::events::{NetEvent, Scheduled};
use super::hosts::{pick_by_hash, takes, BindOptions, PortHolder, PortKind};
use super::ids::{DatagramSocketId, HostId};
use super::{ask, Choices, Network};
use std::convert::Infallible;
use std::net::SocketAddr;

/// Label of the datagram drop choice.
pub const DATAGRAM_DROP_LABEL: &str = "net.dgram.drop";
/// Label of the datagram duplication choice.
pub const DATAGRAM_DUPLICATE_LABEL: &str = "net.dgram.dup";
/// Label of the datagram reordering choice.
pub const DATAGRAM_REORDER_LABEL: &str = "net.dgram.reorder";

/// How long a reordered datagram is held back.
pub const DEFAULT_DATAGRAM_REORDER_DELAY_NS: u64 = 10_000_000;

#[derive(Debug, Clone)]
pub(super) struct DatagramSocket {
    pub(super) host: HostId,
    address: SocketAddr,
    /// SO_REUSEPORT and IPV6_V6ONLY as bound.
    options: BindOptions,
}

#[derive(Debug, Clone)]
pub(super) struct DatagramInFlight {
    pub(super) src_host: HostId,
    pub(super) dst_host: HostId,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct DatagramFaults {
    pub(super) drop_percent: u32,
    pub(super) duplicate_percent: u32,
    pub(super) reorder_percent: u32,
    pub(super) reorder_delay_ns: u64,
}

impl Network {
    pub fn set_datagram_loss(&mut self, percent: u32) -> Result<(), NetError> {
        check_percent("percent", percent)?;
        self.datagram_faults.drop_percent = percent;
        Ok(())
    }

    pub fn set_datagram_duplication(&mut self, percent: u32) -> Result<(), NetError> {
        check_percent("percent", percent)?;
        self.datagram_faults.duplicate_percent = percent;
        Ok(())
    }

    pub fn set_datagram_reorder(&mut self, percent: u32) -> Result<(), NetError> {
        check_percent("percent", percent)?;
        self.datagram_faults.reorder_percent = percent;
        Ok(())
    }

    /// How long a reordered datagram is held back (datagrams sent within that time
    /// after it overtake it).
    pub fn set_datagram_reorder_delay(&mut self, delay_ns: u64) -> Result<(), NetError> {
        check_delay("delay_ns", delay_ns)?;
        self.datagram_faults.reorder_delay_ns = delay_ns;
        Ok(())
    }

    // -------------------------------------------------------------- datagrams

    /// Bind a datagram socket on `address` (port 0: an ephemeral port).
    pub fn bind_datagram(
        &mut self,
        host: HostId,
        address: SocketAddr,
    ) -> Result<DatagramSocketId, NetError> {
        self.bind_datagram_with(host, address, BindOptions::default())
    }

    /// [`Self::bind_datagram`] with the socket's bind `options`. Sockets that all
    /// set SO_REUSEPORT may share one address; each datagram goes to one of them,
    /// picked by a hash of its source (as Linux spreads them).
    pub fn bind_datagram_with(
        &mut self,
        host: HostId,
        address: SocketAddr,
        options: BindOptions,
    ) -> Result<DatagramSocketId, NetError> {
        let bound_to: Vec<PortHolder> = self
            .datagram_sockets
            .values()
            .map(|socket| PortHolder {
                host: socket.host,
                address: socket.address,
                options: socket.options,
            })
            .collect();
        let address = self.reserve_port(host, address, PortKind::Datagram, &bound_to, options)?;
        let id = DatagramSocketId(self.next_datagram_socket);
        self.next_datagram_socket += 1;
        self.datagram_sockets.insert(
            id,
            DatagramSocket {
                host,
                address,
                options,
            },
        );
        Ok(id)
    }

    /// The address a datagram socket is bound to (with its ephemeral port filled in).
    pub fn datagram_address(&self, socket: DatagramSocketId) -> Result<SocketAddr, NetError> {
        self.datagram_sockets
            .get(&socket)
            .map(|s| s.address)
            .ok_or(NetError::UnknownDatagramSocket(socket))
    }

    /// Close a datagram socket; datagrams arriving for it later are dropped.
    pub fn close_datagram(&mut self, socket: DatagramSocketId) -> Result<(), NetError> {
        let removed = self
            .datagram_sockets
            .remove(&socket)
            .ok_or(NetError::UnknownDatagramSocket(socket))?;
        self.host_mut(removed.host)
            .datagram_ports
            .release(removed.address.port());
        self.datagram_flows.retain(|(id, _), _| *id != socket);
        Ok(())
    }

    /// Send one datagram from `socket` to `to`. Sending to an address no host has, or
    /// across a blocked path, loses it silently, as the real network would.
    pub fn send_datagram(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        socket: DatagramSocketId,
        to: SocketAddr,
        bytes: Vec<u8>,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        let sender = self
            .datagram_sockets
            .get(&socket)
            .ok_or(NetError::UnknownDatagramSocket(socket))?;
        let src_host = sender.host;
        let from_ip = if sender.address.ip().is_unspecified() {
            self.source_ip(src_host, to.ip())
        } else {
            sender.address.ip()
        };
        let from = SocketAddr::new(from_ip, sender.address.port());
        let Some(dst_host) = self.resolve(src_host, to.ip()) else {
            return Ok(());
        };
        if !self.reachability.is_open(src_host, dst_host) {
            return Ok(());
        }
        let faults = self.datagram_faults;
        if faults.drop_percent > 0
            && ask(choices, DATAGRAM_DROP_LABEL, 2, Some(faults.drop_percent)) == 1
        {
            return Ok(());
        }
        let latency = self.draw_latency(choices, src_host, dst_host);
        let flow = (socket, to);
        let previous = self.datagram_flows.get(&flow).copied().unwrap_or(0);
        let in_order_at = now.saturating_add(latency).max(previous);
        self.datagram_flows.insert(flow, in_order_at);
        let copies = if faults.duplicate_percent > 0
            && ask(
                choices,
                DATAGRAM_DUPLICATE_LABEL,
                2,
                Some(faults.duplicate_percent),
            ) == 1
        {
            2
        } else {
            1
        };
        let reordered = faults.reorder_percent > 0
            && ask(
                choices,
                DATAGRAM_REORDER_LABEL,
                2,
                Some(faults.reorder_percent),
            ) == 1;
        // A reordered datagram does not move the flow's FIFO mark, so later ones pass it.
        let at = if reordered {
            in_order_at.saturating_add(faults.reorder_delay_ns)
        } else {
            in_order_at
        };
        for _ in 0..copies {
            let datagram = DatagramInFlight {
                src_host,
                dst_host,
                from,
                to,
                bytes: bytes.clone(),
            };
            self.schedule(at, Scheduled::Datagram(datagram));
        }
        Ok(())
    }

    pub(super) fn datagram_arrives(&mut self, datagram: DatagramInFlight, out: &mut Vec<NetEvent>) {
        let bound_to = |exact: bool| -> Vec<DatagramSocketId> {
            self.datagram_sockets
                .iter()
                .filter(|(_, s)| {
                    s.host == datagram.dst_host
                        && s.address.port() == datagram.to.port()
                        && if exact {
                            s.address.ip() == datagram.to.ip()
                        } else {
                            takes(s.address.ip(), s.options.v6only, datagram.to.ip())
                        }
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut sharing = bound_to(true);
        if sharing.is_empty() {
            sharing = bound_to(false);
        }
        if let Some(socket) = pick_by_hash(&sharing, datagram.from) {
            out.push(NetEvent::Datagram {
                socket,
                from: datagram.from,
                bytes: datagram.bytes,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::links::LinkShape;
    use crate::net::test_support::{
        address, network, run_until_idle, Canonical, Lcg, Scripted, MS, SHARED,
    };

    // ------------------------------------------------------------ datagrams

    #[test]
    fn sockets_share_a_port_with_reuse_port_and_one_sender_reaches_one_of_them() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let a = net
            .bind_datagram_with(hosts[1], address(2, 53), SHARED)
            .unwrap();
        assert_eq!(
            net.bind_datagram(hosts[1], address(2, 53)),
            Err(NetError::AddressInUse(address(2, 53)))
        );
        let b = net
            .bind_datagram_with(hosts[1], address(2, 53), SHARED)
            .unwrap();
        let sender = net.bind_datagram(hosts[0], address(1, 0)).unwrap();
        for _ in 0..3 {
            net.send_datagram(
                &mut Canonical::default(),
                sender,
                address(2, 53),
                b"q".to_vec(),
                net.now_ns,
            )
            .unwrap();
        }
        let receivers: Vec<DatagramSocketId> = run_until_idle(&mut net)
            .into_iter()
            .filter_map(|(_, event)| match event {
                NetEvent::Datagram { socket, .. } => Some(socket),
                _ => None,
            })
            .collect();
        assert_eq!(receivers.len(), 3);
        assert!(receivers.iter().all(|s| *s == receivers[0]));
        assert!(receivers[0] == a || receivers[0] == b);
    }

    #[test]
    fn datagrams_arrive_in_order_exactly_once_by_default() {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 50 * MS,
                loss_percent: 0,
            },
        );
        let mut choices = Lcg(7);
        let sender = net.bind_datagram(hosts[0], address(1, 0)).unwrap();
        let receiver = net.bind_datagram(hosts[1], address(2, 53)).unwrap();
        for i in 0..200u64 {
            net.send_datagram(
                &mut choices,
                sender,
                address(2, 53),
                i.to_be_bytes().to_vec(),
                i * MS / 10,
            )
            .unwrap();
        }
        let from = net.datagram_address(sender).unwrap();
        let expected: Vec<NetEvent> = (0..200u64)
            .map(|i| NetEvent::Datagram {
                socket: receiver,
                from,
                bytes: i.to_be_bytes().to_vec(),
            })
            .collect();
        let events: Vec<NetEvent> = run_until_idle(&mut net)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(events, expected);
    }

    #[test]
    fn datagram_faults_drop_duplicate_and_reorder_by_choice() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.set_datagram_loss(50).unwrap();
        net.set_datagram_duplication(50).unwrap();
        net.set_datagram_reorder(50).unwrap();
        net.set_datagram_reorder_delay(10 * MS).unwrap();
        let sender = net.bind_datagram(hosts[0], address(1, 53)).unwrap();
        let receiver = net.bind_datagram(hosts[1], address(2, 53)).unwrap();
        // Datagram 1 is dropped; of the rest (0, 2, 3), 0 is duplicated and 2 reordered.
        let mut choices = Scripted::per_label(&[
            (DATAGRAM_DROP_LABEL, &[0, 1, 0, 0]),
            (DATAGRAM_DUPLICATE_LABEL, &[1, 0, 0]),
            (DATAGRAM_REORDER_LABEL, &[0, 1, 0]),
        ]);
        for i in 0..4u8 {
            net.send_datagram(&mut choices, sender, address(2, 53), vec![i], i as u64 * MS)
                .unwrap();
        }
        assert!(choices.exhausted());
        let datagram = |i: u8| NetEvent::Datagram {
            socket: receiver,
            from: address(1, 53),
            bytes: vec![i],
        };
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (MS, datagram(0)),
                (MS, datagram(0)),
                (4 * MS, datagram(3)),
                (13 * MS, datagram(2)),
            ]
        );
    }

    #[test]
    fn datagrams_across_a_partition_or_to_nobody_are_lost() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let sender = net.bind_datagram(hosts[0], address(1, 53)).unwrap();
        let receiver = net.bind_datagram(hosts[1], address(2, 53)).unwrap();
        net.send_datagram(
            &mut choices,
            sender,
            address(2, 53),
            b"in flight".to_vec(),
            0,
        )
        .unwrap();
        net.partition(&[hosts[0]], &[hosts[1]]).unwrap();
        net.send_datagram(&mut choices, sender, address(2, 53), b"during".to_vec(), 0)
            .unwrap();
        net.heal(&mut choices, 5 * MS);
        assert!(run_until_idle(&mut net).is_empty());
        net.send_datagram(
            &mut choices,
            sender,
            address(2, 54),
            b"nobody".to_vec(),
            5 * MS,
        )
        .unwrap();
        net.send_datagram(
            &mut choices,
            sender,
            address(9, 53),
            b"no host".to_vec(),
            5 * MS,
        )
        .unwrap();
        net.send_datagram(
            &mut choices,
            sender,
            address(2, 53),
            b"after".to_vec(),
            5 * MS,
        )
        .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(
                6 * MS,
                NetEvent::Datagram {
                    socket: receiver,
                    from: address(1, 53),
                    bytes: b"after".to_vec()
                }
            )]
        );
    }
}
