//! The ready set: callbacks that may run now, kept in the order they became ready.
//!
//! A scheduling choice names an alternative by its *rank* in that order (0 = the
//! oldest ready callback, which is what the stock loop would run). Choosing, removing
//! and ranking an entry cost O(log n) through a Fenwick tree over insertion
//! positions, so a step does not get slower as the ready set grows.
//!
//! Owns: ordering and lookup of ready entries. Must not: decide anything (strategies
//! do that) or know what a payload is.

/// Counts live entries per position; answers "k-th live entry" and "rank of position".
#[derive(Debug, Clone)]
struct Fenwick {
    tree: Vec<u32>,
}

impl Fenwick {
    fn with_capacity(capacity: usize) -> Self {
        Fenwick {
            tree: vec![0; capacity + 1],
        }
    }

    fn capacity(&self) -> usize {
        self.tree.len() - 1
    }

    fn add(&mut self, position: usize, delta: i32) {
        let mut i = position + 1;
        while i < self.tree.len() {
            self.tree[i] = (self.tree[i] as i64 + delta as i64) as u32;
            i += i & i.wrapping_neg();
        }
    }

    /// Number of live entries at positions `< position`.
    fn prefix(&self, position: usize) -> usize {
        let mut i = position;
        let mut total = 0usize;
        while i > 0 {
            total += self.tree[i] as usize;
            i -= i & i.wrapping_neg();
        }
        total
    }

