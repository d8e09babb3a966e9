//! What the network tells its driver ([`NetEvent`]) and the queue that orders it:
//! every event sits at (virtual time, sequence number), and `pop_due` delivers what
//! is due without making a choice.

use super::datagrams::DatagramInFlight;
use super::ids::{ConnId, DatagramSocketId, ListenerId, Side};
use super::Network;
use std::net::SocketAddr;

/// What the network tells the driver. `side` is always the side the event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// A connection reached `listener` and was accepted; its server side is open.
    Accept {
        listener: ListenerId,
        conn: ConnId,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// The client side of `conn` is connected.
    Connected {
        conn: ConnId,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// The connect of `conn` was refused; the connection is gone.
    Refused { conn: ConnId },
    /// Bytes for `side` of `conn`, in the order its peer sent them.
    Data {
        conn: ConnId,
        side: Side,
        bytes: Vec<u8>,
    },
    /// The peer of `side` shut its write side; nothing more will arrive.
    Eof { conn: ConnId, side: Side },
    /// `conn` was reset; the connection is gone for `side`.
    Reset { conn: ConnId, side: Side },
    /// `side` of `conn` was refused some bytes because its peer's window was full,
    /// and the peer has since read enough to open at least half of it: send again.
    Writable { conn: ConnId, side: Side },
    /// A datagram for `socket` from `from`.
    Datagram {
        socket: DatagramSocketId,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
}

/// Where a queued event sits: (virtual time, sequence number).
pub(super) type QueueKey = (u64, u64);

#[derive(Debug, Clone)]
pub(super) enum Scheduled {
    /// The front segment of `conn`'s pipe from `from` arrives.
    SegmentArrival {
        conn: ConnId,
        from: Side,
    },
    /// A queued connection is handed to the application.
    Accept {
        listener: ListenerId,
        conn: ConnId,
    },
    Datagram(DatagramInFlight),
    /// Already decided (resets, refusals); delivered as is.
    Notify(NetEvent),
}

impl Network {
    // ------------------------------------------------------------ event queue

    /// When the earliest pending event is due, if any.
    pub fn next_event_time(&self) -> Option<u64> {
        self.queue.keys().next().map(|(time, _)| *time)
    }

    /// Every event due at or before `now_ns`, ordered by (time, sequence). Makes no
    /// choices.
    pub fn pop_due(&mut self, now_ns: u64) -> Vec<NetEvent> {
        self.advance(now_ns);
        let mut out = Vec::new();
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now_ns {
                break;
            }
            let (key, scheduled) = entry.remove_entry();
            match scheduled {
                Scheduled::SegmentArrival { conn, from } => {
                    self.segment_arrives(key, conn, from, &mut out)
                }
                Scheduled::Accept { listener, conn } => self.hand_over(listener, conn, &mut out),
                Scheduled::Datagram(datagram) => self.datagram_arrives(datagram, &mut out),
                Scheduled::Notify(event) => out.push(event),
            }
        }
        out
    }

    /// Time never runs backwards: a stale `now_ns` counts as the latest seen.
    pub(super) fn advance(&mut self, now_ns: u64) -> u64 {
        self.now_ns = self.now_ns.max(now_ns);
        self.now_ns
    }

    pub(super) fn schedule(&mut self, at_ns: u64, scheduled: Scheduled) -> QueueKey {
        let key = (at_ns, self.next_sequence);
        self.next_sequence += 1;
        self.queue.insert(key, scheduled);
        key
    }

    pub(super) fn notify(&mut self, event: NetEvent, now_ns: u64) {
        self.schedule(now_ns, Scheduled::Notify(event));
    }
}
