//! Is a history linearizable? Wing and Gong's search, with Lowe's memoisation.
//!
//! The history becomes a list of call and return entries in time order (a call
//! before a return at the same instant, so operations that touch in time count as
//! concurrent: the permissive reading). The search walks the list: at a call it
//! tries to place the operation next (the model accepts it from the current state,
//! and the pair (placed set, new state) was not explored before), removes its call
//! and return from the list and starts again from the front; at a return whose
//! operation is not placed yet it backtracks. It succeeds when every completed
//! operation is placed (an `Info` operation may be placed or left out); it fails
//! when it must backtrack with nothing to undo.
//!
//! A map of independent objects is checked key by key (P-compositionality: a
//! history is linearizable iff each object's sub-history is). A failure is shrunk
//! to a sub-history that is still not linearizable and from which no single
//! operation can be removed (ddmin, bounded), and names the operation that could
//! not be placed at the furthest point the search reached.

use super::history::{Operation, Outcome, Value};
use super::models::{Model, ModelError};
use super::FxHasher;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// A failure's evidence, in indices of the history passed in.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterexample {
    /// The key (object) whose sub-history is not linearizable (`Nil` for one object).
    pub key: Value,
    /// A small sub-history that is not linearizable: indices, in time order.
    pub operations: Vec<usize>,
    /// The operation that could not be placed where the search got furthest.
    pub unplaceable: usize,
    /// The operations concurrent with it (overlapping it in time), within `operations`.
    pub concurrent: Vec<usize>,
    /// Whether the shrink finished (false: it ran out of its check budget).
    pub minimal: bool,
}

/// The answer of [`check`].
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Linearizable,
    NotLinearizable(Counterexample),
}

/// How much work the search and the shrink may do.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Search steps (placements tried) per sub-history checked; exceeded: an error.
    pub max_steps: u64,
    /// Sub-histories the shrink may check.
    pub shrink_checks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_steps: 50_000_000,
            shrink_checks: 2_000,
        }
    }
}

/// Why a check could not answer.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckError {
    Model(ModelError),
    /// The search took more than `Limits::max_steps` on one sub-history.
    TooHard {
        key: Value,
        operations: usize,
        steps: u64,
    },
}

impl From<ModelError> for CheckError {
    fn from(error: ModelError) -> Self {
        CheckError::Model(error)
    }
}

/// Check `history` against `model`; `by_key`: operations on different keys are
/// independent objects, checked apart.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation],
    by_key: bool,
    limits: Limits,
) -> Result<Verdict, CheckError> {
    for (key, indices) in partitions(history, by_key) {
        let ops: Vec<&Operation> = indices.iter().map(|&i| &history[i]).collect();
        let mut search = Search::new(model, &ops);
        match search.run(limits.max_steps)? {
            Outcome::Ok => continue,
            _ => {
                let furthest = search.furthest_blocked.map(|local| indices[local]);
                let example = shrink(model, history, &indices, furthest, limits)?;
                return Ok(Verdict::NotLinearizable(Counterexample { key, ..example }));
            }
        }
    }
    Ok(Verdict::Linearizable)
}

/// Indices of the operations the search considers (failed ones are left out), per key.
fn partitions(history: &[Operation], by_key: bool) -> BTreeMap<Value, Vec<usize>> {
    let mut parts: BTreeMap<Value, Vec<usize>> = BTreeMap::new();
    for (i, op) in history.iter().enumerate() {
        if op.outcome == Outcome::Fail {
            continue;
        }
        // A read whose result is unknown constrains nothing: leave it out.
        if op.outcome == Outcome::Info && op.result.is_none() && is_pure_read(op) {
            continue;
        }
        let key = if by_key { op.key.clone() } else { Value::Nil };
        parts.entry(key).or_default().push(i);
    }
    parts
}

fn is_pure_read(op: &Operation) -> bool {
    use super::history::Function;
    matches!(op.function, Function::Read | Function::Contains)
}

/// Is the sub-history `indices` of `history` linearizable?
fn linearizable<M: Model>(
    model: &M,
    history: &[Operation],
    indices: &[usize],
    limits: Limits,
) -> Result<(bool, Option<usize>), CheckError> {
    let ops: Vec<&Operation> = indices.iter().map(|&i| &history[i]).collect();
    let mut search = Search::new(model, &ops);
    let ok = search.run(limits.max_steps)? == Outcome::Ok;
    Ok((ok, search.furthest_blocked.map(|local| indices[local])))
}

