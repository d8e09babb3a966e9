//! Scheduling strategies: how a *seeded* universe answers each decision.
//!
//! A strategy only decides which alternative to take; the tape records the answer as
//! a rank (0 = canonical). FIFO always answers 0; the random walk answers uniformly;
//! PCT (Burckhardt et al., "A randomized scheduler with probabilistic guarantees of
//! finding bugs") runs the ready callback whose *owner* (task) has the highest random
//! priority and lowers the running owner's priority at d−1 random change points
//! within a horizon of k decisions. Every random number comes from the universe's one
//! seeded generator.
//!
//! Strict priorities livelock a busy-wait: a callback that re-schedules itself until
//! another task has run (anyio's cancellation delivery does this on every
//! `connect_tcp`) outranks that task forever. So PCT also demotes an owner that wins
//! [`SPIN_DEMOTION`] decisions in a row while another owner is ready, as a
//! change point would.
//!
//! Half the PCT universes (a swarm: the universe's generator draws it) also start
//! tasks *eagerly*: an owner not yet run outranks every drawn priority until its first
//! step, as if its first step ran inside `create_task`; it then takes its drawn
//! priority. Strict priorities alone never interleave two read-await-write tasks
//! without a change point between the read and the write; with eager starts every
//! new task reads at once, and a lost update needs only the right priority order (the
//! zoo's `deep_ordering`, three such races, goes from 0 to about a quarter of the
//! eager universes).
//!
//! Owns: the answer to a decision. Must not: touch the tape or the ready set.

