//! A history as the checkers read it: one [`Operation`] per client call, with the
//! virtual time it was invoked and completed at, what it asked for and what it got.
//!
//! Values are small and hashable ([`Value`]): the Python layer maps its objects onto
//! them (ints stay ints, other hashable objects become interned symbols, sets and
//! sequences become [`Value::Coll`]).

use std::fmt;

/// A value an operation took or returned.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    /// An interned object (a string, a tuple...): equal objects, equal symbols.
    Sym(u64),
    /// A collection: a set's members (sorted), a sequence's items (in order).
    Coll(Box<[Value]>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false) | Value::Int(0))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Nil => write!(f, "None"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Sym(s) => write!(f, "#{s}"),
            Value::Coll(items) => {
                write!(f, "[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "]")
            }
        }
    }
}

/// What an operation asked the object to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    Read,
    Write,
    Cas,
    Add,
    Remove,
    Contains,
    Enqueue,
    Dequeue,
    Acquire,
    Release,
    /// A user model's function: its index in the model's list of names.
    Custom(u16),
}

impl Function {
    /// The built-in function called `name` (`get` and `put` are a map's read and
    /// write), if there is one.
    pub fn builtin(name: &str) -> Option<Function> {
        Some(match name {
            "read" | "get" => Function::Read,
            "write" | "put" | "set" => Function::Write,
            "cas" | "compare_and_set" => Function::Cas,
            "add" | "incr" | "increment" => Function::Add,
            "remove" | "discard" => Function::Remove,
            "contains" => Function::Contains,
            "enqueue" | "push" | "put_nowait" => Function::Enqueue,
            "dequeue" | "pop" | "get_nowait" => Function::Dequeue,
            "acquire" | "lock" => Function::Acquire,
            "release" | "unlock" => Function::Release,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Function::Read => "read",
            Function::Write => "write",
            Function::Cas => "cas",
            Function::Add => "add",
            Function::Remove => "remove",
            Function::Contains => "contains",
            Function::Enqueue => "enqueue",
            Function::Dequeue => "dequeue",
            Function::Acquire => "acquire",
            Function::Release => "release",
            Function::Custom(_) => "custom",
        }
    }
}

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It completed and returned `result`.
    Ok,
    /// It definitely did not take effect (the checkers leave it out).
    Fail,
    /// Unknown: it may have taken effect at any time after its invocation, or
    /// never (a timeout, a crashed client, a call still pending at the end).
    Info,
}

/// One client operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Operation {
    /// The caller's name for it (the Python layer: its index in the history).
    pub tag: u64,
    /// The client (process) that called it; one process calls one at a time.
    pub process: u64,
    /// Virtual time of the invocation and of the completion (ns; `None`: never
    /// completed, which an `Info` outcome implies).
    pub invoked: u64,
    pub completed: Option<u64>,
    pub function: Function,
    /// The object it addressed in a map of independent objects (`Nil` otherwise).
    pub key: Value,
    pub args: Vec<Value>,
    /// What it returned (`None` when unknown).
    pub result: Option<Value>,
    pub outcome: Outcome,
}

impl Operation {
    pub fn arg(&self, i: usize) -> &Value {
        self.args.get(i).unwrap_or(&Value::Nil)
    }

    /// Whether the search must place it (it completed with a known result).
    pub fn determinate(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}
