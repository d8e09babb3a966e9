//! `simloom._core.NetCore`: the simulated network (`crate::net`) behind the Python
//! transports of `simloom.net`.
//!
//! Owns: converting addresses, ids and events between Python and the model, drawing
//! the model's choices from the universe's tape, and keeping one timer armed in the
//! loop for the network's next event. Must not: decide delivery order or timing (the
//! model does) or touch protocols (the Python transports do).
//!
//! Delivery is dispatched here: one timer, whose callback is this object's own
//! `_due` (no Python code), fires at the exact virtual nanosecond the next event is
//! due; it pops what is due and schedules each event's registered handler (a
//! transport's `_on_net`, see `register_stream`/`register_datagram`) as a ready
//! callback in that transport's context, with a typed event as arguments. So a
//! segment costs one Python call, in its host's context; the loop drops it if the
//! host's incarnation has crashed. Events with no handler (accepts, and anything
//! for a side not registered yet) go to `deliver(events)`, scheduled once per
//! batch in the world's own context, never a host's, so crashing a host never
//! drops it.

use super::handle::Handle;
use super::loop_core::LoopCore;
use crate::choices::Latch;
use crate::engine::Engine;
use crate::net::{
    ConnId, DatagramSocketId, HostId, LinkShape, ListenerId, NetError, NetEvent, Network, Side,
};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

/// Where a transport's events go: its inbox and the context it runs in.
struct Target {
    inbox: Py<NetInbox>,
    context: Py<PyAny>,
}

/// One transport's events waiting for their loop steps. Each event is scheduled as
/// its own ready callback (so the strategy interleaves it with everything else as
/// before), and that callback is this inbox, which hands its handler the event at
/// the *front*: however the strategy orders the callbacks, a transport sees its
/// events in the order the network produced them.
#[pyclass(module = "simloom._core")]
pub struct NetInbox {
    handler: Option<Py<PyAny>>,
    queue: std::collections::VecDeque<Py<PyTuple>>,
}