    /// Position of the live entry with rank `k` (0-based). Caller guarantees k < live.
    fn kth(&self, k: usize) -> usize {
        let mut position = 0usize;
        let mut remaining = k as u32;
        let mut step = self.capacity().next_power_of_two();
        while step > 0 {
            let next = position + step;
            if next < self.tree.len() && self.tree[next] <= remaining {
                position = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        position
    }
}

#[derive(Debug, Clone)]
struct Slot<T> {
    seq: u64,
    payload: Option<T>,
}

/// Ready callbacks in arrival order, addressed by rank.
#[derive(Debug, Clone)]
pub struct ReadySet<T> {
    slots: Vec<Slot<T>>,
    counts: Fenwick,
    live: usize,
    /// Every slot before `head` is a hole, so the oldest entry (rank 0, the FIFO
    /// choice) is found by a short forward scan instead of a tree descent.
    head: usize,
}

impl<T> Default for ReadySet<T> {
    fn default() -> Self {
        Self::new()
    }
}

const INITIAL_CAPACITY: usize = 64;

impl<T> ReadySet<T> {
    pub fn new() -> Self {
        ReadySet {
            slots: Vec::with_capacity(INITIAL_CAPACITY),
            counts: Fenwick::with_capacity(INITIAL_CAPACITY),
            live: 0,
            head: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Append an entry; `seq` must be larger than every seq pushed before.
    pub fn push(&mut self, seq: u64, payload: T) {
        debug_assert!(self.slots.last().is_none_or(|last| last.seq < seq));
        if self.slots.len() == self.counts.capacity() {
            self.make_room();
        }
        let position = self.slots.len();
        self.slots.push(Slot {
            seq,
            payload: Some(payload),
        });
        self.counts.add(position, 1);
        self.live += 1;
    }

    /// Remove and return the entry of rank `rank` (0 = oldest) with its seq.
    pub fn take(&mut self, rank: usize) -> Option<(u64, T)> {
        if rank >= self.live {
            return None;
        }
        let position = if rank == 0 {
            self.oldest_position()
        } else {
            self.counts.kth(rank)
        };
        self.take_position(position)
    }

    /// Position of the oldest live entry; the set must not be empty.
    #[inline]
    fn oldest_position(&mut self) -> usize {
        while self.slots[self.head].payload.is_none() {
            self.head += 1;
        }
        self.head
    }

    /// Rank of the live entry with this seq, if present.
    pub fn rank_of(&self, seq: u64) -> Option<usize> {
        let position = self.position_of(seq)?;
        Some(self.counts.prefix(position))
    }

    /// Seq of the live entry with rank `rank`.
    pub fn seq_at(&self, rank: usize) -> Option<u64> {
        if rank >= self.live {
            return None;
        }
        Some(self.slots[self.counts.kth(rank)].seq)
    }

    /// Remove the entry with this seq (a cancelled handle), if it is still ready.
    pub fn remove(&mut self, seq: u64) -> Option<T> {
        let position = self.position_of(seq)?;
        self.take_position(position).map(|(_, payload)| payload)
    }

    pub fn get(&self, seq: u64) -> Option<&T> {
        let position = self.position_of(seq)?;
        self.slots[position].payload.as_ref()
    }

    /// Live entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.slots
            .iter()
            .filter_map(|slot| slot.payload.as_ref().map(|p| (slot.seq, p)))
    }

    /// Remove every entry, oldest first.
    pub fn drain(&mut self) -> Vec<(u64, T)> {
        let drained: Vec<(u64, T)> = self
            .slots
            .drain(..)
            .filter_map(|slot| slot.payload.map(|p| (slot.seq, p)))
            .collect();
        self.counts = Fenwick::with_capacity(INITIAL_CAPACITY);
        self.live = 0;
        self.head = 0;
        drained
    }

    fn position_of(&self, seq: u64) -> Option<usize> {
        // Slots are in increasing seq order (holes keep their seq), so binary search works.
        let position = self.slots.binary_search_by_key(&seq, |s| s.seq).ok()?;
        self.slots[position].payload.as_ref()?;
        Some(position)
    }

    fn take_position(&mut self, position: usize) -> Option<(u64, T)> {
        let slot = &mut self.slots[position];
        let payload = slot.payload.take()?;
        self.counts.add(position, -1);
        self.live -= 1;
        Some((slot.seq, payload))
    }

    /// Called when the slot vector is full: compact holes away if at most half the
    /// slots are live, otherwise double. Either way O(capacity) once per O(capacity)
    /// pushes, so amortised O(1).
    fn make_room(&mut self) {
        let capacity = self.counts.capacity();
        self.slots.retain(|slot| slot.payload.is_some());
        self.head = 0;
        let new_capacity = if self.live * 2 <= capacity {
            capacity
        } else {
            capacity * 2
        };
        self.counts = Fenwick::with_capacity(new_capacity);
        for position in 0..self.slots.len() {
            self.counts.add(position, 1);
        }
        if self.slots.capacity() < new_capacity {
            self.slots.reserve(new_capacity - self.slots.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_order_is_rank_zero() {
        let mut ready = ReadySet::new();
        for seq in 0..10u64 {
            ready.push(seq, seq * 10);
        }
        for seq in 0..10u64 {
            assert_eq!(ready.take(0), Some((seq, seq * 10)));
        }
        assert!(ready.is_empty());
    }

    #[test]
    fn take_by_rank_matches_a_naive_vector_under_churn() {
        let mut ready = ReadySet::new();
        let mut naive: Vec<u64> = Vec::new();
        let mut next_seq = 0u64;
        let mut state = 12345u64;
        for _ in 0..20_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let roll = (state >> 33) % 10;
            if roll < 6 || naive.is_empty() {
                ready.push(next_seq, next_seq);
                naive.push(next_seq);
                next_seq += 1;
            } else if roll < 9 {
                let rank = ((state >> 40) as usize) % naive.len();
                let expected = naive.remove(rank);
                assert_eq!(ready.rank_of(expected), Some(rank));
                assert_eq!(ready.take(rank), Some((expected, expected)));
            } else {
                let rank = ((state >> 40) as usize) % naive.len();
                let victim = naive.remove(rank);
                assert_eq!(ready.remove(victim), Some(victim));
                assert_eq!(ready.remove(victim), None);
            }
            assert_eq!(ready.len(), naive.len());
        }
        let rest: Vec<u64> = ready.drain().into_iter().map(|(s, _)| s).collect();
        assert_eq!(rest, naive);
    }

    #[test]
    fn a_long_lived_entry_survives_compaction() {
        let mut ready = ReadySet::new();
        ready.push(0, "old");
        for seq in 1..10_000u64 {
            ready.push(seq, "churn");
            assert_eq!(ready.take(1).map(|(s, _)| s), Some(seq));
        }
        assert_eq!(ready.len(), 1);
        assert_eq!(ready.seq_at(0), Some(0));
        // Capacity stays bounded: compaction, not growth, handled the churn.
        assert!(ready.counts.capacity() <= 128);
    }
}
