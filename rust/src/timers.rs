//! Timers: callbacks waiting for a virtual deadline.
//!
//! Timers due at the same instant leave the heap in the order they were scheduled
//! (deadline, then seq). Cancelling a timer drops its payload at once; the heap entry
//! is skipped lazily and the heap is rebuilt when cancelled entries dominate it.
//!
//! Owns: deadlines and their order. Must not: advance the clock (the engine does).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for dense integer keys (handle seqs): a multiply is enough and is
/// deterministic, unlike the randomly seeded default.
#[derive(Default, Clone, Copy)]
pub struct SeqHasher(u64);

impl Hasher for SeqHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (value ^ (value >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_u32(&mut self, value: u32) {
        self.write_u64(value as u64)
    }
    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64)
    }
}

pub type SeqMap<V> = HashMap<u64, V, BuildHasherDefault<SeqHasher>>;

#[derive(Debug, Clone)]
pub struct TimerHeap<T> {
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    payloads: SeqMap<(u64, T)>,
}

impl<T> Default for TimerHeap<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> TimerHeap<T> {
    pub fn new() -> Self {
        TimerHeap {
            heap: BinaryHeap::new(),
            payloads: SeqMap::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    pub fn push(&mut self, deadline_ns: u64, seq: u64, payload: T) {
        self.heap.push(Reverse((deadline_ns, seq)));
        self.payloads.insert(seq, (deadline_ns, payload));
    }

    pub fn cancel(&mut self, seq: u64) -> Option<T> {
        let (_, payload) = self.payloads.remove(&seq)?;
        if self.heap.len() > 64 && self.heap.len() > 2 * self.payloads.len() {
            self.rebuild();
        }
        Some(payload)
    }

    pub fn contains(&self, seq: u64) -> bool {
        self.payloads.contains_key(&seq)
    }

    /// Earliest live deadline.
    pub fn next_deadline(&mut self) -> Option<u64> {
        self.discard_cancelled_top();
        self.heap.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Pop the earliest timer if it is due at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<(u64, u64, T)> {
        self.discard_cancelled_top();
        let Reverse((deadline, seq)) = *self.heap.peek()?;
        if deadline > now_ns {
            return None;
        }
        self.heap.pop();
        let (_, payload) = self.payloads.remove(&seq)?;
        Some((deadline, seq, payload))
    }

    /// Remove every live timer, earliest first.
    pub fn drain(&mut self) -> Vec<(u64, u64, T)> {
        let mut out = Vec::with_capacity(self.payloads.len());
        while let Some(Reverse((deadline, seq))) = self.heap.pop() {
            if let Some((_, payload)) = self.payloads.remove(&seq) {
                out.push((deadline, seq, payload));
            }
        }
        out
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64, &T)> {
        self.payloads.iter().map(|(seq, (d, p))| (*d, *seq, p))
    }

    fn discard_cancelled_top(&mut self) {
        while let Some(Reverse((_, seq))) = self.heap.peek() {
            if self.payloads.contains_key(seq) {
                break;
            }
            self.heap.pop();
        }
    }

    fn rebuild(&mut self) {
        self.heap = self
            .payloads
            .iter()
            .map(|(seq, (deadline, _))| Reverse((*deadline, *seq)))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_deadlines_keep_insertion_order() {
        let mut timers = TimerHeap::new();
        timers.push(5, 3, "c");
        timers.push(5, 1, "a");
        timers.push(5, 2, "b");
        timers.push(1, 9, "early");
        assert_eq!(timers.pop_due(0), None);
        let order: Vec<&str> =
            std::iter::from_fn(|| timers.pop_due(5).map(|(_, _, p)| p)).collect();
        assert_eq!(order, vec!["early", "a", "b", "c"]);
    }

    #[test]
    fn cancelled_timers_are_skipped_and_the_heap_stays_small() {
        let mut timers = TimerHeap::new();
        for seq in 0..10_000u64 {
            timers.push(1_000 + seq, seq, seq);
            if seq % 100 != 0 {
                assert_eq!(timers.cancel(seq), Some(seq));
            }
        }
        assert_eq!(timers.len(), 100);
        assert!(timers.heap.len() <= 2 * 100 + 64 + 1);
        assert_eq!(timers.next_deadline(), Some(1_000));
        let all: Vec<u64> = timers.drain().into_iter().map(|(_, s, _)| s).collect();
        assert_eq!(all, (0..100).map(|i| i * 100).collect::<Vec<_>>());
    }
}
