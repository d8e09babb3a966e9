//! TCP-like streams: listeners and their accept queues, connections, and the pipe
//! carrying each direction (segments in flight, then held ones, in order); connects,
//! writes, half-closes, closes, aborts and resets; holding segments when their path
//! closes and releasing them when it reopens.

use super::error::{check_percent, NetError};
use super::events::{NetEvent, QueueKey, Scheduled};
use super::hosts::{pick_by_hash, takes, BindOptions, PortHolder, PortKind};
use super::ids::{ConnId, HostId, ListenerId, Side};
use super::{ask, Choices, Network};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;

/// The label of the choice that splits a stream write into several reads.
pub const SEGMENT_LABEL: &str = "net.segment";

/// Bytes one direction of a connection holds before its sender must wait: what the
/// sender's kernel buffer and the receiver's together take (Linux's defaults are of
/// this order on loopback). In flight, held, or arrived and not yet read all count.
pub const DEFAULT_STREAM_WINDOW: u64 = 256 * 1024;

/// Largest window accepted (1 GiB), so a window never stands in for "unbounded".
pub const MAX_STREAM_WINDOW: u64 = 1 << 30;

#[derive(Debug, Clone)]
pub(super) struct Listener {
    pub(super) host: HostId,
    address: SocketAddr,
    backlog: usize,
    accepting: bool,
    /// SO_REUSEPORT and IPV6_V6ONLY as bound.
    options: BindOptions,
    /// Connections that arrived while not accepting, oldest first.
    accept_queue: VecDeque<ConnId>,
}

/// What travels through one direction of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// The connect request (client → server).
    Syn,
    /// The connect was accepted (server → client).
    SynAck,
    /// Nobody listens there, or the accept queue is full (server → client).
    Refusal,
    Data(Vec<u8>),
    /// The sender shut its write side.
    Fin,
}

/// An arrival for a server side that the application has not accepted yet.
#[derive(Debug, Clone)]
enum StashedArrival {
    Data(Vec<u8>),
    Eof,
}

/// One direction of a connection.
#[derive(Debug, Clone, Default)]
struct Pipe {
    /// Segments on their way, in order; each also has an entry in the event queue.
    in_flight: VecDeque<(QueueKey, Segment)>,
    /// Segments waiting for the path to reopen, in order (after `in_flight`).
    held: VecDeque<Segment>,
    /// Arrival time of the last segment put in flight (FIFO: none may arrive earlier).
    last_scheduled_ns: u64,
    last_arrived_ns: u64,
    /// Bytes sent into this direction that the receiver has not read yet.
    unread: u64,
    /// The sender was refused bytes (the window was full): tell it when it opens.
    sender_waiting: bool,
}