#[pymethods]
impl NetInbox {
    fn __call__(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (handler, args) = {
            let mut inbox = slf.borrow_mut();
            let Some(args) = inbox.queue.pop_front() else {
                return Ok(());
            };
            let Some(handler) = inbox.handler.as_ref() else {
                return Ok(());
            };
            (handler.clone_ref(py), args)
        };
        handler.bind(py).call1(args.bind(py))?;
        Ok(())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(handler) = &self.handler {
            visit.call(handler)?;
        }
        for args in &self.queue {
            visit.call(args)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.handler = None;
        self.queue.clear();
    }
}

/// The engine answering the network's questions. The network's calls cannot fail
/// half way, so the latch keeps the source's first error to raise after the call.
type TapeChoices<'a> = Latch<&'a mut Engine<Py<Handle>>>;

fn side_of(index: u8) -> PyResult<Side> {
    match index {
        0 => Ok(Side::Client),
        1 => Ok(Side::Server),
        other => Err(PyValueError::new_err(format!(
            "side must be 0 (client) or 1 (server), got {other}"
        ))),
    }
}

fn side_index(side: Side) -> u8 {
    match side {
        Side::Client => 0,
        Side::Server => 1,
    }
}

fn parse_ip(ip: &str) -> PyResult<IpAddr> {
    ip.parse()
        .map_err(|_| PyValueError::new_err(format!("not an IP address: {ip:?}")))
}

fn socket_addr(ip: &str, port: u16) -> PyResult<SocketAddr> {
    Ok(SocketAddr::new(parse_ip(ip)?, port))
}

fn address_tuple(address: SocketAddr) -> (String, u16) {
    (address.ip().to_string(), address.port())
}

/// Model errors as the exceptions the real socket calls raise.
fn net_error(error: NetError) -> PyErr {
    let message = error.to_string();
    match error {
        NetError::AddressInUse(_) => PyOSError::new_err((libc_errno::EADDRINUSE, message)),
        NetError::NoRouteToHost(_) => PyOSError::new_err((libc_errno::EHOSTUNREACH, message)),
        NetError::AddressNotOnHost { .. } | NetError::PortsExhausted(_) => {
            PyOSError::new_err((libc_errno::EADDRNOTAVAIL, message))
        }
        NetError::InvalidArgument { .. } | NetError::AddressTaken(_) => {
            PyValueError::new_err(message)
        }
        NetError::NotOpen { .. } | NetError::WriteShut { .. } | NetError::NoSuchConnection(_) => {
            PyOSError::new_err((libc_errno::ENOTCONN, message))
        }
        NetError::UnknownHost(_)
        | NetError::UnknownListener(_)
        | NetError::UnknownDatagramSocket(_) => PyRuntimeError::new_err(message),
    }
}

/// Linux errno values (the simulation reports Linux's numbers on every platform).
mod libc_errno {
    pub const EADDRINUSE: i32 = 98;
    pub const EADDRNOTAVAIL: i32 = 99;
    pub const ENOTCONN: i32 = 107;
    pub const EHOSTUNREACH: i32 = 113;
}

#[pyclass(module = "simloom._core")]
pub struct NetCore {
    net: Network,
    /// Called with a list of the events that have no registered handler.
    deliver: Option<Py<PyAny>>,
    /// The context `deliver` (and the timer) runs in.
    context: Option<Py<PyAny>>,
    /// The timer's callback: this object's `_due`, bound by `bind`.
    due: Option<Py<PyAny>>,
    /// The timer armed for the next event: its deadline and handle.
    armed: Option<(u64, Py<Handle>)>,
    /// The handlers of stream sides, by (connection, side).
    streams: HashMap<(u64, u8), Target>,
    /// The handlers of datagram sockets, by socket.
    datagrams: HashMap<u64, Target>,
}

impl NetCore {
    /// Run a model call that may draw choices, at the loop's current time, then
    /// re-arm the delivery timer.
    fn act<R>(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        call: impl FnOnce(&mut Network, &mut TapeChoices<'_>, u64) -> Result<R, NetError>,
    ) -> PyResult<R> {
        let py = loop_core.py();
        let outcome = {
            let mut core = loop_core.borrow_mut();
            let now = core.now_ns();
            let mut choices: TapeChoices<'_> = Latch::new(core.engine_mut());
            let outcome = call(&mut self.net, &mut choices, now);
            if let Some(error) = choices.take_error() {
                return Err(core.fail_source(py, error));
            }
            outcome
        };
        let value = outcome.map_err(net_error)?;
        self.arm(loop_core)?;
        Ok(value)
    }

    /// Pop the events due now and queue each, in order, in its transport's inbox,
    /// scheduling a ready callback for it in the transport's context (except the
    /// first, returned with its context for `_due` to handle at once), and the
    /// rest, as one list of tuples, to `deliver` (in the world's context):
    /// `("accept", listener, conn, local, peer)`, `("connected", conn, local, peer)`,
    /// `("refused", conn)`, `("data", conn, side, bytes)`, `("eof", conn, side)`,
    /// `("reset", conn, side)`, `("writable", conn, side)`,
    /// `("datagram", socket, from, bytes)`; addresses are `(ip, port)` and `side` is
    /// 0 (client) or 1 (server).
    fn dispatch(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
    ) -> PyResult<Option<(Py<NetInbox>, Py<PyAny>)>> {
        let py = loop_core.py();
        let now = loop_core.borrow().now_ns();
        if self
            .armed
            .as_ref()
            .is_some_and(|(deadline, _)| *deadline <= now)
        {
            self.armed = None;
        }
        let other = PyList::empty(py);
        let mut at_once = None;
        for (index, event) in self.net.pop_due(now).into_iter().enumerate() {
            let (target, args) = match event {
                NetEvent::Accept {
                    listener,
                    conn,
                    local,
                    peer,
                } => (
                    None,
                    (
                        "accept",
                        listener.0,
                        conn.0,
                        address_tuple(local),
                        address_tuple(peer),
                    )
                        .into_pyobject(py)?,
                ),
                NetEvent::Connected { conn, local, peer } => match self.streams.get(&(conn.0, 0)) {
                    Some(target) => (
                        Some(target),
                        (
                            pyo3::intern!(py, "connected"),
                            address_tuple(local),
                            address_tuple(peer),
                        )
                            .into_pyobject(py)?,
                    ),
                    None => (
                        None,
                        (
                            "connected",
                            conn.0,
                            address_tuple(local),
                            address_tuple(peer),
                        )
                            .into_pyobject(py)?,
                    ),
                },
                NetEvent::Refused { conn } => match self.streams.get(&(conn.0, 0)) {
                    Some(target) => (
                        Some(target),
                        (pyo3::intern!(py, "refused"),).into_pyobject(py)?,
                    ),
                    None => (None, ("refused", conn.0).into_pyobject(py)?),
                },
                NetEvent::Data { conn, side, bytes } => {
                    let index = side_index(side);
                    let bytes = PyBytes::new(py, &bytes);
                    match self.streams.get(&(conn.0, index)) {
                        Some(target) => (
                            Some(target),
                            (pyo3::intern!(py, "data"), bytes).into_pyobject(py)?,
                        ),
                        None => (None, ("data", conn.0, index, bytes).into_pyobject(py)?),
                    }
                }
                NetEvent::Eof { conn, side } => self.stream_signal(py, "eof", conn, side)?,
                NetEvent::Reset { conn, side } => self.stream_signal(py, "reset", conn, side)?,
                NetEvent::Writable { conn, side } => {
                    self.stream_signal(py, "writable", conn, side)?
                }
                NetEvent::Datagram {
                    socket,
                    from,
                    bytes,
                } => {
                    let bytes = PyBytes::new(py, &bytes);
                    match self.datagrams.get(&socket.0) {
                        Some(target) => (
                            Some(target),
                            (pyo3::intern!(py, "datagram"), address_tuple(from), bytes)
                                .into_pyobject(py)?,
                        ),
                        None => (
                            None,
                            ("datagram", socket.0, address_tuple(from), bytes).into_pyobject(py)?,
                        ),
                    }
                }
            };
            match target {
                Some(target) if index == 0 => {
                    target.inbox.borrow_mut(py).queue.push_back(args.unbind());
                    at_once = Some((target.inbox.clone_ref(py), target.context.clone_ref(py)));
                }
                Some(target) => {
                    target.inbox.borrow_mut(py).queue.push_back(args.unbind());
                    LoopCore::schedule(
                        loop_core,
                        "net",
                        None,
                        target.inbox.bind(py).as_any(),
                        &PyTuple::empty(py),
                        Some(target.context.bind(py).clone()),
                    )?;
                }
                None => other.append(args)?,
            }
        }
        if !other.is_empty() {
            let (Some(deliver), Some(context)) = (&self.deliver, &self.context) else {
                return Err(PyRuntimeError::new_err("the network has been cleared"));
            };
            LoopCore::schedule(
                loop_core,
                "net",
                None,
                deliver.bind(py),
                &PyTuple::new(py, [other])?,
                Some(context.bind(py).clone()),
            )?;
        }
        self.arm(loop_core)?;
        Ok(at_once)
    }

    /// An event with no payload for `side` of `conn`: its handler's arguments, or
    /// the tuple for `deliver`.
    fn stream_signal<'py, 'a>(
        &'a self,
        py: Python<'py>,
        kind: &'static str,
        conn: ConnId,
        side: Side,
    ) -> PyResult<(Option<&'a Target>, Bound<'py, PyTuple>)> {
        let index = side_index(side);
        Ok(match self.streams.get(&(conn.0, index)) {
            Some(target) => (Some(target), PyTuple::new(py, [kind])?),
            None => (None, (kind, conn.0, index).into_pyobject(py)?),
        })
    }

    /// Make sure a timer fires when the network's next event is due.
    fn arm(&mut self, loop_core: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = loop_core.py();
        let Some(next) = self.net.next_event_time() else {
            return Ok(());
        };
        if let Some((deadline, handle)) = &self.armed {
            if *deadline <= next {
                return Ok(());
            }
            handle.bind(py).call_method0(pyo3::intern!(py, "cancel"))?;
        }
        let (Some(due), Some(context)) = (&self.due, &self.context) else {
            return Err(PyRuntimeError::new_err(
                "the network has been cleared (or NetCore.bind() was not called)",
            ));
        };
        let handle = LoopCore::schedule(
            loop_core,
            "net",
            Some(next),
            due.bind(py),
            &PyTuple::new(py, [loop_core])?,
            Some(context.bind(py).clone()),
        )?;
        self.armed = Some((next, handle));
        Ok(())
    }
}

fn target(py: Python<'_>, handler: Py<PyAny>, context: Py<PyAny>) -> PyResult<Target> {
    let inbox = Py::new(
        py,
        NetInbox {
            handler: Some(handler),
            queue: Default::default(),
        },
    )?;
    Ok(Target { inbox, context })
}

/// A forgotten target's pending events are dropped; its scheduled callbacks find
/// an empty inbox.
fn forget(py: Python<'_>, target: Target) {
    let mut inbox = target.inbox.borrow_mut(py);
    inbox.handler = None;
    inbox.queue.clear();
}

fn hosts(ids: Vec<u32>) -> Vec<HostId> {
    ids.into_iter().map(HostId).collect()
}

#[pymethods]
impl NetCore {
    /// A network with no hosts. `deliver()` is run (in `context`) whenever events
    /// are due; it should call `pop`.
    #[new]
    fn new(deliver: Py<PyAny>, context: Py<PyAny>) -> NetCore {
        NetCore {
            net: Network::new(),
            deliver: Some(deliver),
            context: Some(context),
            due: None,
            armed: None,
            streams: HashMap::new(),
            datagrams: HashMap::new(),
        }
    }

