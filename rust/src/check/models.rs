//! Sequential specifications: what an operation may return, and what it leaves
//! behind, when it runs alone on an object in a given state.
//!
//! A model says, for a state and an operation, the state after it — or that the
//! operation could not have returned what it returned there. An operation whose
//! result is unknown (an `Info` one) takes effect as it would have, whatever it
//! returned.

use super::history::{Function, Operation, Value};
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// Why a model could not judge an operation: it has no such function, or a user
/// model raised.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelError(pub String);

/// A sequential specification the search checks a history against.
pub trait Model {
    type State: Clone + Eq + Hash;
    fn init(&self) -> Result<Self::State, ModelError>;
    /// The state after `op` runs alone in `state`, or `None` if it could not have
    /// returned its result there.
    fn step(&self, state: &Self::State, op: &Operation) -> Result<Option<Self::State>, ModelError>;

    /// For each operation among `history[candidates]` that observed what others
    /// produced (a read of a written value, a dequeue of an enqueued item, a
    /// counter's total), the operations that produced it, if the model can tell.
    /// A shrunk counterexample never keeps an observer without its producers, so
    /// it never "explains" a stale read as a read of a value nobody wrote.
    fn supports(
        &self,
        _history: &[Operation],
        _candidates: &[usize],
    ) -> HashMap<usize, Vec<usize>> {
        HashMap::new()
    }
}

/// The built-in models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `read() -> v`, `write(v)`; starts at `None`.
    Register,
    /// A register with `cas(old, new) -> bool` as well.
    CasRegister,
    /// A map of independent compare-and-set registers: `get(k)`, `put(k, v)`,
    /// `cas(k, old, new)`; missing keys read `None`. Checked key by key.
    KeyValue,
    /// `add(n)`, `read() -> total`; starts at 0.
    Counter,
    /// `add(x)`, `remove(x)`, `contains(x) -> bool`, `read() -> members`.
    Set,
    /// `enqueue(x)`, `dequeue() -> x`, or `None` when empty.
    Queue,
    /// `acquire() -> bool` (False: a try-acquire that found it held), `release()`;
    /// only the holder releases. A lease is a mutex for this check.
    Mutex,
}

impl Builtin {
    pub fn from_name(name: &str) -> Option<Builtin> {
        Some(match name {
            "register" => Builtin::Register,
            "cas-register" | "cas_register" => Builtin::CasRegister,
            "kv" | "key-value" | "key_value" | "map" => Builtin::KeyValue,
            "counter" => Builtin::Counter,
            "set" => Builtin::Set,
            "queue" | "fifo" | "fifo-queue" => Builtin::Queue,
            "mutex" | "lease" | "lock" => Builtin::Mutex,
            _ => return None,
        })
    }

    pub const NAMES: [&'static str; 7] = [
        "register",
        "cas-register",
        "kv",
        "counter",
        "set",
        "queue",
        "mutex",
    ];

    /// Its name, as `from_name` reads it.
    pub fn name(&self) -> &'static str {
        Builtin::NAMES[*self as usize]
    }

    /// Whether operations on different keys are independent objects.
    pub fn by_key(&self) -> bool {
        matches!(self, Builtin::KeyValue)
    }
}

/// A built-in model's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinState {
    Value(Value),
    Count(i64),
    Members(Vec<Value>),
    Items(VecDeque<Value>),
    Holder(Option<u64>),
}

fn unsupported(model: Builtin, op: &Operation) -> ModelError {
    ModelError(format!(
        "the {} model has no function '{}'",
        model.name(),
        op.function.name()
    ))
}

impl Model for Builtin {
    type State = BuiltinState;

    fn init(&self) -> Result<BuiltinState, ModelError> {
        Ok(match self {
            Builtin::Register | Builtin::CasRegister | Builtin::KeyValue => {
                BuiltinState::Value(Value::Nil)
            }
            Builtin::Counter => BuiltinState::Count(0),
            Builtin::Set => BuiltinState::Members(Vec::new()),
            Builtin::Queue => BuiltinState::Items(VecDeque::new()),
            Builtin::Mutex => BuiltinState::Holder(None),
        })
    }