use crate::ready::ReadySet;
use rand_core::Rng;
use rand_pcg::Pcg64Mcg;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Uniform integer in `[0, bound)` by the multiply-shift method (no modulo bias worth
/// speaking of for bounds far below 2^64).
#[inline]
pub fn uniform(rng: &mut Pcg64Mcg, bound: u64) -> u64 {
    if bound <= 1 {
        return 0;
    }
    ((rng.next_u64() as u128 * bound as u128) >> 64) as u64
}

/// What a decision asks.
#[derive(Debug, Clone, Copy)]
pub enum Question {
    /// Which ready callback runs next; the bound is the ready set's size.
    Schedule,
    /// A labelled choice in `[0, bound)`; `percent` is the chance of a nonzero answer
    /// for yes/no choices (`sometimes`), `None` for uniform draws.
    Choice { percent: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StrategyKind {
    Fifo,
    Random,
    Pct {
        depth: u32,
        horizon: u64,
        eager: Eager,
    },
    /// Only what varies on a real loop is a decision (see `Engine::set_faithful`):
    /// the engine never asks it to order ready callbacks, and it answers the
    /// decisions it is asked (stalls, equal-deadline timer order, faults, user
    /// choices) as the random walk does.
    Faithful,
}

/// Whether a PCT universe starts tasks eagerly (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Eager {
    /// The universe's generator draws it: half the universes are eager.
    #[default]
    Drawn,
    /// Every universe starts tasks eagerly.
    Always,
    /// No universe does.
    Never,
}

/// Decisions in a row one owner may win while another owner waits before PCT takes it
/// for a spinner and demotes it. Far above the runs PCT exists to produce (a starved
/// task needs tens), far below the loop's livelock limit.
pub const SPIN_DEMOTION: u32 = 1_000;

/// The priority of an owner demoted for spinning: below every other.
const SPINNER_PRIORITY: u64 = 0;

/// The priority of an owner not yet run in an eager universe: above every drawn one.
const FRESH: u64 = u64::MAX - 1;

/// An owner's priority before it is first seen (never a real priority: those are
/// at most `depth + 1 + 2^62`).
const UNSEEN: u64 = u64::MAX;

#[derive(Debug, Clone)]
pub struct Pct {
    depth: u32,
    horizon: u64,
    change_points: Vec<u64>,
    next_change: usize,
    /// Priority of each owner, indexed by its label id (dense small integers).
    priorities: Vec<u64>,
    /// Whether owners start eagerly ([`FRESH`] until their first pick).
    eager: bool,
    /// Each owner's drawn priority, taken when an eager start ends.
    drawn: Vec<u64>,
    /// Ready entries as (priority, older first, owner): a max-heap with lazy
    /// deletion, cheaper per step than an ordered tree. An entry is current while
    /// its seq is still ready and its priority is still its owner's; a priority
    /// change pushes fresh entries for the owner's ready seqs, and stale entries
    /// are dropped when they reach the top (or when the heap is rebuilt).
    heap: BinaryHeap<(u64, Reverse<u64>, u32)>,
    /// Each owner's ready seqs (indexed by label id), for priority changes.
    ready_of_owner: Vec<Vec<u64>>,
    /// Ready entries in all.
    live: usize,
    /// The owner of the last decision and how many decisions in a row it has won.
    last_owner: Option<u32>,
    run_length: u32,
}

impl Pct {
    fn new(depth: u32, horizon: u64, eager: Eager, rng: &mut Pcg64Mcg) -> Pct {
        let horizon = horizon.max(1);
        let mut change_points: Vec<u64> =
            (1..depth.max(1)).map(|_| uniform(rng, horizon)).collect();
        change_points.sort_unstable();
        // The draw is made whatever `eager` says, so that a seed's priorities and
        // change points are the same under every setting.
        let drawn = rng.next_u64() >> 63 == 1;
        let eager = match eager {
            Eager::Drawn => drawn,
            Eager::Always => true,
            Eager::Never => false,
        };
        Pct {
            depth: depth.max(1),
            horizon,
            change_points,
            next_change: 0,
            priorities: Vec::new(),
            eager,
            drawn: Vec::new(),
            heap: BinaryHeap::new(),
            ready_of_owner: Vec::new(),
            live: 0,
            last_owner: None,
            run_length: 0,
        }
    }

    fn priority(&mut self, owner: u32, rng: &mut Pcg64Mcg) -> u64 {
        let slot = owner as usize;
        if slot >= self.priorities.len() {
            self.priorities.resize(slot + 1, UNSEEN);
            self.ready_of_owner.resize_with(slot + 1, Vec::new);
        }
        if self.priorities[slot] == UNSEEN {
            let drawn = self.depth as u64 + 1 + (rng.next_u64() >> 2);
            if self.eager {
                if slot >= self.drawn.len() {
                    self.drawn.resize(slot + 1, 0);
                }
                self.drawn[slot] = drawn;
                self.priorities[slot] = FRESH;
            } else {
                self.priorities[slot] = drawn;
            }
        }
        self.priorities[slot]
    }

    fn on_ready(&mut self, seq: u64, owner: u32, rng: &mut Pcg64Mcg) {
        let priority = self.priority(owner, rng);
        self.heap.push((priority, Reverse(seq), owner));
        self.ready_of_owner[owner as usize].push(seq);
        self.live += 1;
        if self.heap.len() > 2 * self.live + 64 {
            self.rebuild();
        }
    }

    fn on_unready(&mut self, seq: u64, owner: u32) {
        let Some(list) = self.ready_of_owner.get_mut(owner as usize) else {
            return;
        };
        if let Some(at) = list.iter().position(|&s| s == seq) {
            list.swap_remove(at);
            self.live -= 1;
        }
    }

    /// Drop the stale entries: one current entry per ready seq.
    fn rebuild(&mut self) {
        let mut entries = Vec::with_capacity(self.live);
        for (owner, seqs) in self.ready_of_owner.iter().enumerate() {
            let priority = self.priorities[owner];
            entries.extend(
                seqs.iter()
                    .map(|&seq| (priority, Reverse(seq), owner as u32)),
            );
        }
        self.heap = BinaryHeap::from(entries);
    }

    /// The rank of the oldest ready entry of the highest-priority owner.
    fn pick<E>(&mut self, ready: &ReadySet<E>) -> u64 {
        while let Some(&(priority, Reverse(seq), owner)) = self.heap.peek() {
            if self.priorities[owner as usize] == priority {
                if let Some(rank) = ready.rank_of(seq) {
                    return rank as u64;
                }
            }
            self.heap.pop();
        }
        0
    }

    /// After decision `index` chose an entry owned by `owner`: at a change point the
    /// owner drops below every initial priority; an owner that keeps winning while
    /// another waits drops below everything.
    fn after_pick(&mut self, index: u64, owner: u32) {
        self.started(owner);
        while self.next_change < self.change_points.len()
            && self.change_points[self.next_change] < index
        {
            self.next_change += 1;
        }
        if self.next_change < self.change_points.len()
            && self.change_points[self.next_change] == index
        {
            self.next_change += 1;
            let lowered = self.next_change as u64; // 1 ..= depth-1, all below depth+1
            self.set_priority(owner, lowered);
        }
        if self.last_owner == Some(owner) {
            self.run_length += 1;
        } else {
            self.last_owner = Some(owner);
            self.run_length = 1;
        }
        if self.run_length >= SPIN_DEMOTION && self.another_owner_is_ready(owner) {
            self.set_priority(owner, SPINNER_PRIORITY);
            self.run_length = 0;
        }
    }

    /// An owner's step ran (chosen by a decision or alone in the ready set): in an
    /// eager universe its eager start is over, and it takes its drawn priority.
    #[inline]
    fn started(&mut self, owner: u32) {
        let slot = owner as usize;
        if self.eager && self.priorities.get(slot) == Some(&FRESH) {
            let drawn = self.drawn[slot];
            self.set_priority(owner, drawn);
        }
    }

    fn another_owner_is_ready(&self, owner: u32) -> bool {
        let own = self.ready_of_owner.get(owner as usize).map_or(0, Vec::len);
        self.live > own
    }

    fn set_priority(&mut self, owner: u32, priority: u64) {
        let slot = owner as usize;
        if slot >= self.priorities.len() {
            self.priorities.resize(slot + 1, UNSEEN);
            self.ready_of_owner.resize_with(slot + 1, Vec::new);
        }
        self.priorities[slot] = priority;
        for &seq in &self.ready_of_owner[slot] {
            self.heap.push((priority, Reverse(seq), owner));
        }
    }

    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// Whether this universe starts tasks eagerly.
    pub fn eager(&self) -> bool {
        self.eager
    }
}

#[derive(Debug, Clone)]
pub enum Strategy {
    Fifo,
    Random,
    Pct(Box<Pct>),
}

impl Strategy {
    pub fn new(kind: &StrategyKind, rng: &mut Pcg64Mcg) -> Strategy {
        match *kind {
            StrategyKind::Fifo => Strategy::Fifo,
            StrategyKind::Random | StrategyKind::Faithful => Strategy::Random,
            StrategyKind::Pct {
                depth,
                horizon,
                eager,
            } => Strategy::Pct(Box::new(Pct::new(depth, horizon, eager, rng))),
        }
    }

    #[inline]
    pub fn on_ready(&mut self, seq: u64, owner: u32, rng: &mut Pcg64Mcg) {
        if let Strategy::Pct(pct) = self {
            pct.on_ready(seq, owner, rng);
        }
    }

    #[inline]
    pub fn on_unready(&mut self, seq: u64, owner: u32) {
        if let Strategy::Pct(pct) = self {
            pct.on_unready(seq, owner);
        }
    }

    pub fn answer<E>(
        &mut self,
        question: Question,
        bound: u64,
        ready: &ReadySet<E>,
        rng: &mut Pcg64Mcg,
    ) -> u64 {
        match (self, question) {
            (Strategy::Fifo, _) => 0,
            (Strategy::Pct(pct), Question::Schedule) => pct.pick(ready),
            (_, Question::Schedule) => uniform(rng, bound),
            (
                _,
                Question::Choice {
                    percent: Some(percent),
                },
            ) => {
                if uniform(rng, 100) < percent as u64 {
                    1 + uniform(rng, bound - 1)
                } else {
                    0
                }
            }
            (_, Question::Choice { percent: None }) => uniform(rng, bound),
        }
    }

    #[inline]
    pub fn after_schedule(&mut self, index: u64, owner: u32) {
        if let Strategy::Pct(pct) = self {
            pct.after_pick(index, owner);
        }
    }

    /// A step ran without a decision (it was the only ready callback).
    #[inline]
    pub fn after_lone_step(&mut self, owner: u32) {
        if let Strategy::Pct(pct) = self {
            pct.started(owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn pct_runs_the_highest_priority_owner_until_a_change_point() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut strategy = Strategy::new(
            &StrategyKind::Pct {
                depth: 1,
                horizon: 10,
                eager: Eager::Drawn,
            },
            &mut rng,
        );
        let mut ready = ReadySet::new();
        // Two owners, each with one ready entry; with depth 1 there are no change
        // points, so the same owner wins every time its entry is ready.
        for (seq, owner) in [(0u64, 7u32), (1, 9)] {
            ready.push(seq, owner);
            strategy.on_ready(seq, owner, &mut rng);
        }
        // The first two picks: in an eager universe each owner's first step runs
        // before any drawn priority counts.
        let mut owner = 0;
        let mut index = 0;
        let starts = if matches!(&strategy, Strategy::Pct(pct) if pct.eager()) {
            2
        } else {
            1
        };
        for _ in 0..starts {
            let first = strategy.answer(Question::Schedule, 2, &ready, &mut rng) as usize;
            let (seq, picked) = ready.take(first).unwrap();
            strategy.on_unready(seq, picked);
            strategy.after_schedule(index, picked);
            index += 1;
            owner = picked;
        }
        if starts == 2 {
            // Both have run once: the higher drawn priority wins from now on.
            for (seq, again) in [(5u64, 7u32), (6, 9)] {
                ready.push(seq, again);
                strategy.on_ready(seq, again, &mut rng);
            }
            let rank = strategy.answer(Question::Schedule, 2, &ready, &mut rng) as usize;
            let (seq, picked) = ready.take(rank).unwrap();
            strategy.on_unready(seq, picked);
            strategy.after_schedule(index, picked);
            index += 1;
            owner = picked;
        }
        for round in 0..20u64 {
            ready.push(10 + round, owner);
            strategy.on_ready(10 + round, owner, &mut rng);
            let rank = strategy.answer(Question::Schedule, 2, &ready, &mut rng) as usize;
            let (seq, again) = ready.take(rank).unwrap();
            strategy.on_unready(seq, again);
            strategy.after_schedule(index, again);
            index += 1;
            assert_eq!(again, owner, "the winning owner keeps running");
        }
    }

    #[test]
    fn pct_demotes_an_owner_that_spins_while_another_waits() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let mut strategy = Strategy::new(
            &StrategyKind::Pct {
                depth: 1,
                horizon: 10,
                eager: Eager::Drawn,
            },
            &mut rng,
        );
        let mut ready = ReadySet::new();
        for (seq, owner) in [(0u64, 7u32), (1, 9)] {
            ready.push(seq, owner);
            strategy.on_ready(seq, owner, &mut rng);
        }
        // Whoever wins re-schedules itself each time it runs (a busy-wait on the
        // other owner, whose entry stays ready throughout).
        let mut spinner = None;
        let mut wins = 0;
        for decision in 0..2 * SPIN_DEMOTION as u64 {
            let rank = strategy.answer(Question::Schedule, 2, &ready, &mut rng) as usize;
            let (seq, owner) = ready.take(rank).unwrap();
            strategy.on_unready(seq, owner);
            strategy.after_schedule(decision, owner);
            if spinner.is_some_and(|spinner| spinner != owner) {
                break;
            }
            spinner = Some(owner);
            wins += 1;
            ready.push(100 + decision, owner);
            strategy.on_ready(100 + decision, owner, &mut rng);
        }
        assert_eq!(
            wins, SPIN_DEMOTION,
            "the waiting owner runs after SPIN_DEMOTION wins"
        );
    }

    /// What PCT must pick, by definition: the oldest ready entry of the owner with
    /// the highest current priority.
    fn naive_pick(pct: &Pct, ready: &ReadySet<u32>) -> u64 {
        let best = ready
            .iter()
            .max_by_key(|&(seq, &owner)| (pct.priorities[owner as usize], Reverse(seq)));
        best.map_or(0, |(seq, _)| ready.rank_of(seq).unwrap() as u64)
    }

    #[test]
    fn pct_picks_the_oldest_entry_of_the_top_owner_under_churn_and_priority_changes() {
        let mut rng = Pcg64Mcg::seed_from_u64(11);
        let mut churn = Pcg64Mcg::seed_from_u64(12);
        let mut strategy = Strategy::new(
            &StrategyKind::Pct {
                depth: 6,
                horizon: 3_000,
                eager: Eager::Drawn,
            },
            &mut rng,
        );
        let mut ready = ReadySet::new();
        let mut next_seq = 0u64;
        let mut decision = 0u64;
        for _ in 0..20_000 {
            let roll = uniform(&mut churn, 10);
            if roll < 5 || ready.len() < 2 {
                // A new ready entry for one of 12 owners (a few spin: owner 3 often).
                let owner = if roll == 0 {
                    3
                } else {
                    uniform(&mut churn, 12) as u32
                };
                ready.push(next_seq, owner);
                strategy.on_ready(next_seq, owner, &mut rng);
                next_seq += 1;
            } else if roll < 9 {
                let Strategy::Pct(pct) = &mut strategy else {
                    unreachable!()
                };
                let expected = naive_pick(pct, &ready);
                let rank = pct.pick(&ready);
                assert_eq!(rank, expected, "decision {decision}");
                let (seq, owner) = ready.take(rank as usize).unwrap();
                strategy.on_unready(seq, owner);
                strategy.after_schedule(decision, owner);
                decision += 1;
            } else {
                // A cancelled entry leaves the ready set without being picked.
                let rank = uniform(&mut churn, ready.len() as u64) as usize;
                let (seq, owner) = ready.take(rank).unwrap();
                strategy.on_unready(seq, owner);
            }
        }
        let Strategy::Pct(pct) = &strategy else {
            unreachable!()
        };
        assert_eq!(
            pct.next_change,
            pct.change_points.len(),
            "every change point passed"
        );
        assert!(
            pct.heap.len() <= 2 * pct.live + 64,
            "stale entries are dropped"
        );
    }

    #[test]
    fn an_eager_universe_runs_a_new_owner_first_then_by_its_drawn_priority() {
        let kind = StrategyKind::Pct {
            depth: 1,
            horizon: 10,
            eager: Eager::Drawn,
        };
        let mut eager = 0;
        for seed in 0..64u64 {
            let mut rng = Pcg64Mcg::seed_from_u64(seed);
            let mut strategy = Strategy::new(&kind, &mut rng);
            let is_eager = matches!(&strategy, Strategy::Pct(pct) if pct.eager());
            eager += u32::from(is_eager);
            let mut ready = ReadySet::new();
            // Owner 1 has run once; owner 2 is new (its entry is younger).
            ready.push(0, 1u32);
            strategy.on_ready(0, 1, &mut rng);
            let rank = strategy.answer(Question::Schedule, 1, &ready, &mut rng) as usize;
            let (seq, owner) = ready.take(rank).unwrap();
            strategy.on_unready(seq, owner);
            strategy.after_schedule(0, owner);
            for (seq, owner) in [(1u64, 1u32), (2, 2)] {
                ready.push(seq, owner);
                strategy.on_ready(seq, owner, &mut rng);
            }
            let rank = strategy.answer(Question::Schedule, 2, &ready, &mut rng) as usize;
            let (_, picked) = ready.take(rank).unwrap();
            if is_eager {
                assert_eq!(picked, 2, "seed {seed}: the new owner starts first");
                let Strategy::Pct(pct) = &strategy else {
                    unreachable!()
                };
                assert!(pct.priorities[2] == FRESH);
                strategy.after_schedule(1, 2);
                let Strategy::Pct(pct) = &strategy else {
                    unreachable!()
                };
                assert_eq!(
                    pct.priorities[2], pct.drawn[2],
                    "then takes its drawn priority"
                );
            }
        }
        assert!(
            (16..=48).contains(&eager),
            "about half the universes are eager: {eager}/64"
        );
    }

    #[test]
    fn eager_always_and_never_fix_the_setting_and_keep_the_seeds_priorities() {
        for seed in 0..32u64 {
            let make = |eager: Eager| {
                let mut rng = Pcg64Mcg::seed_from_u64(seed);
                let kind = StrategyKind::Pct {
                    depth: 3,
                    horizon: 50,
                    eager,
                };
                let mut strategy = Strategy::new(&kind, &mut rng);
                for (seq, owner) in [(0u64, 1u32), (1, 2), (2, 3)] {
                    strategy.on_ready(seq, owner, &mut rng);
                }
                let Strategy::Pct(pct) = strategy else {
                    unreachable!()
                };
                pct
            };
            let (drawn, always, never) =
                (make(Eager::Drawn), make(Eager::Always), make(Eager::Never));
            assert!(always.eager(), "seed {seed}");
            assert!(!never.eager(), "seed {seed}");
            assert_eq!(always.change_points, never.change_points, "seed {seed}");
            assert_eq!(drawn.change_points, never.change_points, "seed {seed}");
            assert_eq!(
                always.drawn[1..=3],
                never.priorities[1..=3],
                "seed {seed}: the same drawn priorities"
            );
            assert!(always.priorities[1..=3].iter().all(|&p| p == FRESH));
        }
    }

    #[test]
    fn an_eager_start_ends_on_a_lone_step() {
        let mut rng = Pcg64Mcg::seed_from_u64(3);
        let kind = StrategyKind::Pct {
            depth: 1,
            horizon: 10,
            eager: Eager::Always,
        };
        let mut strategy = Strategy::new(&kind, &mut rng);
        strategy.on_ready(0, 1, &mut rng);
        strategy.on_unready(0, 1);
        // Owner 1's first step ran alone: no decision, yet its eager start is over.
        strategy.after_lone_step(1);
        let Strategy::Pct(pct) = &strategy else {
            unreachable!()
        };
        assert_eq!(pct.priorities[1], pct.drawn[1]);
        assert_ne!(pct.priorities[1], FRESH);
    }

    #[test]
    fn uniform_stays_in_bounds() {
        let mut rng = Pcg64Mcg::seed_from_u64(1);
        for bound in [1u64, 2, 3, 1000] {
            for _ in 0..1000 {
                assert!(uniform(&mut rng, bound) < bound);
            }
        }
    }
}
