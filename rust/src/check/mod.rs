//! Consistency checkers over recorded histories: is a history of client operations
//! linearizable for a model of the object they used?
//!
//! Owns: the history's plain-data form ([`history`]), the sequential models
//! ([`models`]) and the search ([`linearizable`]): Wing and Gong's search with
//! Lowe's memoisation of (linearized set, model state), run per key when the model
//! is a map of independent objects (P-compositionality), and the shrink of a
//! failure to a small sub-history that is still not linearizable.
//! Must not: know about Python (the `py/check.rs` layer converts histories and
//! drives user models written in Python through [`models::Model`]).

pub mod history;
pub mod linearizable;
pub mod models;
pub mod monitors;

#[cfg(test)]
mod tests;