    fn step(
        &self,
        state: &BuiltinState,
        op: &Operation,
    ) -> Result<Option<BuiltinState>, ModelError> {
        let result = op.result.as_ref();
        let accept = |ok: bool, next: BuiltinState| if ok { Some(next) } else { None };
        Ok(match (self, state) {
            (
                Builtin::Register | Builtin::CasRegister | Builtin::KeyValue,
                BuiltinState::Value(v),
            ) => {
                // A map's key is the operation's `key`: each key is checked alone.
                match op.function {
                    Function::Read => accept(result.is_none_or(|r| r == v), state.clone()),
                    Function::Write => Some(BuiltinState::Value(op.arg(0).clone())),
                    Function::Cas if *self != Builtin::Register => {
                        let (old, new) = (op.arg(0), op.arg(1));
                        let swapped = v == old;
                        match result {
                            Some(r) if r.truthy() != swapped => None,
                            _ if swapped => Some(BuiltinState::Value(new.clone())),
                            _ => Some(state.clone()),
                        }
                    }
                    _ => return Err(unsupported(*self, op)),
                }
            }
            (Builtin::Counter, BuiltinState::Count(total)) => match op.function {
                Function::Add => {
                    let delta = op.arg(0).as_int().unwrap_or(1);
                    Some(BuiltinState::Count(total.wrapping_add(delta)))
                }
                Function::Read => accept(
                    result.is_none_or(|r| r.as_int() == Some(*total)),
                    state.clone(),
                ),
                _ => return Err(unsupported(*self, op)),
            },
            (Builtin::Set, BuiltinState::Members(members)) => {
                let x = op.arg(0);
                let at = members.binary_search(x);
                match op.function {
                    Function::Add => match at {
                        Ok(_) => Some(state.clone()),
                        Err(i) => {
                            let mut next = members.clone();
                            next.insert(i, x.clone());
                            Some(BuiltinState::Members(next))
                        }
                    },
                    Function::Remove => match at {
                        Err(_) => Some(state.clone()),
                        Ok(i) => {
                            let mut next = members.clone();
                            next.remove(i);
                            Some(BuiltinState::Members(next))
                        }
                    },
                    Function::Contains => accept(
                        result.is_none_or(|r| r.truthy() == at.is_ok()),
                        state.clone(),
                    ),
                    Function::Read => {
                        let same = match result {
                            None => true,
                            Some(Value::Coll(items)) => {
                                let mut sorted = items.to_vec();
                                sorted.sort();
                                sorted.dedup();
                                sorted == *members
                            }
                            Some(_) => false,
                        };
                        accept(same, state.clone())
                    }
                    _ => return Err(unsupported(*self, op)),
                }
            }
            (Builtin::Queue, BuiltinState::Items(items)) => match op.function {
                Function::Enqueue => {
                    let mut next = items.clone();
                    next.push_back(op.arg(0).clone());
                    Some(BuiltinState::Items(next))
                }
                Function::Dequeue => match (result, items.front()) {
                    (None, None) => Some(state.clone()),
                    (None, Some(_)) => {
                        let mut next = items.clone();
                        next.pop_front();
                        Some(BuiltinState::Items(next))
                    }
                    (Some(Value::Nil), front) => accept(front.is_none(), state.clone()),
                    (Some(r), Some(front)) if r == front => {
                        let mut next = items.clone();
                        next.pop_front();
                        Some(BuiltinState::Items(next))
                    }
                    _ => None,
                },
                _ => return Err(unsupported(*self, op)),
            },
            (Builtin::Mutex, BuiltinState::Holder(holder)) => match op.function {
                Function::Acquire => match (result.map(Value::truthy), holder) {
                    (Some(true) | None, None) => Some(BuiltinState::Holder(Some(op.process))),
                    (Some(false) | None, Some(_)) => Some(state.clone()),
                    _ => None,
                },
                Function::Release => {
                    accept(*holder == Some(op.process), BuiltinState::Holder(None))
                }
                _ => return Err(unsupported(*self, op)),
            },
            _ => {
                return Err(ModelError(format!(
                    "the {} model was given a foreign state",
                    self.name()
                )))
            }
        })
    }