/// Shrink the failing sub-history `indices` (ddmin over operations, keeping it
/// non-linearizable), then name the operation that cannot be placed in it.
fn shrink<M: Model>(
    model: &M,
    history: &[Operation],
    indices: &[usize],
    furthest: Option<usize>,
    limits: Limits,
) -> Result<Counterexample, CheckError> {
    let mut current: Vec<usize> = indices.to_vec();
    let mut checks = 0usize;
    // Everything invoked after the blocked operation completed cannot matter to it:
    // cut it first (one check confirms).
    if let Some(blocked) = furthest.and_then(|b| history[b].completed) {
        let prefix: Vec<usize> = current
            .iter()
            .copied()
            .filter(|&i| history[i].invoked <= blocked)
            .collect();
        if prefix.len() < current.len() {
            checks += 1;
            if !linearizable(model, history, &prefix, limits)?.0 {
                current = prefix;
            }
        }
    }
    // Delete operations (ddmin) while the rest stays non-linearizable. Deleting an
    // operation deletes what observed it too (a read of the value a deleted write
    // wrote): the example keeps the reason of the violation, never "a read of a
    // value nobody wrote" made up by the shrink.
    let supports = model.supports(history, &current);
    let mut dependents: HashMap<usize, Vec<usize>> = HashMap::new();
    for (&op, sources) in &supports {
        for &source in sources {
            dependents.entry(source).or_default().push(op);
        }
    }
    let minimal = ddmin(
        model,
        history,
        &mut current,
        &dependents,
        limits,
        &mut checks,
    )?;
    let (_, blocked) = linearizable(model, history, &current, limits)?;
    let unplaceable = blocked.unwrap_or(*current.last().unwrap_or(&0));
    let me = &history[unplaceable];
    let concurrent = current
        .iter()
        .copied()
        .filter(|&i| i != unplaceable && overlaps(me, &history[i]))
        .collect();
    Ok(Counterexample {
        key: Value::Nil,
        operations: current,
        unplaceable,
        concurrent,
        minimal,
    })
}