    /// Make this object's `_due` the delivery timer's callback (a bound method of
    /// the object itself, which `__new__` cannot take). Call once, before any event.
    fn bind(slf: &Bound<'_, Self>) -> PyResult<()> {
        let due = slf.getattr(pyo3::intern!(slf.py(), "_due"))?.unbind();
        slf.borrow_mut().due = Some(due);
        Ok(())
    }

    /// `side` of `conn`'s events go to `handler(kind, ...)`, run in `context`:
    /// `("data", bytes)`, `("eof",)`, `("reset",)`, `("writable",)`,
    /// `("connected", local, peer)`, `("refused",)`.
    fn register_stream(
        &mut self,
        py: Python<'_>,
        conn: u64,
        side: u8,
        handler: Py<PyAny>,
        context: Py<PyAny>,
    ) -> PyResult<()> {
        let target = target(py, handler, context)?;
        if let Some(old) = self.streams.insert((conn, side), target) {
            forget(py, old);
        }
        Ok(())
    }

    /// `side` of `conn` hears nothing more (events already popped are dropped).
    fn forget_stream(&mut self, py: Python<'_>, conn: u64, side: u8) {
        if let Some(old) = self.streams.remove(&(conn, side)) {
            forget(py, old);
        }
    }

    /// `socket`'s datagrams go to `handler("datagram", (ip, port), bytes)` in `context`.
    fn register_datagram(
        &mut self,
        py: Python<'_>,
        socket: u64,
        handler: Py<PyAny>,
        context: Py<PyAny>,
    ) -> PyResult<()> {
        let target = target(py, handler, context)?;
        if let Some(old) = self.datagrams.insert(socket, target) {
            forget(py, old);
        }
        Ok(())
    }

