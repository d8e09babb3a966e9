//! `simloom._core.NetCore`: the simulated world (`crate::world`: hosts, DNS, Unix
//! paths, endpoint routing) and its network (`crate::net`) behind the `World` facade
//! of `simloom.world` and the Python transports of `simloom.net`.
//!
//! Owns: converting addresses, ids and events between Python and the models, drawing
//! the network's choices from the universe's tape, keeping one timer armed in the
//! loop for the network's next event, and the Python objects the world routes to
//! (each host's `Host`, each endpoint's handlers). Must not: decide delivery order or
//! timing (the model does) or touch protocols (the Python transports do).
//!
//! Delivery is dispatched here: one timer, whose callback is this object's own
//! `_due` (no Python code), fires at the exact virtual nanosecond the next event is
//! due; it pops what is due and schedules each event's registered handler (a
//! transport's `_on_net`, see `register_stream`/`register_datagram`) as a ready
//! callback in that transport's context, with a typed event as arguments. So a
//! segment costs one Python call, in its host's context; the loop drops it if the
//! host's incarnation has crashed. Events with no handler (accepts, and anything
//! for a side not registered yet) go, as one `NetBatch`, to this object's own
//! `_deliver`, scheduled once per batch in the world's own context, never a host's,
//! so crashing a host never drops it: an accept is handed to its listener's
//! handler (`SimServer._on_accept`, in the server's context), any other event to
//! the handler registered by then, or dropped.

use super::handle::Handle;
use super::loop_core::LoopCore;
use crate::choices::Latch;
use crate::engine::Engine;
use crate::net::{
    BindOptions, ConnId, DatagramSocketId, HostId, LinkShape, ListenerId, NetError, NetEvent,
    Network, Side,
};
use crate::world::{World, WorldError};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3::{PyTraverseError, PyVisit};
use std::net::{IpAddr, SocketAddr};

/// Where an endpoint's events go: its inbox (in front of its handler), the context
/// it runs in, and what to call when its host crashes.
struct Target {
    inbox: Py<NetInbox>,
    context: Py<PyAny>,
    on_crash: Py<PyAny>,
}

/// The world as the FFI layer keeps it: each host's Python `Host`, each endpoint's
/// `Target`.
type PyWorld = World<Py<PyAny>, Target>;

/// An event popped with no handler registered for it, waiting for `_deliver`.
enum Deferred {
    /// For the listener's handler: `(conn, local, peer)`.
    Accept {
        listener: ListenerId,
        conn: ConnId,
        args: Py<PyTuple>,
    },
    /// For the side's handler: `(kind, *payload)`.
    Stream {
        conn: ConnId,
        side: Side,
        args: Py<PyTuple>,
    },
    /// For the socket's handler: `("datagram", source, bytes)`.
    Datagram {
        socket: DatagramSocketId,
        args: Py<PyTuple>,
    },
}

impl Deferred {
    fn args(&self) -> &Py<PyTuple> {
        match self {
            Deferred::Accept { args, .. }
            | Deferred::Stream { args, .. }
            | Deferred::Datagram { args, .. } => args,
        }
    }

    fn into_args(self) -> Py<PyTuple> {
        match self {
            Deferred::Accept { args, .. }
            | Deferred::Stream { args, .. }
            | Deferred::Datagram { args, .. } => args,
        }
    }
}

/// The events of one `_due` that had no handler, in order: the argument of the
/// `_deliver` step scheduled for them (each batch its own, so a scheduler that
/// reorders ready steps reorders whole batches, as it did when they were lists).
#[pyclass(module = "simloom._core")]
pub struct NetBatch {
    events: Vec<Deferred>,
}