/// Remove chunks of `current` (halving their size, ddmin) while it stays
/// non-linearizable; removing an operation removes its `dependents` (and
/// theirs). Returns whether it finished within the check budget.
fn ddmin<M: Model>(
    model: &M,
    history: &[Operation],
    current: &mut Vec<usize>,
    dependents: &HashMap<usize, Vec<usize>>,
    limits: Limits,
    checks: &mut usize,
) -> Result<bool, CheckError> {
    let mut chunk = current.len().div_ceil(2).max(1);
    loop {
        let mut removed_any = false;
        let mut start = 0;
        while start < current.len() {
            if *checks >= limits.shrink_checks {
                return Ok(false);
            }
            let end = (start + chunk).min(current.len());
            let mut removed: HashSet<usize> = current[start..end].iter().copied().collect();
            let mut queue: Vec<usize> = current[start..end].to_vec();
            while let Some(op) = queue.pop() {
                for &dependent in dependents.get(&op).map_or(&[][..], Vec::as_slice) {
                    if removed.insert(dependent) {
                        queue.push(dependent);
                    }
                }
            }
            let candidate: Vec<usize> = current
                .iter()
                .copied()
                .filter(|i| !removed.contains(i))
                .collect();
            *checks += 1;
            if !candidate.is_empty() && !linearizable(model, history, &candidate, limits)?.0 {
                // Go on from the same position (removed dependents before it shift
                // it; the next pass catches what that skips).
                start = start.min(candidate.len());
                *current = candidate;
                removed_any = true;
            } else {
                start = end;
            }
        }
        if chunk == 1 && !removed_any {
            return Ok(true);
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
        chunk = chunk.min(current.len().max(1));
    }
}

fn overlaps(a: &Operation, b: &Operation) -> bool {
    let a_end = a.completed.unwrap_or(u64::MAX);
    let b_end = b.completed.unwrap_or(u64::MAX);
    a.invoked <= b_end && b.invoked <= a_end
}

/// A set of placed operations, with its Zobrist hash kept up to date, and the
/// bounds of its "window": the words before `low` are all ones (operations
/// placed early in the search stay placed), the words after `high` all zeros.
/// The memo stores only the window, a few words for a long history.
#[derive(Clone, Debug)]
struct Placed {
    words: Vec<u64>,
    hash: u64,
    low: usize,
    high: usize,
}

impl Placed {
    fn new(n: usize) -> Self {
        Placed {
            words: vec![0; n.div_ceil(64)],
            hash: 0,
            low: 0,
            high: 0,
        }
    }

    fn toggle(&mut self, i: usize, zobrist: u64) {
        let word = i / 64;
        self.words[word] ^= 1 << (i % 64);
        self.hash ^= zobrist;
        if word < self.low {
            self.low = word;
        }
        while self.low < self.words.len() && self.words[self.low] == u64::MAX {
            self.low += 1;
        }
        if word > self.high {
            self.high = word;
        }
        while self.high > 0 && self.words[self.high] == 0 {
            self.high -= 1;
        }
    }

    /// The words from `low` to the last nonzero one (empty when none is).
    fn window(&self) -> &[u64] {
        if self.low >= self.words.len() || self.low > self.high || self.words[self.high] == 0 {
            return &[];
        }
        &self.words[self.low..=self.high]
    }
}

/// The (placed set, state) pairs explored: each set's window in one flat arena,
/// found by the hash of the set (Zobrist) and the state, compared in full on a
/// hash match, so that a lookup allocates nothing.
struct Memo<S> {
    windows: Vec<u64>,
    /// Per entry: (low, start in `windows`, length).
    spans: Vec<(u32, u32, u32)>,
    states: Vec<S>,
    /// Hash → the latest entry with it; `chain[i]`: the entry before `i` with the
    /// same hash (`u32::MAX`: none).
    by_hash: HashMap<u64, u32, BuildHasherDefault<Premixed>>,
    chain: Vec<u32>,
}

/// The memo's keys are already mixed (Zobrist): hash them as they are.
#[derive(Default)]
struct Premixed(u64);

impl Hasher for Premixed {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl<S: Eq + Hash> Memo<S> {
    fn new() -> Self {
        Memo {
            windows: Vec::new(),
            spans: Vec::new(),
            states: Vec::new(),
            by_hash: HashMap::default(),
            chain: Vec::new(),
        }
    }

    fn key(placed: &Placed, state: &S) -> u64 {
        let mut hasher = FxHasher::default();
        state.hash(&mut hasher);
        placed.hash ^ hasher.finish()
    }

    fn same(&self, i: usize, placed: &Placed, window: &[u64], state: &S) -> bool {
        let (low, start, len) = self.spans[i];
        let stored = &self.windows[start as usize..(start + len) as usize];
        (window.is_empty() || low as usize == placed.low)
            && stored == window
            && self.states[i] == *state
    }

    /// Remember (placed, state); false if it was already there.
    fn insert(&mut self, placed: &Placed, state: S) -> bool {
        let key = Self::key(placed, &state);
        let window = placed.window();
        let head = self.by_hash.get(&key).copied().unwrap_or(u32::MAX);
        let mut at = head;
        while at != u32::MAX {
            if self.same(at as usize, placed, window, &state) {
                return false;
            }
            at = self.chain[at as usize];
        }
        self.by_hash.insert(key, self.states.len() as u32);
        self.chain.push(head);
        self.spans.push((
            placed.low as u32,
            self.windows.len() as u32,
            window.len() as u32,
        ));
        self.windows.extend_from_slice(window);
        self.states.push(state);
        true
    }
}

const NONE: usize = usize::MAX;

/// One entry of the doubly linked call/return list.
#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    /// For a call: its return entry (`NONE` for an operation that never returned).
    partner: usize,
    prev: usize,
    next: usize,
}

struct Search<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation],
    entries: Vec<Entry>,
    zobrist: Vec<u64>,
    /// The operation blocked at the return the search reached with the most
    /// operations placed (the one that "cannot be placed").
    furthest_blocked: Option<usize>,
}