    fn forget_datagram(&mut self, py: Python<'_>, socket: u64) {
        if let Some(old) = self.datagrams.remove(&socket) {
            forget(py, old);
        }
    }

    /// Add a host with these addresses (besides loopback); its id.
    fn add_host(&mut self, addresses: Vec<String>) -> PyResult<u32> {
        let addresses = addresses
            .iter()
            .map(|ip| parse_ip(ip))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(self.net.add_host(&addresses).map_err(net_error)?.0)
    }

    /// The host that has address `ip`, if any.
    fn host_of(&self, ip: &str) -> PyResult<Option<u32>> {
        Ok(self.net.host_of(parse_ip(ip)?).map(|host| host.0))
    }

    /// Listen on `ip:port` of `host` (port 0: ephemeral); `(listener, (ip, port))`.
    fn listen(
        &mut self,
        host: u32,
        ip: &str,
        port: u16,
        backlog: usize,
    ) -> PyResult<(u64, (String, u16))> {
        let listener = self
            .net
            .listen(HostId(host), socket_addr(ip, port)?, backlog)
            .map_err(net_error)?;
        let address = self.net.listener_address(listener).map_err(net_error)?;
        Ok((listener.0, address_tuple(address)))
    }

    fn set_accepting(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        listener: u64,
        accepting: bool,
    ) -> PyResult<()> {
        self.act(loop_core, |net, _, now| {
            net.set_accepting(ListenerId(listener), accepting, now)
        })
    }