    fn supports(&self, history: &[Operation], candidates: &[usize]) -> HashMap<usize, Vec<usize>> {
        let mut found: HashMap<usize, Vec<usize>> = HashMap::new();
        if *self == Builtin::Counter {
            // A read's total is made of the latest adds invoked before it completed
            // (a bounded walk back: a large total is left unexplained).
            let adds: Vec<usize> = candidates
                .iter()
                .copied()
                .filter(|&i| history[i].function == Function::Add)
                .collect();
            let mut adds = adds;
            adds.sort_by_key(|&a| (history[a].invoked, a));
            for &i in candidates {
                let op = &history[i];
                let (Function::Read, Some(Value::Int(total))) = (op.function, op.result.as_ref())
                else {
                    continue;
                };
                if *total <= 0 || *total > 64 {
                    continue;
                }
                let before = op.completed.unwrap_or(u64::MAX);
                let end = adds.partition_point(|&a| history[a].invoked <= before);
                let mut sum = 0i64;
                let mut kept = Vec::new();
                for &a in adds[..end].iter().rev() {
                    if sum >= *total {
                        break;
                    }
                    sum += history[a].arg(0).as_int().unwrap_or(1);
                    kept.push(a);
                }
                found.insert(i, kept);
            }
            return found;
        }
        // Producers by what they produce, in invocation order (candidates are).
        let mut producers: HashMap<Value, Vec<usize>> = HashMap::new();
        for &i in candidates {
            if let Some(what) = self.produces(&history[i]) {
                producers.entry(what).or_default().push(i);
            }
        }
        for list in producers.values_mut() {
            list.sort_by_key(|&p| (history[p].invoked, p));
        }
        for &i in candidates {
            let op = &history[i];
            let Some(what) = self.needs(op) else { continue };
            let Some(list) = producers.get(&what) else {
                continue;
            };
            let before = op.completed.unwrap_or(u64::MAX);
            let end = list.partition_point(|&p| history[p].invoked <= before);
            if let Some(&source) = list[..end].iter().rev().find(|&&p| p != i) {
                found.insert(i, vec![source]);
            }
        }
        found
    }
}

impl Builtin {
    /// What `op` leaves for others to observe, keyed as `needs` asks for it.
    fn produces(&self, op: &Operation) -> Option<Value> {
        let maybe = op.result.as_ref().is_none_or(Value::truthy);
        match (self, op.function) {
            (Builtin::Register | Builtin::CasRegister | Builtin::KeyValue, Function::Write) => {
                Some(op.arg(0).clone())
            }
            (Builtin::CasRegister | Builtin::KeyValue, Function::Cas) if maybe => {
                Some(op.arg(1).clone())
            }
            (Builtin::Queue, Function::Enqueue) | (Builtin::Set, Function::Add) => {
                Some(op.arg(0).clone())
            }
            (Builtin::Mutex, Function::Acquire) if maybe => Some(Value::Int(op.process as i64)),
            _ => None,
        }
    }

    /// What `op` observed that another operation must have produced.
    fn needs(&self, op: &Operation) -> Option<Value> {
        let observed = op.result.as_ref()?;
        match (self, op.function) {
            (Builtin::Register | Builtin::CasRegister | Builtin::KeyValue, Function::Read)
                if *observed != Value::Nil =>
            {
                Some(observed.clone())
            }
            (Builtin::CasRegister | Builtin::KeyValue, Function::Cas)
                if observed.truthy() && *op.arg(0) != Value::Nil =>
            {
                Some(op.arg(0).clone())
            }
            (Builtin::Queue, Function::Dequeue) if *observed != Value::Nil => {
                Some(observed.clone())
            }
            (Builtin::Set, Function::Contains) if observed.truthy() => Some(op.arg(0).clone()),
            (Builtin::Mutex, Function::Release) => Some(Value::Int(op.process as i64)),
            _ => None,
        }
    }
}