impl Pipe {
    fn is_empty(&self) -> bool {
        self.in_flight.is_empty() && self.held.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SideState {
    /// Client: waiting for the answer to its connect. Server: the connect has not
    /// arrived yet.
    Connecting,
    /// Server: arrived, waiting in a paused listener's accept queue.
    Queued(ListenerId),
    /// Server: taken from the accept queue; its `Accept` event is scheduled.
    Accepting(ListenerId),
    Open,
    /// The application closed it (or, server, the connect was refused).
    Closed,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Endpoint {
    pub(super) host: HostId,
    address: SocketAddr,
}

#[derive(Debug, Clone)]
pub(super) struct Connection {
    /// Indexed by `Side::index`: client, server.
    endpoints: [Endpoint; 2],
    states: [SideState; 2],
    write_shut: [bool; 2],
    /// `pipes[side]` carries what `side` sends to its peer.
    pipes: [Pipe; 2],
    /// Transit of the answer to the SYN, drawn when the SYN leaves.
    reply_transit_ns: u64,
    /// What arrived for the server side before its `Accept` event.
    server_stash: Vec<StashedArrival>,
    /// The server answered the connect with a SYN-ACK (accepted or queued): from
    /// then on the connect succeeds, even if the answer is still on its way.
    syn_acked: bool,
}

impl Connection {
    fn state(&self, side: Side) -> SideState {
        self.states[side.index()]
    }

    pub(super) fn endpoint(&self, side: Side) -> Endpoint {
        self.endpoints[side.index()]
    }

    fn pipe(&mut self, from: Side) -> &mut Pipe {
        &mut self.pipes[from.index()]
    }

    /// The server side has seen the connect (accepted, queued or refused it).
    pub(super) fn connect_arrived(&self) -> bool {
        self.state(Side::Server) != SideState::Connecting
    }
}

impl Network {
    // -------------------------------------------------------------- listeners

    /// Listen for stream connections on `address` (port 0: an ephemeral port; an
    /// unspecified IP: every address of the host). The listener starts accepting;
    /// `backlog` bounds its accept queue while paused.
    pub fn listen(
        &mut self,
        host: HostId,
        address: SocketAddr,
        backlog: usize,
    ) -> Result<ListenerId, NetError> {
        self.listen_with(host, address, backlog, BindOptions::default())
    }

    /// [`Self::listen`] with the socket's bind `options`. Listeners that all set
    /// SO_REUSEPORT may share one address; each arriving connection goes to one of
    /// them, picked by a hash of the client's address (as Linux spreads them).
    pub fn listen_with(
        &mut self,
        host: HostId,
        address: SocketAddr,
        backlog: usize,
        options: BindOptions,
    ) -> Result<ListenerId, NetError> {
        let bound_to = self.stream_ports_bound();
        let address = self.reserve_port(host, address, PortKind::Stream, &bound_to, options)?;
        let id = ListenerId(self.next_listener);
        self.next_listener += 1;
        self.listeners.insert(
            id,
            Listener {
                host,
                address,
                backlog,
                accepting: true,
                options,
                accept_queue: VecDeque::new(),
            },
        );
        Ok(id)
    }

    /// What holds a stream port: listeners (with their bind options) and the
    /// client sides of open connections.
    fn stream_ports_bound(&self) -> Vec<PortHolder> {
        let listening = self.listeners.values().map(|listener| PortHolder {
            host: listener.host,
            address: listener.address,
            options: listener.options,
        });
        let connected = self.connections.values().filter_map(|connection| {
            let client = connection.endpoint(Side::Client);
            (connection.state(Side::Client) != SideState::Closed).then_some(PortHolder {
                host: client.host,
                address: client.address,
                options: BindOptions::default(),
            })
        });
        listening.chain(connected).collect()
    }

    /// The address a listener is bound to (with its ephemeral port filled in).
    pub fn listener_address(&self, listener: ListenerId) -> Result<SocketAddr, NetError> {
        self.listeners
            .get(&listener)
            .map(|l| l.address)
            .ok_or(NetError::UnknownListener(listener))
    }

    /// Pause or resume accepting. While paused, arriving connections wait in the accept
    /// queue (up to the backlog; beyond it they are refused); resuming hands the queued
    /// ones over, oldest first, each with whatever arrived for it meanwhile.
    pub fn set_accepting(
        &mut self,
        listener: ListenerId,
        accepting: bool,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        let entry = self
            .listeners
            .get_mut(&listener)
            .ok_or(NetError::UnknownListener(listener))?;
        entry.accepting = accepting;
        if !accepting {
            return Ok(());
        }
        let queued: Vec<ConnId> = entry.accept_queue.drain(..).collect();
        for conn in queued {
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.states[Side::Server.index()] = SideState::Accepting(listener);
                self.schedule(now, Scheduled::Accept { listener, conn });
            }
        }
        Ok(())
    }

    /// Stop listening. Connections not yet handed to the application are reset (their
    /// clients see a reset, or a refusal if still connecting); accepted ones live on.
    pub fn close_listener(&mut self, listener: ListenerId, now_ns: u64) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        let removed = self
            .listeners
            .remove(&listener)
            .ok_or(NetError::UnknownListener(listener))?;
        self.host_mut(removed.host)
            .stream_ports
            .release(removed.address.port());
        let unaccepted: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                matches!(
                    c.state(Side::Server),
                    SideState::Queued(l) | SideState::Accepting(l) if l == listener
                )
            })
            .map(|(id, _)| *id)
            .collect();
        for conn in unaccepted {
            self.tear_down(conn, [true, false], now);
        }
        Ok(())
    }

    /// The listener on `host` that takes connections to `address`: an exact address
    /// match first, then one bound to the unspecified address.
    /// Listeners sharing the address (SO_REUSEPORT) take turns by a hash of `client`.
    pub(super) fn listener_for(
        &self,
        host: HostId,
        address: SocketAddr,
        client: SocketAddr,
    ) -> Option<ListenerId> {
        let matching = |exact: bool| -> Vec<ListenerId> {
            self.listeners
                .iter()
                .filter(|(_, l)| {
                    l.host == host
                        && l.address.port() == address.port()
                        && if exact {
                            l.address.ip() == address.ip()
                        } else {
                            takes(l.address.ip(), l.options.v6only, address.ip())
                        }
                })
                .map(|(id, _)| *id)
                .collect()
        };
        let mut found = matching(true);
        if found.is_empty() {
            found = matching(false);
        }
        pick_by_hash(&found, client)
    }

    // ---------------------------------------------------------------- streams

    /// Open a stream connection from `from` to `to`. The answer is an event: the
    /// server side gets `Accept`, the client `Connected` (or `Refused`). Across a
    /// blocked path nothing happens until the path reopens.
    pub fn connect(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        from: HostId,
        to: SocketAddr,
        now_ns: u64,
    ) -> Result<ConnId, NetError> {
        self.connect_from(choices, from, None, to, now_ns)
    }

    /// [`Self::connect`] from the address `local` of `from` (a bound client socket;
    /// port 0: an ephemeral one, unspecified ip: the route's source).
    pub fn connect_from(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        from: HostId,
        local: Option<SocketAddr>,
        to: SocketAddr,
        now_ns: u64,
    ) -> Result<ConnId, NetError> {
        let now = self.advance(now_ns);
        self.host(from)?;
        if to.port() == 0 || to.ip().is_unspecified() {
            return Err(NetError::invalid(
                "to",
                format!("cannot connect to {to}: it names no endpoint"),
            ));
        }
        let server_host = self
            .resolve(from, to.ip())
            .ok_or(NetError::NoRouteToHost(to.ip()))?;
        let (local_ip, port) = match local {
            None => {
                let ports = &mut self.host_mut(from).stream_ports;
                let port = ports.ephemeral().ok_or(NetError::PortsExhausted(from))?;
                ports.take(port);
                (self.source_ip(from, to.ip()), port)
            }
            Some(bound) => {
                if bound.is_ipv4() != to.is_ipv4() {
                    return Err(NetError::invalid(
                        "local",
                        format!("cannot connect from {bound} to {to}: the families differ"),
                    ));
                }
                let held = self.stream_ports_bound();
                let bound = self.reserve_port(
                    from,
                    bound,
                    PortKind::Stream,
                    &held,
                    BindOptions::default(),
                )?;
                let ip = if bound.ip().is_unspecified() {
                    self.source_ip(from, to.ip())
                } else {
                    bound.ip()
                };
                (ip, bound.port())
            }
        };
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.connections.insert(
            conn,
            Connection {
                endpoints: [
                    Endpoint {
                        host: from,
                        address: SocketAddr::new(local_ip, port),
                    },
                    Endpoint {
                        host: server_host,
                        address: to,
                    },
                ],
                states: [SideState::Connecting, SideState::Connecting],
                write_shut: [false, false],
                pipes: [Pipe::default(), Pipe::default()],
                reply_transit_ns: 0,
                server_stash: Vec::new(),
                syn_acked: false,
            },
        );
        self.transmit(choices, conn, Side::Client, Segment::Syn, now);
        Ok(conn)
    }

    /// Send `bytes` from `from_side` of `conn` to its peer, as far as the window
    /// allows: returns how many bytes (a prefix) were taken, like a nonblocking
    /// socket's `send`. If not all were taken, a `Writable` event tells the sender
    /// when the peer has read enough for it to try again. With segmentation on, the
    /// bytes taken may arrive as several `Data` events (see [`SEGMENT_LABEL`]).
    pub fn send(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        conn: ConnId,
        from_side: Side,
        bytes: impl AsRef<[u8]>,
        now_ns: u64,
    ) -> Result<usize, NetError> {
        let now = self.advance(now_ns);
        self.check_writable(conn, from_side)?;
        let room = self.send_room(conn, from_side)?;
        let bytes = bytes.as_ref();
        let taken = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let Some(connection) = self.connections.get_mut(&conn) else {
            return Err(NetError::NoSuchConnection(conn));
        };
        let pipe = connection.pipe(from_side);
        if taken < bytes.len() {
            pipe.sender_waiting = true;
        }
        pipe.unread += taken as u64;
        let mut rest = &bytes[..taken];
        while !rest.is_empty() {
            let cut = match self.segment_percent {
                0 => 0,
                percent => ask(choices, SEGMENT_LABEL, rest.len() as u64, Some(percent)),
            };
            let (piece, tail) = rest.split_at(if cut == 0 { rest.len() } else { cut as usize });
            rest = tail;
            self.transmit(choices, conn, from_side, Segment::Data(piece.to_vec()), now);
            if cut != 0 {
                // The next piece arrives at least a nanosecond later, so the reader
                // may run in between: a cut is a moment, not only a boundary.
                if let Some(connection) = self.connections.get_mut(&conn) {
                    let pipe = connection.pipe(from_side);
                    if !pipe.in_flight.is_empty() {
                        pipe.last_scheduled_ns = pipe.last_scheduled_ns.saturating_add(1);
                    }
                }
            }
        }
        Ok(taken)
    }

    /// How many bytes `side` of `conn` may send now: the window less what its peer
    /// has not read yet.
    pub fn send_room(&self, conn: ConnId, side: Side) -> Result<u64, NetError> {
        let connection = self
            .connections
            .get(&conn)
            .ok_or(NetError::NoSuchConnection(conn))?;
        let unread = connection.pipes[side.index()].unread;
        Ok(self.stream_window_bytes.saturating_sub(unread))
    }

    /// `side` of `conn` holds bytes it could not send yet (beyond what it just
    /// offered): tell it with `Writable` when its peer has read enough.
    pub fn want_room(&mut self, conn: ConnId, side: Side) -> Result<(), NetError> {
        let connection = self
            .connections
            .get_mut(&conn)
            .ok_or(NetError::NoSuchConnection(conn))?;
        let window = self.stream_window_bytes;
        let pipe = connection.pipe(side);
        if pipe.unread.saturating_mul(2) > window {
            pipe.sender_waiting = true;
            Ok(())
        } else {
            // Room enough already: nothing to wait for.
            self.notify(NetEvent::Writable { conn, side }, self.now_ns);
            Ok(())
        }
    }

    /// `side` of `conn` read `count` bytes that arrived for it, freeing that much of
    /// its peer's window. A peer that was refused bytes gets `Writable` (at `now`)
    /// once at least half the window is free, so it refills it in large pieces.
    pub fn consumed(
        &mut self,
        conn: ConnId,
        side: Side,
        count: u64,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        let window = self.stream_window_bytes;
        let connection = self
            .connections
            .get_mut(&conn)
            .ok_or(NetError::NoSuchConnection(conn))?;
        let sender = side.peer();
        let sender_open = connection.state(sender) == SideState::Open;
        let pipe = connection.pipe(sender);
        pipe.unread = pipe.unread.saturating_sub(count);
        let room = window.saturating_sub(pipe.unread);
        if pipe.sender_waiting && room.saturating_mul(2) >= window {
            pipe.sender_waiting = false;
            if sender_open {
                self.notify(NetEvent::Writable { conn, side: sender }, now);
            }
        }
        Ok(())
    }

    /// Set every connection's window (see [`DEFAULT_STREAM_WINDOW`]), in bytes.
    pub fn set_stream_window(&mut self, bytes: u64) -> Result<(), NetError> {
        if !(1..=MAX_STREAM_WINDOW).contains(&bytes) {
            return Err(NetError::invalid(
                "bytes",
                format!("must be in 1..={MAX_STREAM_WINDOW}, got {bytes}"),
            ));
        }
        self.stream_window_bytes = bytes;
        Ok(())
    }

    pub fn stream_window(&self) -> u64 {
        self.stream_window_bytes
    }

    /// The chance (percent) that a stream write is cut before its end; each piece
    /// after a cut may be cut again. 0 (the default) asks nothing: one write, one read.
    pub fn set_segmentation(&mut self, percent: u32) -> Result<(), NetError> {
        check_percent("percent", percent)?;
        self.segment_percent = percent;
        Ok(())
    }

    /// Half-close: the peer gets `Eof` after everything sent before. Shutting an
    /// already shut side does nothing.
    pub fn shutdown_write(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        conn: ConnId,
        side: Side,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        match self.check_writable(conn, side) {
            Err(NetError::WriteShut { .. }) => Ok(()),
            Err(error) => Err(error),
            Ok(()) => {
                self.shut_write(choices, conn, side, now);
                Ok(())
            }
        }
    }

    /// Close `side`: shut its write side (the peer gets `Eof` after the data sent
    /// before) and stop reading; data arriving later resets the sender. Closing a
    /// client that is still connecting abandons the connect. Closing twice does
    /// nothing.
    pub fn close(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        conn: ConnId,
        side: Side,
        now_ns: u64,
    ) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        let connection = self
            .connections
            .get(&conn)
            .ok_or(NetError::NoSuchConnection(conn))?;
        match connection.state(side) {
            SideState::Closed => Ok(()),
            SideState::Open => {
                if !connection.write_shut[side.index()] {
                    self.shut_write(choices, conn, side, now);
                }
                if let Some(connection) = self.connections.get_mut(&conn) {
                    connection.states[side.index()] = SideState::Closed;
                }
                self.forget_if_finished(conn);
                Ok(())
            }
            SideState::Connecting if side == Side::Client => {
                self.tear_down(conn, [false, true], now);
                Ok(())
            }
            _ => Err(NetError::NotOpen { conn, side }),
        }
    }

    /// Abort `side` (like `transport.abort()`): the connection is gone at once and its
    /// peer gets a reset; data in flight either way is discarded.
    pub fn abort(&mut self, conn: ConnId, side: Side, now_ns: u64) -> Result<(), NetError> {
        let now = self.advance(now_ns);
        if !self.connections.contains_key(&conn) {
            return Err(NetError::NoSuchConnection(conn));
        }
        let mut notify = [false, false];
        notify[side.peer().index()] = true;
        self.tear_down(conn, notify, now);
        Ok(())
    }

    fn check_writable(&self, conn: ConnId, side: Side) -> Result<(), NetError> {
        let connection = self
            .connections
            .get(&conn)
            .ok_or(NetError::NoSuchConnection(conn))?;
        if connection.state(side) != SideState::Open {
            return Err(NetError::NotOpen { conn, side });
        }
        if connection.write_shut[side.index()] {
            return Err(NetError::WriteShut { conn, side });
        }
        Ok(())
    }

    fn shut_write(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        conn: ConnId,
        side: Side,
        now: u64,
    ) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.write_shut[side.index()] = true;
        }
        self.transmit(choices, conn, side, Segment::Fin, now);
    }

    /// Is the direction from `from` free to carry a new segment now: its path open and
    /// nothing held before it?
    fn direction_clear(&self, connection: &Connection, from: Side) -> bool {
        let src = connection.endpoint(from).host;
        let dst = connection.endpoint(from.peer()).host;
        self.reachability.is_open(src, dst) && connection.pipes[from.index()].held.is_empty()
    }

    /// Send a segment drawing its transit, or hold it if the direction is not clear.
    /// A SYN also draws the transit of its answer.
    fn transmit(
        &mut self,
        choices: &mut dyn Choices<Error = Infallible>,
        conn: ConnId,
        from: Side,
        segment: Segment,
        now: u64,
    ) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let src = connection.endpoint(from).host;
        let dst = connection.endpoint(from.peer()).host;
        if !self.direction_clear(connection, from) {
            self.hold(conn, from, segment);
            return;
        }
        let transit = self.draw_transit(choices, src, dst);
        if segment == Segment::Syn {
            let reply_transit = self.draw_transit(choices, dst, src);
            if let Some(connection) = self.connections.get_mut(&conn) {
                connection.reply_transit_ns = reply_transit;
            }
        }
        self.put_in_flight(conn, from, segment, now.saturating_add(transit));
    }

    /// The server's answer to a SYN, with the transit drawn when the SYN left.
    fn answer_connect(&mut self, conn: ConnId, answer: Segment, now: u64) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        if !self.direction_clear(connection, Side::Server) {
            self.hold(conn, Side::Server, answer);
            return;
        }
        let at = now.saturating_add(connection.reply_transit_ns);
        self.put_in_flight(conn, Side::Server, answer, at);
    }

    fn hold(&mut self, conn: ConnId, from: Side, segment: Segment) {
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.pipe(from).held.push_back(segment);
        }
    }

    fn put_in_flight(&mut self, conn: ConnId, from: Side, segment: Segment, earliest_ns: u64) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let at = earliest_ns.max(connection.pipes[from.index()].last_scheduled_ns);
        let key = self.schedule(at, Scheduled::SegmentArrival { conn, from });
        if let Some(connection) = self.connections.get_mut(&conn) {
            let pipe = connection.pipe(from);
            pipe.last_scheduled_ns = at;
            pipe.in_flight.push_back((key, segment));
        }
    }

    pub(super) fn segment_arrives(
        &mut self,
        key: QueueKey,
        conn: ConnId,
        from: Side,
        out: &mut Vec<NetEvent>,
    ) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        let pipe = connection.pipe(from);
        let Some((front_key, segment)) = pipe.in_flight.pop_front() else {
            return;
        };
        debug_assert_eq!(front_key, key, "a pipe's segments arrive in order");
        pipe.last_arrived_ns = key.0;
        let now = key.0;
        let to = from.peer();
        match segment {
            Segment::Syn => self.connect_arrives(conn, now, out),
            Segment::SynAck => {
                if connection.state(Side::Client) == SideState::Connecting {
                    connection.states[Side::Client.index()] = SideState::Open;
                    out.push(NetEvent::Connected {
                        conn,
                        local: connection.endpoint(Side::Client).address,
                        peer: connection.endpoint(Side::Server).address,
                    });
                }
            }
            Segment::Refusal => {
                out.push(NetEvent::Refused { conn });
                self.tear_down(conn, [false, false], now);
            }
            Segment::Data(bytes) => match connection.state(to) {
                SideState::Open => out.push(NetEvent::Data {
                    conn,
                    side: to,
                    bytes,
                }),
                SideState::Queued(_) | SideState::Accepting(_) => {
                    connection.server_stash.push(StashedArrival::Data(bytes))
                }
                SideState::Closed => {
                    // Nobody reads there any more: the receiver answers with a reset.
                    let mut notify = [false, false];
                    notify[from.index()] = true;
                    self.tear_down(conn, notify, now);
                }
                SideState::Connecting => {}
            },
            Segment::Fin => {
                match connection.state(to) {
                    SideState::Open => out.push(NetEvent::Eof { conn, side: to }),
                    SideState::Queued(_) | SideState::Accepting(_) => {
                        connection.server_stash.push(StashedArrival::Eof)
                    }
                    SideState::Closed | SideState::Connecting => {}
                }
                self.forget_if_finished(conn);
            }
        }
    }

    fn connect_arrives(&mut self, conn: ConnId, now: u64, out: &mut Vec<NetEvent>) {
        let Some(connection) = self.connections.get(&conn) else {
            return;
        };
        let server = connection.endpoint(Side::Server);
        let client = connection.endpoint(Side::Client);
        let listener = self.listener_for(server.host, server.address, client.address);
        let (state, answer) = match listener.and_then(|id| Some((id, self.listeners.get(&id)?))) {
            Some((id, listener)) if listener.accepting => {
                out.push(NetEvent::Accept {
                    listener: id,
                    conn,
                    local: server.address,
                    peer: client.address,
                });
                (SideState::Open, Segment::SynAck)
            }
            Some((id, listener)) if listener.accept_queue.len() < listener.backlog => {
                (SideState::Queued(id), Segment::SynAck)
            }
            _ => (SideState::Closed, Segment::Refusal),
        };
        if let SideState::Queued(id) = state {
            if let Some(listener) = self.listeners.get_mut(&id) {
                listener.accept_queue.push_back(conn);
            }
        }
        if let Some(connection) = self.connections.get_mut(&conn) {
            connection.states[Side::Server.index()] = state;
            connection.syn_acked = matches!(answer, Segment::SynAck);
        }
        self.answer_connect(conn, answer, now);
    }

    /// A connection leaves a resumed listener's queue: `Accept`, then what arrived
    /// for it meanwhile.
    pub(super) fn hand_over(
        &mut self,
        listener: ListenerId,
        conn: ConnId,
        out: &mut Vec<NetEvent>,
    ) {
        let Some(connection) = self.connections.get_mut(&conn) else {
            return;
        };
        if connection.state(Side::Server) != SideState::Accepting(listener) {
            return;
        }
        connection.states[Side::Server.index()] = SideState::Open;
        out.push(NetEvent::Accept {
            listener,
            conn,
            local: connection.endpoint(Side::Server).address,
            peer: connection.endpoint(Side::Client).address,
        });
        for arrival in std::mem::take(&mut connection.server_stash) {
            out.push(match arrival {
                StashedArrival::Data(bytes) => NetEvent::Data {
                    conn,
                    side: Side::Server,
                    bytes,
                },
                StashedArrival::Eof => NetEvent::Eof {
                    conn,
                    side: Side::Server,
                },
            });
        }
    }

    /// Drop a connection both of whose sides closed once nothing is left to deliver.
    fn forget_if_finished(&mut self, conn: ConnId) {
        let finished = self.connections.get(&conn).is_some_and(|c| {
            c.states.iter().all(|s| *s == SideState::Closed) && c.pipes.iter().all(Pipe::is_empty)
        });
        if finished {
            self.tear_down(conn, [false, false], self.now_ns);
        }
    }

    /// Remove a connection at once: discard what is in flight or held, free its port,
    /// and tell each side in `notify` that knows of it (`Reset` if open, `Refused` for
    /// a client still connecting).
    pub(super) fn tear_down(&mut self, conn: ConnId, notify: [bool; 2], now: u64) {
        let Some(connection) = self.connections.remove(&conn) else {
            return;
        };
        for pipe in &connection.pipes {
            for (key, _) in &pipe.in_flight {
                self.queue.remove(key);
            }
        }
        let client = connection.endpoint(Side::Client);
        self.host_mut(client.host)
            .stream_ports
            .release(client.address.port());
        match connection.state(Side::Server) {
            SideState::Queued(listener) => {
                if let Some(listener) = self.listeners.get_mut(&listener) {
                    listener.accept_queue.retain(|queued| *queued != conn);
                }
            }
            SideState::Accepting(_) => self.queue.retain(|_, scheduled| {
                !matches!(scheduled, Scheduled::Accept { conn: c, .. } if *c == conn)
            }),
            _ => {}
        }
        for side in Side::BOTH {
            if !notify[side.index()] {
                continue;
            }
            match (side, connection.state(side)) {
                (_, SideState::Open) => self.notify(NetEvent::Reset { conn, side }, now),
                (Side::Client, SideState::Connecting) if connection.syn_acked => {
                    // The server took the connection (its SYN-ACK is on the way)
                    // and reset it: the client's connect succeeded, then the reset.
                    self.notify(
                        NetEvent::Connected {
                            conn,
                            local: client.address,
                            peer: connection.endpoint(Side::Server).address,
                        },
                        now,
                    );
                    self.notify(NetEvent::Reset { conn, side }, now)
                }
                (Side::Client, SideState::Connecting) => {
                    self.notify(NetEvent::Refused { conn }, now)
                }
                _ => {}
            }
        }
    }

    /// Reset every connection between hosts `a` and `b` (either way; `a == b` for a
    /// host's connections to itself) whose connect has arrived: both sides are told,
    /// data in flight is discarded. Returns the connections reset, in id order.
    pub fn reset_connections(
        &mut self,
        a: HostId,
        b: HostId,
        now_ns: u64,
    ) -> Result<Vec<ConnId>, NetError> {
        let now = self.advance(now_ns);
        self.host(a)?;
        self.host(b)?;
        let between: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| {
                let hosts = (c.endpoint(Side::Client).host, c.endpoint(Side::Server).host);
                (hosts == (a, b) || hosts == (b, a)) && c.connect_arrived()
            })
            .map(|(id, _)| *id)
            .collect();
        for &conn in &between {
            self.tear_down(conn, [true, true], now);
        }
        Ok(between)
    }

    /// After a path closed: stream segments in flight across it go back to the front
    /// of their pipe's held queue; datagrams in flight across it are lost.
    pub(super) fn hold_blocked_traffic(&mut self) {
        let reachability = &self.reachability;
        for connection in self.connections.values_mut() {
            for from in Side::BOTH {
                let src = connection.endpoint(from).host;
                let dst = connection.endpoint(from.peer()).host;
                let pipe = connection.pipe(from);
                if reachability.is_open(src, dst) || pipe.in_flight.is_empty() {
                    continue;
                }
                let mut held: VecDeque<Segment> = VecDeque::new();
                for (key, segment) in pipe.in_flight.drain(..) {
                    self.queue.remove(&key);
                    held.push_back(segment);
                }
                held.append(&mut pipe.held);
                pipe.held = held;
                pipe.last_scheduled_ns = pipe.last_arrived_ns;
            }
        }
        self.queue.retain(|_, scheduled| match scheduled {
            Scheduled::Datagram(d) => reachability.is_open(d.src_host, d.dst_host),
            _ => true,
        });
    }

    /// After paths reopened: held segments leave, connection by connection (id order),
    /// client direction first, each in order, drawing its transit now.
    pub(super) fn release_held(&mut self, choices: &mut dyn Choices<Error = Infallible>, now: u64) {
        let waiting: Vec<(ConnId, Side)> = self
            .connections
            .iter()
            .flat_map(|(id, c)| {
                Side::BOTH
                    .into_iter()
                    .filter(|from| !c.pipes[from.index()].held.is_empty())
                    .map(move |from| (*id, from))
            })
            .collect();
        for (conn, from) in waiting {
            let Some(connection) = self.connections.get_mut(&conn) else {
                continue;
            };
            let src = connection.endpoint(from).host;
            let dst = connection.endpoint(from.peer()).host;
            if !self.reachability.is_open(src, dst) {
                continue;
            }
            let held = std::mem::take(&mut connection.pipe(from).held);
            for segment in held {
                self.transmit(choices, conn, from, segment, now);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::hosts::FIRST_EPHEMERAL_PORT;
    use crate::net::links::{LinkShape, LATENCY_LABEL, LOSS_LABEL};
    use crate::net::test_support::{
        address, data, established, ip, network, run_until, run_until_idle, Canonical, Scripted,
        MS, SHARED,
    };
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    // ------------------------------------------------------------ connecting

    #[test]
    fn connect_to_a_listener_is_accepted_then_connected_after_a_round_trip() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let listener = net.listen(hosts[1], address(2, 80), 8).unwrap();
        let conn = net
            .connect(&mut Canonical::default(), hosts[0], address(2, 80), 0)
            .unwrap();
        let client = address(1, FIRST_EPHEMERAL_PORT);
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (
                    MS,
                    NetEvent::Accept {
                        listener,
                        conn,
                        local: address(2, 80),
                        peer: client
                    }
                ),
                (
                    2 * MS,
                    NetEvent::Connected {
                        conn,
                        local: client,
                        peer: address(2, 80)
                    }
                ),
            ]
        );
    }

    #[test]
    fn listeners_share_an_address_only_when_all_set_reuse_port() {
        let (mut net, hosts) = network(3, LinkShape::fixed(MS));
        let first = net
            .listen_with(hosts[1], address(2, 80), 8, SHARED)
            .unwrap();
        assert_eq!(
            net.listen(hosts[1], address(2, 80), 8),
            Err(NetError::AddressInUse(address(2, 80)))
        );
        let second = net
            .listen_with(hosts[1], address(2, 80), 8, SHARED)
            .unwrap();
        // Each client reaches one of them, always the same one for one client address.
        let mut reached = Vec::new();
        for from in [hosts[0], hosts[2], hosts[0], hosts[2]] {
            net.connect(&mut Canonical::default(), from, address(2, 80), net.now_ns)
                .unwrap();
            for (_, event) in run_until_idle(&mut net) {
                if let NetEvent::Accept { listener, peer, .. } = event {
                    reached.push((peer.ip(), listener));
                }
            }
        }
        assert_eq!(reached.len(), 4);
        assert!(reached.iter().all(|(_, l)| *l == first || *l == second));
        // Closing one leaves the other listening on the shared address.
        net.close_listener(first, net.now_ns).unwrap();
        let conn = net
            .connect(
                &mut Canonical::default(),
                hosts[0],
                address(2, 80),
                net.now_ns,
            )
            .unwrap();
        let events = run_until_idle(&mut net);
        assert!(events.iter().any(
            |(_, e)| matches!(e, NetEvent::Accept { listener, conn: c, .. } if *listener == second && *c == conn)
        ));
    }

    #[test]
    fn an_ipv6_wildcard_is_dual_stack_unless_v6only() {
        let (mut net, hosts) = network(1, LinkShape::fixed(MS));
        let v4_any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080);
        let v6_any = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 8080);
        let v4 = net.listen(hosts[0], v4_any, 8).unwrap();
        // Dual-stack `::` holds the IPv4 port too: it clashes; IPV6_V6ONLY does not.
        assert_eq!(
            net.listen(hosts[0], v6_any, 8),
            Err(NetError::AddressInUse(v6_any))
        );
        let v6only = BindOptions {
            reuse_port: false,
            v6only: true,
        };
        let v6 = net.listen_with(hosts[0], v6_any, 8, v6only).unwrap();
        let to_v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
        let to_v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8080);
        assert_eq!(net.listener_for(hosts[0], to_v4, to_v4), Some(v4));
        assert_eq!(net.listener_for(hosts[0], to_v6, to_v6), Some(v6));
        // Alone, an IPv4 wildcard takes no IPv6, a v6only one no IPv4.
        net.close_listener(v6, 0).unwrap();
        assert_eq!(net.listener_for(hosts[0], to_v6, to_v6), None);
        net.close_listener(v4, 0).unwrap();
        net.listen_with(hosts[0], v6_any, 8, v6only).unwrap();
        assert_eq!(net.listener_for(hosts[0], to_v4, to_v4), None);
    }

    #[test]
    fn a_client_bound_to_a_local_address_connects_from_it() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.listen(hosts[1], address(2, 80), 8).unwrap();
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 4242);
        let conn = net
            .connect_from(
                &mut Canonical::default(),
                hosts[0],
                Some(local),
                address(2, 80),
                0,
            )
            .unwrap();
        let events = run_until_idle(&mut net);
        assert!(events.iter().any(|(_, e)| matches!(
            e,
            NetEvent::Connected { conn: c, local, .. } if *c == conn && *local == address(1, 4242)
        )));
        // The port is held while the connection lives: a second bind to it clashes,
        // and a listener on it too.
        assert_eq!(
            net.connect_from(
                &mut Canonical::default(),
                hosts[0],
                Some(address(1, 4242)),
                address(2, 80),
                net.now_ns
            ),
            Err(NetError::AddressInUse(address(1, 4242)))
        );
        assert_eq!(
            net.listen(hosts[0], address(1, 4242), 8),
            Err(NetError::AddressInUse(address(1, 4242)))
        );
        // An address of another family is refused before anything is sent.
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0);
        assert!(net
            .connect_from(
                &mut Canonical::default(),
                hosts[0],
                Some(v6),
                address(2, 80),
                net.now_ns
            )
            .is_err());
    }

    #[test]
    fn a_server_that_accepts_and_aborts_before_its_syn_ack_lands_resets_a_connected_client() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.listen(hosts[1], address(2, 80), 8).unwrap();
        let conn = net
            .connect(&mut Canonical::default(), hosts[0], address(2, 80), 0)
            .unwrap();
        let accepted = run_until(&mut net, MS);
        assert!(matches!(accepted[..], [(_, NetEvent::Accept { .. })]));
        net.abort(conn, Side::Server, MS).unwrap();
        let client = address(1, FIRST_EPHEMERAL_PORT);
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (
                    MS,
                    NetEvent::Connected {
                        conn,
                        local: client,
                        peer: address(2, 80)
                    }
                ),
                (
                    MS,
                    NetEvent::Reset {
                        conn,
                        side: Side::Client
                    }
                ),
            ],
            "not Refused: the server had taken the connection"
        );
    }

    #[test]
    fn connect_to_an_address_nobody_listens_on_is_refused_after_a_round_trip() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let conn = net
            .connect(&mut Canonical::default(), hosts[0], address(2, 80), 0)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(2 * MS, NetEvent::Refused { conn })]
        );
        assert_eq!(
            net.send(&mut Canonical::default(), conn, Side::Client, b"x", 0),
            Err(NetError::NoSuchConnection(conn))
        );
        assert!(net.connections.is_empty());
    }

    #[test]
    fn connect_to_an_address_no_host_has_is_no_route() {
        let (mut net, hosts) = network(1, LinkShape::fixed(MS));
        assert_eq!(
            net.connect(&mut Canonical::default(), hosts[0], address(9, 80), 0),
            Err(NetError::NoRouteToHost(ip(9)))
        );
    }

    #[test]
    fn loopback_connections_stay_on_the_host_and_ignore_clogs() {
        let (mut net, hosts) = network(1, LinkShape::fixed(MS));
        let any = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 80);
        net.listen(hosts[0], any, 8).unwrap();
        net.clog_node_out(hosts[0]).unwrap();
        net.clog_node_in(hosts[0]).unwrap();
        let loopback = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 80);
        let conn = net
            .connect(&mut Canonical::default(), hosts[0], loopback, 0)
            .unwrap();
        let events = run_until_idle(&mut net);
        let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), FIRST_EPHEMERAL_PORT);
        assert_eq!(
            events.last(),
            Some(&(
                2 * MS,
                NetEvent::Connected {
                    conn,
                    local: client,
                    peer: loopback
                }
            ))
        );
    }

    #[test]
    fn a_paused_listener_queues_connects_and_refuses_beyond_its_backlog() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let listener = net.listen(hosts[1], address(2, 80), 1).unwrap();
        net.set_accepting(listener, false, 0).unwrap();
        let queued = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        let refused = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        let events = run_until_idle(&mut net);
        assert!(matches!(
            events.as_slice(),
            [(_, NetEvent::Connected { conn: a, .. }), (_, NetEvent::Refused { conn: b })]
                if *a == queued && *b == refused
        ));
        // The kernel completed the handshake, so the client may talk already.
        net.send(&mut choices, queued, Side::Client, b"early", 2 * MS)
            .unwrap();
        net.shutdown_write(&mut choices, queued, Side::Client, 2 * MS)
            .unwrap();
        assert!(
            run_until(&mut net, 10 * MS).is_empty(),
            "nobody accepted yet"
        );
        net.set_accepting(listener, true, 10 * MS).unwrap();
        let events: Vec<NetEvent> = run_until_idle(&mut net)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            events,
            vec![
                NetEvent::Accept {
                    listener,
                    conn: queued,
                    local: address(2, 80),
                    peer: address(1, FIRST_EPHEMERAL_PORT)
                },
                data(queued, Side::Server, b"early"),
                NetEvent::Eof {
                    conn: queued,
                    side: Side::Server
                },
            ]
        );
    }

    #[test]
    fn closing_a_listener_resets_the_connections_it_had_not_handed_over() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let listener = net.listen(hosts[1], address(2, 80), 4).unwrap();
        let accepted = net
            .connect(&mut choices, hosts[0], address(2, 80), 0)
            .unwrap();
        run_until_idle(&mut net);
        net.set_accepting(listener, false, 5 * MS).unwrap();
        let queued = net
            .connect(&mut choices, hosts[0], address(2, 80), 5 * MS)
            .unwrap();
        run_until_idle(&mut net);
        net.close_listener(listener, 10 * MS).unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(
                10 * MS,
                NetEvent::Reset {
                    conn: queued,
                    side: Side::Client
                }
            )]
        );
        assert!(net.connections.contains_key(&accepted));
        let again = net
            .connect(&mut choices, hosts[0], address(2, 80), 10 * MS)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(12 * MS, NetEvent::Refused { conn: again })]
        );
        // Resumed and closed at the same instant: the handover is cancelled too.
        let listener = net.listen(hosts[1], address(2, 80), 4).unwrap();
        net.set_accepting(listener, false, 20 * MS).unwrap();
        let queued = net
            .connect(&mut choices, hosts[0], address(2, 80), 20 * MS)
            .unwrap();
        run_until_idle(&mut net);
        net.set_accepting(listener, true, 30 * MS).unwrap();
        net.close_listener(listener, 30 * MS).unwrap();
        assert_eq!(net.queue.len(), 1, "only the reset is pending, no handover");
        assert_eq!(
            net.pop_due(30 * MS),
            vec![NetEvent::Reset {
                conn: queued,
                side: Side::Client
            }]
        );
    }

    // -------------------------------------------------------------- streams

    #[test]
    fn stream_bytes_arrive_in_order_exactly_once_under_random_latency() {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 10 * MS,
                loss_percent: 0,
            },
        );
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        // Later segments draw shorter latencies; they must still arrive after earlier ones.
        let extra = [9 * MS, 0, 5 * MS, 0, 2 * MS, 8 * MS, 0];
        let mut choices = Scripted::per_label(&[(LATENCY_LABEL, &extra)]);
        let mut expected = Vec::new();
        let mut previous_arrival = 0;
        for (i, extra_ns) in extra.iter().enumerate() {
            let now = start + i as u64 * MS;
            net.send(&mut choices, conn, Side::Client, vec![i as u8; 3], now)
                .unwrap();
            previous_arrival = (now + MS + extra_ns).max(previous_arrival);
            expected.push((previous_arrival, data(conn, Side::Server, &[i as u8; 3])));
        }
        assert!(choices.exhausted());
        assert_eq!(run_until_idle(&mut net), expected);
    }

    #[test]
    fn lost_segments_arrive_late_but_never_reorder_or_vanish() {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: MS,
                loss_percent: 50,
            },
        );
        net.set_retransmission(100 * MS, 3).unwrap();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        let mut choices = Scripted::per_label(&[(LOSS_LABEL, &[0, 2, 0])]);
        for (i, bytes) in [b"one", b"two", b"six"].iter().enumerate() {
            let now = start + i as u64 * MS;
            net.send(&mut choices, conn, Side::Client, bytes, now)
                .unwrap();
        }
        // "two" is lost twice: retransmitted after 100 ms, then 200 ms more.
        let two_arrives = start + MS + MS + 300 * MS;
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (start + MS, data(conn, Side::Server, b"one")),
                (two_arrives, data(conn, Side::Server, b"two")),
                (two_arrives, data(conn, Side::Server, b"six")),
            ]
        );
    }

    #[test]
    fn shutdown_write_delivers_eof_after_earlier_data() {
        let (mut net, hosts) = network(
            2,
            LinkShape {
                min_latency_ns: MS,
                max_latency_ns: 5 * MS,
                loss_percent: 0,
            },
        );
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        let mut choices = Scripted::per_label(&[(LATENCY_LABEL, &[4 * MS, 0, 0])]);
        net.send(&mut choices, conn, Side::Client, b"x", start)
            .unwrap();
        net.send(&mut choices, conn, Side::Client, b"y", start)
            .unwrap();
        net.shutdown_write(&mut choices, conn, Side::Client, start)
            .unwrap();
        net.shutdown_write(&mut choices, conn, Side::Client, start)
            .unwrap();
        assert_eq!(
            net.send(&mut choices, conn, Side::Client, b"z", start),
            Err(NetError::WriteShut {
                conn,
                side: Side::Client
            })
        );
        // The other direction still works.
        net.send(&mut choices, conn, Side::Server, b"back", start)
            .unwrap();
        let events: Vec<NetEvent> = run_until_idle(&mut net)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(
            events,
            vec![
                data(conn, Side::Client, b"back"),
                data(conn, Side::Server, b"x"),
                data(conn, Side::Server, b"y"),
                NetEvent::Eof {
                    conn,
                    side: Side::Server
                },
            ]
        );
    }

    #[test]
    fn closing_both_sides_forgets_the_connection_and_frees_its_port() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.close(&mut choices, conn, Side::Client, start).unwrap();
        assert_eq!(
            net.send(&mut choices, conn, Side::Client, b"x", start),
            Err(NetError::NotOpen {
                conn,
                side: Side::Client
            })
        );
        let events = run_until_idle(&mut net);
        assert_eq!(
            events,
            vec![(
                start + MS,
                NetEvent::Eof {
                    conn,
                    side: Side::Server
                }
            )]
        );
        net.close(&mut choices, conn, Side::Server, start + MS)
            .unwrap();
        assert!(
            run_until_idle(&mut net).is_empty(),
            "nobody is left to tell"
        );
        assert!(net.connections.is_empty());
        assert!(net.hosts[hosts[0].0 as usize].stream_ports.users.is_empty());
        assert_eq!(
            net.close(&mut choices, conn, Side::Server, start + MS),
            Err(NetError::NoSuchConnection(conn))
        );
    }

    #[test]
    fn data_sent_to_a_closed_side_resets_the_sender() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        net.close(&mut choices, conn, Side::Server, start).unwrap();
        net.send(&mut choices, conn, Side::Client, b"late", start)
            .unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (
                    start + MS,
                    NetEvent::Eof {
                        conn,
                        side: Side::Client
                    }
                ),
                (
                    start + MS,
                    NetEvent::Reset {
                        conn,
                        side: Side::Client
                    }
                ),
            ]
        );
        assert!(net.connections.is_empty());
    }

    // ------------------------------------------------- windows, segmentation

    #[test]
    fn a_window_takes_what_fits_and_a_refused_sender_hears_when_half_is_read() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        net.set_stream_window(10).unwrap();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        let sent = net.send(&mut choices, conn, Side::Client, b"0123456789abc", start);
        assert_eq!(sent, Ok(10));
        assert_eq!(net.send_room(conn, Side::Client), Ok(0));
        assert_eq!(
            run_until_idle(&mut net),
            vec![(start + MS, data(conn, Side::Server, b"0123456789"))]
        );
        net.consumed(conn, Side::Server, 4, start + MS).unwrap();
        assert!(
            run_until_idle(&mut net).is_empty(),
            "less than half is free"
        );
        net.consumed(conn, Side::Server, 6, start + MS).unwrap();
        assert_eq!(
            run_until_idle(&mut net),
            vec![(
                start + MS,
                NetEvent::Writable {
                    conn,
                    side: Side::Client
                }
            )]
        );
        assert_eq!(net.send_room(conn, Side::Client), Ok(10));
        assert!(choices.record.asked.is_empty());
        assert!(net.set_stream_window(0).is_err());
    }

    #[test]
    fn segmentation_cuts_a_write_where_the_choices_say_and_canonical_is_one_read() {
        let (mut net, hosts) = network(2, LinkShape::fixed(MS));
        net.set_segmentation(50).unwrap();
        let (conn, start) = established(&mut net, hosts[0], hosts[1]);
        let mut canonical = Canonical::default();
        net.send(&mut canonical, conn, Side::Client, b"whole", start)
            .unwrap();
        assert_eq!(canonical.record.labels(), [SEGMENT_LABEL]);
        let mut cuts = Scripted::per_label(&[(SEGMENT_LABEL, &[2, 1])]);
        net.send(&mut cuts, conn, Side::Client, b"abcdef", start)
            .unwrap();
        assert!(cuts.exhausted());
        assert_eq!(
            run_until_idle(&mut net),
            vec![
                (start + MS, data(conn, Side::Server, b"whole")),
                (start + MS, data(conn, Side::Server, b"ab")),
                (start + MS + 1, data(conn, Side::Server, b"c")),
                (start + MS + 2, data(conn, Side::Server, b"def")),
            ]
        );
    }

    // ------------------------------------------------------ resets, crashes

    #[test]
    fn reset_connections_tells_both_sides_and_discards_data_in_flight() {
        let (mut net, hosts) = network(3, LinkShape::fixed(MS));
        let mut choices = Canonical::default();
        let (conn, _) = established(&mut net, hosts[0], hosts[1]);
        let (other, start) = established(&mut net, hosts[0], hosts[2]);
        net.block(hosts[1], hosts[0]).unwrap();
        net.send(&mut choices, conn, Side::Client, b"in flight", start)
            .unwrap();
        net.send(&mut choices, conn, Side::Server, b"held", start)
            .unwrap();
        assert_eq!(net.next_event_time(), Some(start + MS));
        assert_eq!(
            net.reset_connections(hosts[1], hosts[0], start),
            Ok(vec![conn])
        );
        net.heal(&mut choices, start);
        assert_eq!(
            net.pop_due(start),
            vec![
                NetEvent::Reset {
                    conn,
                    side: Side::Client
                },
                NetEvent::Reset {
                    conn,
                    side: Side::Server
                },
            ]
        );
        assert_eq!(
            net.next_event_time(),
            None,
            "discarded data leaves no wake-up behind"
        );
        assert_eq!(
            net.send(&mut choices, conn, Side::Client, b"x", start),
            Err(NetError::NoSuchConnection(conn))
        );
        assert!(net.connections.contains_key(&other));
    }
}