    fn close_listener(&mut self, loop_core: &Bound<'_, LoopCore>, listener: u64) -> PyResult<()> {
        self.act(loop_core, |net, _, now| {
            net.close_listener(ListenerId(listener), now)
        })
    }

    /// Start connecting from `host` to `ip:port`; the connection's id.
    fn connect(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        host: u32,
        ip: &str,
        port: u16,
    ) -> PyResult<u64> {
        let to = socket_addr(ip, port)?;
        self.act(loop_core, |net, choices, now| {
            net.connect(choices, HostId(host), to, now)
        })
        .map(|conn| conn.0)
    }

    /// Send as much of `data` as the window takes; how many bytes that was. `more`:
    /// the sender holds bytes beyond `data` too, so it wants `("writable", ...)`
    /// when there is room even if all of `data` was taken.
    #[pyo3(signature = (loop_core, conn, side, data, more = false))]
    fn send(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        conn: u64,
        side: u8,
        data: &[u8],
        more: bool,
    ) -> PyResult<usize> {
        let side = side_of(side)?;
        self.act(loop_core, |net, choices, now| {
            let taken = net.send(choices, ConnId(conn), side, data, now)?;
            if more && taken == data.len() {
                net.want_room(ConnId(conn), side)?;
            }
            Ok(taken)
        })
    }

    /// `side` of `conn` read `count` bytes, freeing its peer's window.
    fn consumed(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        conn: u64,
        side: u8,
        count: u64,
    ) -> PyResult<()> {
        let side = side_of(side)?;
        self.act(loop_core, |net, _, now| {
            net.consumed(ConnId(conn), side, count, now)
        })
    }

    fn set_stream_window(&mut self, bytes: u64) -> PyResult<()> {
        self.net.set_stream_window(bytes).map_err(net_error)
    }

    fn stream_window(&self) -> u64 {
        self.net.stream_window()
    }

    fn set_segmentation(&mut self, percent: u32) -> PyResult<()> {
        self.net.set_segmentation(percent).map_err(net_error)
    }

    fn shutdown_write(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        conn: u64,
        side: u8,
    ) -> PyResult<()> {
        let side = side_of(side)?;
        self.act(loop_core, |net, choices, now| {
            net.shutdown_write(choices, ConnId(conn), side, now)
        })
    }

    fn close(&mut self, loop_core: &Bound<'_, LoopCore>, conn: u64, side: u8) -> PyResult<()> {
        let side = side_of(side)?;
        self.act(loop_core, |net, choices, now| {
            net.close(choices, ConnId(conn), side, now)
        })
    }

    fn abort(&mut self, loop_core: &Bound<'_, LoopCore>, conn: u64, side: u8) -> PyResult<()> {
        let side = side_of(side)?;
        self.act(loop_core, |net, _, now| net.abort(ConnId(conn), side, now))
    }

    /// Bind a datagram socket on `host`; `(socket, (ip, port))`.
    fn bind_datagram(&mut self, host: u32, ip: &str, port: u16) -> PyResult<(u64, (String, u16))> {
        let socket = self
            .net
            .bind_datagram(HostId(host), socket_addr(ip, port)?)
            .map_err(net_error)?;
        let address = self.net.datagram_address(socket).map_err(net_error)?;
        Ok((socket.0, address_tuple(address)))
    }