#[pymethods]
impl NetBatch {
    fn __len__(&self) -> usize {
        self.events.len()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        for event in &self.events {
            visit.call(event.args())?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.events.clear();
    }
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

/// World errors: the facade checks the user's arguments first, so these are bugs.
fn world_error(error: WorldError) -> PyErr {
    match error {
        WorldError::Net(error) => net_error(error),
        other => PyRuntimeError::new_err(other.to_string()),
    }
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
    /// Hosts, names, Unix paths and who hears each endpoint.
    world: PyWorld,
    /// The step for the events that have no registered handler: this object's
    /// `_deliver`, bound by `bind` (one object, so the event log names it once).
    deliver: Option<Py<PyAny>>,
    /// The context `deliver` (and the timer) runs in.
    context: Option<Py<PyAny>>,
    /// The timer's callback: this object's `_due`, bound by `bind`.
    due: Option<Py<PyAny>>,
    /// The timer armed for the next event: its deadline and handle.
    armed: Option<(u64, Py<Handle>)>,
    /// A blocking socket call waits on the loop's thread: accepts go to their
    /// listener's inbox (a step of its own), so the waiting listener can take its
    /// own at once (`drain_listener`).
    blocked: bool,
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
    /// rest, as one `NetBatch`, to `_deliver` (in the world's context). A handler's
    /// arguments: `("connected", local, peer)`, `("refused",)`, `("data", bytes)`,
    /// `("eof",)`, `("reset",)`, `("writable",)`, `("datagram", from, bytes)`, and a
    /// listener's `(conn, local, peer)`; addresses are `(ip, port)`.
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
        let mut other = Vec::new();
        let mut at_once = None;
        for (index, event) in self.net.pop_due(now).into_iter().enumerate() {
            let endpoints = self.world.endpoints();
            let (target, deferred) = match event {
                NetEvent::Accept {
                    listener,
                    conn,
                    local,
                    peer,
                } => {
                    let args = (conn.0, address_tuple(local), address_tuple(peer))
                        .into_pyobject(py)?
                        .unbind();
                    if self.blocked {
                        if let Some(target) = endpoints.listener(listener) {
                            target.inbox.borrow_mut(py).queue.push_back(args);
                            LoopCore::schedule(
                                loop_core,
                                "net",
                                None,
                                target.inbox.bind(py).as_any(),
                                &PyTuple::empty(py),
                                Some(target.context.bind(py).clone()),
                            )?;
                            continue;
                        }
                    }
                    other.push(Deferred::Accept {
                        listener,
                        conn,
                        args,
                    });
                    continue;
                }
                NetEvent::Connected { conn, local, peer } => (
                    endpoints.stream(conn, Side::Client),
                    Deferred::Stream {
                        conn,
                        side: Side::Client,
                        args: (
                            pyo3::intern!(py, "connected"),
                            address_tuple(local),
                            address_tuple(peer),
                        )
                            .into_pyobject(py)?
                            .unbind(),
                    },
                ),
                NetEvent::Refused { conn } => (
                    endpoints.stream(conn, Side::Client),
                    Deferred::Stream {
                        conn,
                        side: Side::Client,
                        args: (pyo3::intern!(py, "refused"),).into_pyobject(py)?.unbind(),
                    },
                ),
                NetEvent::Data { conn, side, bytes } => (
                    endpoints.stream(conn, side),
                    Deferred::Stream {
                        conn,
                        side,
                        args: (pyo3::intern!(py, "data"), PyBytes::new(py, &bytes))
                            .into_pyobject(py)?
                            .unbind(),
                    },
                ),
                NetEvent::Eof { conn, side } => stream_signal(py, endpoints, "eof", conn, side)?,
                NetEvent::Reset { conn, side } => {
                    stream_signal(py, endpoints, "reset", conn, side)?
                }
                NetEvent::Writable { conn, side } => {
                    stream_signal(py, endpoints, "writable", conn, side)?
                }
                NetEvent::Datagram {
                    socket,
                    from,
                    bytes,
                } => (
                    endpoints.datagram(socket),
                    Deferred::Datagram {
                        socket,
                        args: (
                            pyo3::intern!(py, "datagram"),
                            address_tuple(from),
                            PyBytes::new(py, &bytes),
                        )
                            .into_pyobject(py)?
                            .unbind(),
                    },
                ),
            };
            let Some(target) = target else {
                other.push(deferred);
                continue;
            };
            target
                .inbox
                .borrow_mut(py)
                .queue
                .push_back(deferred.into_args());
            if index == 0 {
                at_once = Some((target.inbox.clone_ref(py), target.context.clone_ref(py)));
            } else {
                LoopCore::schedule(
                    loop_core,
                    "net",
                    None,
                    target.inbox.bind(py).as_any(),
                    &PyTuple::empty(py),
                    Some(target.context.bind(py).clone()),
                )?;
            }
        }
        if !other.is_empty() {
            let (Some(deliver), Some(context)) = (&self.deliver, &self.context) else {
                return Err(PyRuntimeError::new_err("the network has been cleared"));
            };
            let batch = Py::new(py, NetBatch { events: other })?;
            LoopCore::schedule(
                loop_core,
                "net",
                None,
                deliver.bind(py),
                &PyTuple::new(py, [loop_core.as_any(), batch.bind(py).as_any()])?,
                Some(context.bind(py).clone()),
            )?;
        }
        self.arm(loop_core)?;
        Ok(at_once)
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

/// An event with no payload for `side` of `conn`: the side's target, if it has one,
/// and the event for it.
fn stream_signal<'a>(
    py: Python<'_>,
    endpoints: &'a crate::world::Endpoints<Target>,
    kind: &'static str,
    conn: ConnId,
    side: Side,
) -> PyResult<(Option<&'a Target>, Deferred)> {
    Ok((
        endpoints.stream(conn, side),
        Deferred::Stream {
            conn,
            side,
            args: PyTuple::new(py, [kind])?.unbind(),
        },
    ))
}

fn target(
    py: Python<'_>,
    handler: Py<PyAny>,
    context: Py<PyAny>,
    on_crash: Py<PyAny>,
) -> PyResult<Target> {
    let inbox = Py::new(
        py,
        NetInbox {
            handler: Some(handler),
            queue: Default::default(),
        },
    )?;
    Ok(Target {
        inbox,
        context,
        on_crash,
    })
}

/// Call `inbox` (its front event to its handler) inside `context`, as
/// `Context.run` would: an error if the context is entered already.
fn call_in_context(
    py: Python<'_>,
    inbox: &Bound<'_, NetInbox>,
    context: &Bound<'_, PyAny>,
) -> PyResult<()> {
    // SAFETY: `context` is a live `contextvars.Context` held for the call.
    if unsafe { ffi::PyContext_Enter(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    let result = NetInbox::__call__(inbox);
    // SAFETY: exits the context entered above.
    if unsafe { ffi::PyContext_Exit(context.as_ptr()) } != 0 {
        return Err(PyErr::fetch(py));
    }
    result
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

impl NetCore {
    fn payload(&self, py: Python<'_>, host: u32) -> PyResult<Py<PyAny>> {
        let record = self.world.host(HostId(host)).map_err(world_error)?;
        Ok(record.payload().clone_ref(py))
    }
}

#[pymethods]
impl NetCore {
    /// A world with no hosts; the world's own steps (the delivery timer,
    /// `_deliver`) run in `context`.
    #[new]
    fn new(context: Py<PyAny>) -> NetCore {
        NetCore {
            net: Network::new(),
            world: World::new(),
            deliver: None,
            context: Some(context),
            due: None,
            armed: None,
            blocked: false,
        }
    }

    /// Make this object's `_due` the delivery timer's callback and its `_deliver`
    /// the step for events without a handler (bound methods of the object itself,
    /// which `__new__` cannot take). Call once, before any event.
    fn bind(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let due = slf.getattr(pyo3::intern!(py, "_due"))?.unbind();
        let deliver = slf.getattr(pyo3::intern!(py, "_deliver"))?.unbind();
        let mut core = slf.borrow_mut();
        core.due = Some(due);
        core.deliver = Some(deliver);
        Ok(())
    }

    // ------------------------------------------------------------ hosts

    /// Make the host `name` with the next address (10.0.0.1 for the first, the
    /// main host, then 10.0.0.2, ...); `(id, address)`. Give it its `Host` with
    /// `set_host`, and its name with `register_name`.
    fn add_host(&mut self, py: Python<'_>, name: &str) -> PyResult<(u32, String)> {
        let id = self
            .world
            .add_host(&mut self.net, name, py.None())
            .map_err(world_error)?;
        let address = self.world.host(id).map_err(world_error)?.address();
        Ok((id.0, address.to_string()))
    }

    /// The `Host` object of `host` (what `host_named`, `hosts` and `running_host`
    /// answer with).
    fn set_host(&mut self, host: u32, value: Py<PyAny>) -> PyResult<()> {
        self.world
            .set_payload(HostId(host), value)
            .map_err(world_error)
    }

    fn host_named(&self, py: Python<'_>, name: &str) -> Option<Py<PyAny>> {
        let id = self.world.host_named(name)?;
        self.payload(py, id.0).ok()
    }

    /// Every host's `Host`, in creation order.
    fn hosts(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.world
            .hosts()
            .map(|record| record.payload().clone_ref(py))
            .collect()
    }

    /// The `Host` running code of `incarnation` (0: the main host).
    fn running_host(&self, py: Python<'_>, incarnation: u64) -> PyResult<Py<PyAny>> {
        match self.world.running_host(incarnation) {
            Some(record) => Ok(record.payload().clone_ref(py)),
            None => Err(PyRuntimeError::new_err(format!(
                "no host has incarnation {incarnation}"
            ))),
        }
    }

    fn host_alive(&self, host: u32) -> PyResult<bool> {
        Ok(self.world.host(HostId(host)).map_err(world_error)?.alive())
    }

    /// The host's current incarnation (its last, while crashed; 0 for the main host).
    fn host_incarnation(&self, host: u32) -> PyResult<u64> {
        Ok(self
            .world
            .host(HostId(host))
            .map_err(world_error)?
            .incarnation())
    }

    /// A crashed host comes back: its new incarnation.
    fn restart_host(&mut self, host: u32) -> PyResult<u64> {
        self.world.restart(HostId(host)).map_err(world_error)
    }

    // -------------------------------------------------------------- dns

    /// `name` (folded by the caller: lower case, no trailing dot) means `host`'s
    /// address from now on.
    fn register_name(&mut self, name: &str, host: u32) -> PyResult<()> {
        self.world
            .register_name(name, HostId(host))
            .map_err(world_error)
    }

    /// The address a folded name means, if any (the loopback names: 127.0.0.1).
    fn resolve(&self, name: &str) -> Option<String> {
        self.world.resolve(name).map(|ip| ip.to_string())
    }

    /// Reverse DNS: the earliest registered name that means the address `ip`
    /// (written as the world writes addresses), if any.
    fn name_of(&self, ip: &str) -> Option<String> {
        let address: IpAddr = ip.parse().ok()?;
        // Only the world's own spelling names an address (as a string match would).
        if address.to_string() != ip {
            return None;
        }
        self.world.name_of(address).map(str::to_owned)
    }

    // ------------------------------------------------------- unix paths

    /// `path` on `host` is served by the loopback stream `port`; false if taken.
    fn bind_unix(&mut self, host: u32, path: &str, port: u16) -> bool {
        self.world.bind_unix(HostId(host), path, port)
    }

    fn unix_port(&self, host: u32, path: &str) -> Option<u16> {
        self.world.unix_port(HostId(host), path)
    }

    fn unbind_unix(&mut self, host: u32, path: &str) {
        self.world.unbind_unix(HostId(host), path);
    }

    // ---------------------------------------------------------- routing

    /// `side` of `conn`, owned by `host`: its events go to `handler(kind, ...)`,
    /// run in `context`: `("data", bytes)`, `("eof",)`, `("reset",)`,
    /// `("writable",)`, `("connected", local, peer)`, `("refused",)`; `on_crash()`
    /// is called if `host` crashes while the connection is up.
    #[allow(clippy::too_many_arguments)]
    fn register_stream(
        &mut self,
        py: Python<'_>,
        conn: u64,
        side: u8,
        host: u32,
        handler: Py<PyAny>,
        context: Py<PyAny>,
        on_crash: Py<PyAny>,
    ) -> PyResult<()> {
        let side = side_of(side)?;
        let target = target(py, handler, context, on_crash)?;
        if let Some(old) =
            self.world
                .endpoints_mut()
                .register_stream(ConnId(conn), side, HostId(host), target)
        {
            forget(py, old);
        }
        Ok(())
    }

    /// Hand `side` of `conn` the events queued for it now, in order, in its
    /// context (its scheduled inbox steps then find the inbox empty): a blocking
    /// socket call on the loop's thread waits for its own connection's events
    /// while the loop cannot run. Returns how many were handed over.
    fn drain_stream(slf: &Bound<'_, Self>, conn: u64, side: u8) -> PyResult<usize> {
        let py = slf.py();
        let side = side_of(side)?;
        // The borrow ends here: the handler calls back into this object.
        let (inbox, context) = {
            let this = slf.borrow();
            let Some(target) = this.world.endpoints().stream(ConnId(conn), side) else {
                return Ok(0);
            };
            (target.inbox.clone_ref(py), target.context.clone_ref(py))
        };
        let mut count = 0;
        while !inbox.borrow(py).queue.is_empty() {
            match call_in_context(py, inbox.bind(py), context.bind(py)) {
                Ok(()) => {}
                Err(error) if error.is_instance_of::<PyRuntimeError>(py) => {
                    // The context is entered already (the caller runs in it).
                    NetInbox::__call__(inbox.bind(py))?;
                }
                Err(error) => return Err(error),
            }
            count += 1;
        }
        Ok(count)
    }

    /// Whether a blocking socket call waits on the loop's thread (see `blocked`).
    fn set_blocked(&mut self, blocked: bool) {
        self.blocked = blocked;
    }

    /// Hand `listener` the connections queued for it now (while `blocked`), in its
    /// context. Returns how many were handed over.
    fn drain_listener(slf: &Bound<'_, Self>, listener: u64) -> PyResult<usize> {
        let py = slf.py();
        // The borrow ends here: the handler calls back into this object.
        let (inbox, context) = {
            let this = slf.borrow();
            let Some(target) = this.world.endpoints().listener(ListenerId(listener)) else {
                return Ok(0);
            };
            (target.inbox.clone_ref(py), target.context.clone_ref(py))
        };
        let mut count = 0;
        while !inbox.borrow(py).queue.is_empty() {
            call_in_context(py, inbox.bind(py), context.bind(py))?;
            count += 1;
        }
        Ok(count)
    }

    /// `side` of `conn` hears nothing more (events already popped are dropped).
    fn forget_stream(&mut self, py: Python<'_>, conn: u64, side: u8) -> PyResult<()> {
        let side = side_of(side)?;
        if let Some(old) = self.world.endpoints_mut().forget_stream(ConnId(conn), side) {
            forget(py, old);
        }
        Ok(())
    }

    /// `socket`, owned by `host`: its datagrams go to
    /// `handler("datagram", (ip, port), bytes)` in `context`; `on_crash()` if
    /// `host` crashes.
    fn register_datagram(
        &mut self,
        py: Python<'_>,
        socket: u64,
        host: u32,
        handler: Py<PyAny>,
        context: Py<PyAny>,
        on_crash: Py<PyAny>,
    ) -> PyResult<()> {
        let target = target(py, handler, context, on_crash)?;
        if let Some(old) = self.world.endpoints_mut().register_datagram(
            DatagramSocketId(socket),
            HostId(host),
            target,
        ) {
            forget(py, old);
        }
        Ok(())
    }

    fn forget_datagram(&mut self, py: Python<'_>, socket: u64) {
        if let Some(old) = self
            .world
            .endpoints_mut()
            .forget_datagram(DatagramSocketId(socket))
        {
            forget(py, old);
        }
    }

    /// The host that has address `ip`, if any.
    fn host_of(&self, ip: &str) -> PyResult<Option<u32>> {
        Ok(self.net.host_of(parse_ip(ip)?).map(|host| host.0))
    }

    /// Listen on `ip:port` of `host` (port 0: ephemeral); `(listener, (ip, port))`.
    /// Its connections go to `on_accept(conn, local, peer)`, run in `context`;
    /// `on_crash()` is called if `host` crashes while it listens.
    /// `reuse_port` (SO_REUSEPORT): listeners that all set it may share the address;
    /// `v6only` (IPV6_V6ONLY): a `::` listener takes no IPv4.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (host, ip, port, backlog, on_accept, context, on_crash, reuse_port = false, v6only = false))]
    fn listen(
        &mut self,
        py: Python<'_>,
        host: u32,
        ip: &str,
        port: u16,
        backlog: usize,
        on_accept: Py<PyAny>,
        context: Py<PyAny>,
        on_crash: Py<PyAny>,
        reuse_port: bool,
        v6only: bool,
    ) -> PyResult<(u64, (String, u16))> {
        let options = BindOptions { reuse_port, v6only };
        let listener = self
            .net
            .listen_with(HostId(host), socket_addr(ip, port)?, backlog, options)
            .map_err(net_error)?;
        let address = self.net.listener_address(listener).map_err(net_error)?;
        let target = target(py, on_accept, context, on_crash)?;
        self.world
            .endpoints_mut()
            .register_listener(listener, HostId(host), target);
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

    /// Stop listening; connections still on their way to it are refused.
    fn close_listener(&mut self, loop_core: &Bound<'_, LoopCore>, listener: u64) -> PyResult<()> {
        let py = loop_core.py();
        if let Some(old) = self
            .world
            .endpoints_mut()
            .forget_listener(ListenerId(listener))
        {
            forget(py, old);
        }
        self.act(loop_core, |net, _, now| {
            net.close_listener(ListenerId(listener), now)
        })
    }

    /// Start connecting from `host` to `ip:port`; the connection's id. `local`: the
    /// `(ip, port)` the client side is bound to (port 0: an ephemeral one).
    #[pyo3(signature = (loop_core, host, ip, port, local = None))]
    fn connect(
        &mut self,
        loop_core: &Bound<'_, LoopCore>,
        host: u32,
        ip: &str,
        port: u16,
        local: Option<(String, u16)>,
    ) -> PyResult<u64> {
        let to = socket_addr(ip, port)?;
        let local = local
            .map(|(local_ip, local_port)| socket_addr(&local_ip, local_port))
            .transpose()?;
        self.act(loop_core, |net, choices, now| {
            net.connect_from(choices, HostId(host), local, to, now)
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
    /// `reuse_port` (SO_REUSEPORT): sockets that all set it may share the address;
    /// `v6only` (IPV6_V6ONLY): a `::` socket takes no IPv4.
    #[pyo3(signature = (host, ip, port, reuse_port = false, v6only = false))]
    fn bind_datagram(
        &mut self,
        host: u32,
        ip: &str,
        port: u16,
        reuse_port: bool,
        v6only: bool,
    ) -> PyResult<(u64, (String, u16))> {
        let options = BindOptions { reuse_port, v6only };
        let socket = self
            .net
            .bind_datagram_with(HostId(host), socket_addr(ip, port)?, options)
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

    /// The processes of `host` crash (`World::crash`): its incarnation ends, the
    /// network drops its listeners, sockets and connections, its Unix paths are
    /// freed, and each endpoint it owned is unregistered and told (`on_crash()`, in
    /// order: stream sides, listeners, datagram sockets). The incarnation that ended.
    fn crash_host(
        slf: &Bound<'_, Self>,
        loop_core: &Bound<'_, LoopCore>,
        host: u32,
    ) -> PyResult<u64> {
        let py = slf.py();
        let crashed = {
            let mut core = slf.borrow_mut();
            let now = loop_core.borrow().now_ns();
            let core = &mut *core;
            let crashed = core
                .world
                .crash(&mut core.net, HostId(host), now)
                .map_err(world_error)?;
            core.arm(loop_core)?;
            crashed
        };
        // The borrow is released: a handler may call back.
        for target in crashed.endpoints {
            let on_crash = target.on_crash.clone_ref(py);
            forget(py, target);
            on_crash.call0(py)?;
        }
        Ok(crashed.incarnation)
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

    /// The events a `_due` had no handler for, in order, in the world's context: an
    /// accept goes to its listener's handler, run in the listener's context (no
    /// listener any more: the connection is aborted); any other event is scheduled
    /// for the handler registered by now (an accept earlier in the batch may have
    /// registered it), in its context, or dropped.
    fn _deliver(
        slf: &Bound<'_, Self>,
        loop_core: &Bound<'_, LoopCore>,
        batch: &Bound<'_, NetBatch>,
    ) -> PyResult<()> {
        let py = slf.py();
        let events = std::mem::take(&mut batch.borrow_mut().events);
        for event in events {
            match event {
                Deferred::Accept {
                    listener,
                    conn,
                    args,
                } => {
                    let listening = slf
                        .borrow()
                        .world
                        .endpoints()
                        .listener(listener)
                        .map(|target| (target.inbox.clone_ref(py), target.context.clone_ref(py)));
                    match listening {
                        Some((inbox, context)) => {
                            inbox.borrow_mut(py).queue.push_back(args);
                            call_in_context(py, inbox.bind(py), context.bind(py))?;
                        }
                        None => {
                            // Already reset in this batch, perhaps: nothing to abort.
                            match slf.borrow_mut().abort(loop_core, conn.0, 1) {
                                Err(error) if error.is_instance_of::<PyOSError>(py) => {}
                                other => other?,
                            }
                        }
                    }
                }
                Deferred::Stream { conn, side, args } => {
                    let handler = slf
                        .borrow()
                        .world
                        .endpoints()
                        .stream(conn, side)
                        .and_then(|target| handler_of(py, target));
                    schedule_deferred(loop_core, handler, args)?;
                }
                Deferred::Datagram { socket, args } => {
                    let handler = slf
                        .borrow()
                        .world
                        .endpoints()
                        .datagram(socket)
                        .and_then(|target| handler_of(py, target));
                    schedule_deferred(loop_core, handler, args)?;
                }
            }
        }
        Ok(())
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
        for record in self.world.hosts() {
            visit.call(record.payload())?;
        }
        for target in self.world.endpoints().iter() {
            visit.call(&target.inbox)?;
            visit.call(&target.context)?;
            visit.call(&target.on_crash)?;
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
        // Drops every host's `Host` and every endpoint's handlers.
        self.world = World::new();
    }
}

/// A registered target's handler and context, for a step of its own.
/// An event that had no handler when it was due, for the handler registered since
/// (none: the endpoint is gone and the event with it): a step of its own.
fn schedule_deferred(
    loop_core: &Bound<'_, LoopCore>,
    handler: Option<(Py<PyAny>, Py<PyAny>)>,
    args: Py<PyTuple>,
) -> PyResult<()> {
    let py = loop_core.py();
    if let Some((handler, context)) = handler {
        LoopCore::schedule(
            loop_core,
            "net",
            None,
            handler.bind(py),
            args.bind(py),
            Some(context.into_bound(py)),
        )?;
    }
    Ok(())
}

fn handler_of(py: Python<'_>, target: &Target) -> Option<(Py<PyAny>, Py<PyAny>)> {
    let inbox = target.inbox.borrow(py);
    let handler = inbox.handler.as_ref()?.clone_ref(py);
    Some((handler, target.context.clone_ref(py)))
}

pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<NetCore>()?;
    module.add_class::<NetInbox>()?;
    module.add_class::<NetBatch>()
}
