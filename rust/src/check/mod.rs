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
pub mod serializable;

#[cfg(test)]
mod tests;

use std::hash::{BuildHasherDefault, Hasher};

/// A hash map with [`FxHasher`].
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A fast, deterministic hasher for small states (the multiply-rotate of rustc's
/// FxHash); the checkers' maps need speed, not resistance to chosen inputs.
#[derive(Default)]
pub(crate) struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    fn write_i64(&mut self, i: i64) {
        self.write_u64(i as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