    fn close_datagram(&mut self, socket: u64) -> PyResult<()> {
        self.net
            .close_datagram(DatagramSocketId(socket))
            .map_err(net_error)
    }

    fn send_datagram(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        socket: u64,
        ip: &str,
        port: u16,
        data: &[u8],
    ) -> PyResult<()> {
        let to = socket_addr(ip, port)?;
        let bytes = data.to_vec();
        self.act(loop_core, |net, choices, now| {
            net.send_datagram(choices, DatagramSocketId(socket), to, bytes, now)
        })
    }

    // ------------------------------------------------------------ faults

    fn partition(&mut self, side_a: Vec<u32>, side_b: Vec<u32>) -> PyResult<()> {
        self.net
            .partition(&hosts(side_a), &hosts(side_b))
            .map_err(net_error)
    }

    fn heal(&mut self, loop_core: &Bound<'_, LoopCore>) -> PyResult<()> {
        self.act(loop_core, |net, choices, now| {
            net.heal(choices, now);
            Ok(())
        })
    }

    fn heal_between(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        side_a: Vec<u32>,
        side_b: Vec<u32>,
    ) -> PyResult<()> {
        let (side_a, side_b) = (hosts(side_a), hosts(side_b));
        self.act(loop_core, |net, choices, now| {
            net.heal_between(choices, &side_a, &side_b, now)
        })
    }

    fn block(&mut self, src: u32, dst: u32) -> PyResult<()> {
        self.net.block(HostId(src), HostId(dst)).map_err(net_error)
    }

    fn unblock(&mut self, loop_core: &Bound<'_, LoopCore>, src: u32, dst: u32) -> PyResult<()> {
        self.act(loop_core, |net, choices, now| {
            net.unblock(choices, HostId(src), HostId(dst), now)
        })
    }

    fn clog_node_out(&mut self, host: u32) -> PyResult<()> {
        self.net.clog_node_out(HostId(host)).map_err(net_error)
    }

    fn clog_node_in(&mut self, host: u32) -> PyResult<()> {
        self.net.clog_node_in(HostId(host)).map_err(net_error)
    }

    fn unclog_node_out(&mut self, loop_core: &Bound<'_, LoopCore>, host: u32) -> PyResult<()> {
        self.act(loop_core, |net, choices, now| {
            net.unclog_node_out(choices, HostId(host), now)
        })
    }

    fn unclog_node_in(&mut self, loop_core: &Bound<'_, LoopCore>, host: u32) -> PyResult<()> {
        self.act(loop_core, |net, choices, now| {
            net.unclog_node_in(choices, HostId(host), now)
        })
    }

    /// Reset the connections between hosts `a` and `b`; their ids.
    fn reset_connections(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        a: u32,
        b: u32,
    ) -> PyResult<Vec<u64>> {
        let reset = self.act(loop_core, |net, _, now| {
            net.reset_connections(HostId(a), HostId(b), now)
        })?;
        Ok(reset.into_iter().map(|conn| conn.0).collect())
    }

    /// The processes of `host` crash; the ids of the connections it had.
    fn crash_host(&mut self, loop_core: &Bound<'_, LoopCore>, host: u32) -> PyResult<Vec<u64>> {
        let gone = self.act(loop_core, |net, _, now| net.crash_host(HostId(host), now))?;
        Ok(gone.into_iter().map(|conn| conn.0).collect())
    }

    /// Shape every link without a shape of its own (nanoseconds, percent).
    fn set_default_link(
        &mut self,
        min_latency_ns: u64,
        max_latency_ns: u64,
        loss_percent: u32,
    ) -> PyResult<()> {
        self.net
            .set_default_link(LinkShape {
                min_latency_ns,
                max_latency_ns,
                loss_percent,
            })
            .map_err(net_error)
    }