impl<'a, M: Model> Search<'a, M> {
    fn new(model: &'a M, ops: &'a [&'a Operation]) -> Self {
        // Entry 0 is the head sentinel; then calls and returns in time order.
        let mut events: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate() {
            events.push((op.invoked, true, i));
            if op.determinate() {
                if let Some(done) = op.completed {
                    events.push((done, false, i));
                }
            }
        }
        // Calls sort before returns at the same instant (`false` < `true` reversed).
        events.sort_by_key(|&(time, is_call, i)| (time, !is_call, i));
        let mut entries = Vec::with_capacity(events.len() + 1);
        entries.push(Entry {
            op: NONE,
            is_call: false,
            partner: NONE,
            prev: NONE,
            next: NONE,
        });
        let mut call_entry = vec![NONE; ops.len()];
        for &(_, is_call, op) in &events {
            let index = entries.len();
            if is_call {
                call_entry[op] = index;
            } else {
                entries[call_entry[op]].partner = index;
            }
            entries.push(Entry {
                op,
                is_call,
                partner: NONE,
                prev: index - 1,
                next: NONE,
            });
            entries[index - 1].next = index;
        }
        // Deterministic pseudo-random Zobrist keys (splitmix64).
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let zobrist = (0..ops.len())
            .map(|_| {
                seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = seed;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            })
            .collect();
        Search {
            model,
            ops,
            entries,
            zobrist,
            furthest_blocked: None,
        }
    }

    fn unlink(&mut self, at: usize) {
        let Entry { prev, next, .. } = self.entries[at];
        self.entries[prev].next = next;
        if next != NONE {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, at: usize) {
        let Entry { prev, next, .. } = self.entries[at];
        self.entries[prev].next = at;
        if next != NONE {
            self.entries[next].prev = at;
        }
    }

    /// Lift an operation's call and return out of the list (return first, so
    /// relinking in the opposite order restores it).
    fn lift(&mut self, call: usize) {
        let partner = self.entries[call].partner;
        if partner != NONE {
            self.unlink(partner);
        }
        self.unlink(call);
    }

    fn unlift(&mut self, call: usize) {
        self.relink(call);
        let partner = self.entries[call].partner;
        if partner != NONE {
            self.relink(partner);
        }
    }

    /// `Outcome::Ok`: linearizable; `Outcome::Fail`: not.
    fn run(&mut self, max_steps: u64) -> Result<Outcome, CheckError> {
        let needed = self.ops.iter().filter(|op| op.determinate()).count();
        let mut placed_needed = 0usize;
        let mut placed = Placed::new(self.ops.len());
        let mut seen: Memo<M::State> = Memo::new();
        let mut stack: Vec<(usize, M::State)> = Vec::new();
        let mut state = self.model.init()?;
        let mut best = 0usize;
        let mut steps = 0u64;
        let mut entry = self.entries[0].next;
        loop {
            if placed_needed == needed {
                return Ok(Outcome::Ok);
            }
            if entry == NONE {
                // Past the last entry with no return in the way: only operations
                // that may never have happened are left.
                return Ok(Outcome::Ok);
            }
            let here = self.entries[entry];
            if here.is_call {
                steps += 1;
                if steps > max_steps {
                    return Err(CheckError::TooHard {
                        key: Value::Nil,
                        operations: self.ops.len(),
                        steps,
                    });
                }
                let op = self.ops[here.op];
                if let Some(next) = self.model.step(&state, op)? {
                    placed.toggle(here.op, self.zobrist[here.op]);
                    if seen.insert(&placed, next.clone()) {
                        stack.push((entry, std::mem::replace(&mut state, next)));
                        if op.determinate() {
                            placed_needed += 1;
                        }
                        self.lift(entry);
                        entry = self.entries[0].next;
                        continue;
                    }
                    placed.toggle(here.op, self.zobrist[here.op]);
                }
                entry = here.next;
            } else {
                // The return of an operation not placed yet: what is placed so far
                // cannot be extended past it.
                if placed_needed >= best {
                    best = placed_needed;
                    self.furthest_blocked = Some(here.op);
                }
                let Some((call, previous)) = stack.pop() else {
                    return Ok(Outcome::Fail);
                };
                let op = self.entries[call].op;
                placed.toggle(op, self.zobrist[op]);
                if self.ops[op].determinate() {
                    placed_needed -= 1;
                }
                state = previous;
                self.unlift(call);
                entry = self.entries[call].next;
            }
        }
    }
}