    /// `(min_latency_ns, max_latency_ns, loss_percent)` of the default link.
    fn default_link(&self) -> (u64, u64, u32) {
        let shape = self.net.default_link();
        (
            shape.min_latency_ns,
            shape.max_latency_ns,
            shape.loss_percent,
        )
    }

    /// `(min_latency_ns, max_latency_ns, loss_percent)` of the link `src → dst`.
    fn link(&self, src: u32, dst: u32) -> (u64, u64, u32) {
        let shape = self.net.link_shape(HostId(src), HostId(dst));
        (
            shape.min_latency_ns,
            shape.max_latency_ns,
            shape.loss_percent,
        )
    }

    /// Shape the directed link `src → dst`.
    fn set_link(
        &mut self,
        src: u32,
        dst: u32,
        min_latency_ns: u64,
        max_latency_ns: u64,
        loss_percent: u32,
    ) -> PyResult<()> {
        self.net
            .set_link(
                HostId(src),
                HostId(dst),
                LinkShape {
                    min_latency_ns,
                    max_latency_ns,
                    loss_percent,
                },
            )
            .map_err(net_error)
    }

    fn clear_link(&mut self, src: u32, dst: u32) {
        self.net.clear_link(HostId(src), HostId(dst));
    }

    fn set_retransmission(&mut self, timeout_ns: u64, max_retransmissions: u32) -> PyResult<()> {
        self.net
            .set_retransmission(timeout_ns, max_retransmissions)
            .map_err(net_error)
    }

    fn set_datagram_loss(&mut self, percent: u32) -> PyResult<()> {
        self.net.set_datagram_loss(percent).map_err(net_error)
    }

    fn set_datagram_duplication(&mut self, percent: u32) -> PyResult<()> {
        self.net
            .set_datagram_duplication(percent)
            .map_err(net_error)
    }

    fn set_datagram_reorder(&mut self, percent: u32) -> PyResult<()> {
        self.net.set_datagram_reorder(percent).map_err(net_error)
    }

    fn set_datagram_reorder_delay(&mut self, delay_ns: u64) -> PyResult<()> {
        self.net
            .set_datagram_reorder_delay(delay_ns)
            .map_err(net_error)
    }

    // ------------------------------------------------------------ delivery

    /// Virtual nanosecond of the next event, if any.
    fn next_event_time(&self) -> Option<u64> {
        self.net.next_event_time()
    }

    /// The delivery timer fired: hand the events due now, in order, to their
    /// transports. The first, if it has a handler, is handled right here, in its
    /// transport's context: a lone segment costs this one loop step and one Python
    /// call. See `dispatch` for the rest.
    fn _due(slf: &Bound<'_, Self>, loop_core: &Bound<'_, LoopCore>) -> PyResult<()> {
        let py = slf.py();
        let Some((inbox, context)) = slf.borrow_mut().dispatch(loop_core)? else {
            return Ok(());
        };
        // The borrow is released: the handler writes, reads and closes through
        // this object.
        // SAFETY: `context` is a live `contextvars.Context` owned here for the call.
        if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
            // Already entered (never so for a transport's own context): give the
            // event a step of its own instead.
            drop(PyErr::take(py));
            LoopCore::schedule(
                loop_core,
                "net",
                None,
                inbox.bind(py).as_any(),
                &PyTuple::empty(py),
                Some(context.bind(py).clone()),
            )?;
            return Ok(());
        }
        let result = NetInbox::__call__(inbox.bind(py));
        // SAFETY: exits the context entered above.
        if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
            return Err(PyErr::fetch(py));
        }
        result
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for object in [&self.deliver, &self.context, &self.due]
            .into_iter()
            .flatten()
        {
            visit.call(object)?;
        }
        for target in self.streams.values().chain(self.datagrams.values()) {
            visit.call(&target.inbox)?;
            visit.call(&target.context)?;
        }
        if let Some((_, handle)) = &self.armed {
            visit.call(handle)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.deliver = None;
        self.context = None;
        self.due = None;
        self.armed = None;
        self.streams.clear();
        self.datagrams.clear();
    }
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NetCore>()?;
    module.add_class::<NetInbox>()
}
