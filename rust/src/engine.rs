//! The engine: one universe's ready set, timers, virtual clock, choice source, tape
//! and event log, stepping callbacks in the order the source decides.
//!
//! The engine is generic over the payload it schedules, so it has no idea what a
//! callback is; the Python layer (`py/`) stores its handles here and runs them.
//!
//! Decision points exist only where there is a real alternative: two or more ready
//! callbacks (a timer that fell due counts as a ready callback), or a labelled choice
//! with a bound of two or more.

use crate::choices::Choices;
use crate::eventlog::EventLog;
use crate::ready::ReadySet;
use crate::strategy::{Question, Strategy, StrategyKind};
use crate::tape::{Position, Tape, MAX_GAP};
use crate::timers::{SeqMap, TimerHeap};
use rand_core::SeedableRng;
use rand_pcg::Pcg64Mcg;
use std::collections::BTreeMap;

/// The deadline of a timer that never fires (`asyncio.sleep(math.inf)`).
pub const NEVER: u64 = u64::MAX;
/// Faithful mode: the chance (percent, under seeded strategies) that a stock-loop
/// iteration ran long enough for the next timer to fall due.
pub const STALL_PERCENT: u32 = 2;
/// Faithful mode's default longest stall: one virtual second (a loaded CI machine,
/// a long garbage collection).
pub const DEFAULT_MAX_STALL_NS: u64 = 1_000_000_000;

/// Steps and virtual time the teardown after a spent budget may still use, so the
/// universe's leftovers can be cancelled and unwound, yet a program that ignores
/// cancellation cannot run on for another whole budget.
pub const TEARDOWN_STEPS: u64 = 100_000;
pub const TEARDOWN_TIME_NS: u64 = 3_600 * 1_000_000_000;

/// How much one run of a universe may do: steps taken and virtual time elapsed
/// since the run began (`None`: unbounded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Budgets {
    pub max_steps: Option<u64>,
    pub max_time_ns: Option<u64>,
}

/// Which budget ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetKind {
    Steps,
    Time,
}

/// Where the universe is with its budgets. A run gets the full budgets; once they
/// are spent (or teardown begins) the rest of the universe shares one small
/// teardown allowance; once that is spent too, every step is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetPhase {
    Run,
    Teardown,
    Spent(BudgetKind),
}

/// What one owner (a task, or the loop) did, for the budget reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    pub steps: u64,
    /// The step count and virtual time when it last ran.
    pub last_step: u64,
    pub last_ns: u64,
}

/// Raised out of an external draw (a Python exception is stashed by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceAbort;

/// Draws of the sparse encoding, answered by someone else (Hypothesis).
pub trait ExternalDraws: Send + Sync {
    /// Is there another deviation?
    fn more(&mut self) -> Result<bool, SourceAbort>;
    /// Decisions to skip before it (0 = the very next decision).
    fn gap(&mut self) -> Result<u64, SourceAbort>;
    /// Its value, in `1 ..= bound-1`, for the decision labelled `label`.
    fn value(&mut self, label: &str, bound: u64) -> Result<u64, SourceAbort>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineError {
    /// The external source raised; the caller holds the reason.
    Aborted,
    /// Strict replay: the tape's value does not fit this decision.
    Misaligned {
        index: u64,
        label: String,
        bound: u64,
        value: u64,
    },
    /// Strict replay: the universe ended before the tape's deviations were used.
    UnusedDeviations { first_index: u64, count: usize },
}

pub enum Source {
    Seeded {
        strategy: Strategy,
        rng: Box<Pcg64Mcg>,
    },
    Replay {
        tape: Tape,
        /// Before the next unused deviation.
        cursor: Position,
        strict: bool,
    },
    External {
        draws: Box<dyn ExternalDraws>,
        next_deviation: Option<u64>,
    },
}

impl Source {
    pub fn seeded(seed: u64, kind: &StrategyKind) -> Source {
        let mut rng = Pcg64Mcg::seed_from_u64(seed);
        let strategy = Strategy::new(kind, &mut rng);
        Source::Seeded {
            strategy,
            rng: Box::new(rng),
        }
    }

    pub fn replay(tape: Tape, strict: bool) -> Source {
        Source::Replay {
            cursor: tape.start(),
            tape,
            strict,
        }
    }

    pub fn external(draws: Box<dyn ExternalDraws>) -> Source {
        Source::External {
            draws,
            next_deviation: None,
        }
    }
}

/// A scheduled callback as the engine sees it.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    pub payload: T,
    /// Event-log label of the callback (task name or function name).
    pub label: u32,
    /// Who the callback acts for (its task), for PCT priorities.
    pub owner: u32,
    /// The handle id it was scheduled under (differs from its ready seq for timers).
    pub handle: u64,
    pub from_timer: bool,
}

pub enum Next<T> {
    /// Run this callback.
    Run(Entry<T>),
    /// Nothing is ready and no timer is pending.
    Idle,
    /// Too many steps without the virtual clock moving.
    Livelock { steps: u64 },
    /// A budget ran out: `Steps` before taking a step, `Time` before moving the
    /// clock past the limit. What was scheduled stays scheduled.
    Budget(BudgetKind),
}

pub struct Engine<T> {
    now_ns: u64,
    next_seq: u64,
    ready: ReadySet<Entry<T>>,
    timers: TimerHeap<Entry<T>>,
    moved_timers: SeqMap<u64>,
    timers_in_ready: usize,
    source: Source,
    tape: Tape,
    decisions: u64,
    steps: u64,
    steps_since_clock_moved: u64,
    livelock_steps: u64,
    /// How often a busy stretch of `livelock_steps` steps moved the clock to the
    /// next timer.
    busy_advances: u64,
    budgets: Budgets,
    phase: BudgetPhase,
    /// Steps and virtual time at which the current allowance ends.
    step_limit: u64,
    time_limit_ns: u64,
    /// Steps and virtual time when the current run began.
    run_start: (u64, u64),
    /// Per owner label: how often and when it last ran.
    activity: Vec<Activity>,
    misaligned: bool,
    /// Teardown: run the canonical order without making decisions.
    quiet: bool,
    log: EventLog,
    sched_label: u32,
    timer_label: u32,
    stall_label: u32,
    tie_label: u32,
    /// Faithful mode's longest stall (virtual ns), `None` for the aggressive model.
    faithful: Option<u64>,
    stalls: u64,
    coverage: BTreeMap<String, u64>,
    /// The stock loop runs callbacks in iterations ("batches"): every callback
    /// ready when an iteration starts, then the next iteration. The current batch
    /// holds the ready entries with a seq below `batch_end`; `batch` counts them.
    /// `loop.stop()` ends the run when the current batch is done, as on the stock loop.
    batch: u64,
    batch_end: u64,
    /// The rank (in the ready set, oldest first) of the entry the last step took:
    /// how many older ready callbacks it ran ahead of.
    last_rank: u64,
}

impl<T> Engine<T> {
    pub fn new(source: Source, livelock_steps: u64) -> Result<Engine<T>, EngineError> {
        let mut log = EventLog::new();
        let sched_label = log.label("sched.pick");
        let timer_label = log.label("timer.order");
        let mut engine = Engine {
            now_ns: 0,
            next_seq: 0,
            ready: ReadySet::new(),
            timers: TimerHeap::new(),
            moved_timers: SeqMap::default(),
            timers_in_ready: 0,
            source,
            tape: Tape::new(),
            decisions: 0,
            steps: 0,
            steps_since_clock_moved: 0,
            livelock_steps,
            busy_advances: 0,
            budgets: Budgets::default(),
            phase: BudgetPhase::Run,
            step_limit: u64::MAX,
            time_limit_ns: NEVER,
            run_start: (0, 0),
            activity: Vec::new(),
            misaligned: false,
            quiet: false,
            log,
            sched_label,
            timer_label,
            // Named by `set_faithful`: other universes' logs do not carry them.
            stall_label: 0,
            tie_label: 0,
            faithful: None,
            stalls: 0,
            coverage: BTreeMap::new(),
            batch: 0,
            batch_end: 0,
            last_rank: 0,
        };
        // The sparse encoding always starts with one `more?` draw, so a FIFO universe
        // is exactly the draw sequence [0] whether or not it makes decisions.
        if let Source::External {
            draws,
            next_deviation,
        } = &mut engine.source
        {
            *next_deviation = next_from(draws.as_mut(), 0)?;
        }
        Ok(engine)
    }

    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }

    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// A seeded PCT universe: whether it starts tasks eagerly (`None` otherwise).
    pub fn pct_eager(&self) -> Option<bool> {
        match &self.source {
            Source::Seeded {
                strategy: Strategy::Pct(pct),
                ..
            } => Some(pct.eager()),
            _ => None,
        }
    }

    pub fn decisions(&self) -> u64 {
        self.decisions
    }

    /// How many older ready callbacks the last step's callback ran ahead of.
    pub fn last_rank(&self) -> u64 {
        self.last_rank
    }

    pub fn tape(&self) -> &Tape {
        &self.tape
    }

    pub fn misaligned(&self) -> bool {
        self.misaligned
    }

    pub fn log(&self) -> &EventLog {
        &self.log
    }

    pub fn log_mut(&mut self) -> &mut EventLog {
        &mut self.log
    }

    pub fn coverage(&self) -> &BTreeMap<String, u64> {
        &self.coverage
    }

    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    pub fn timers_len(&self) -> usize {
        self.timers.len()
    }

    /// In quiet mode (teardown) every decision takes the canonical choice and is
    /// neither a decision point nor recorded on the tape. Teardown runs on the
    /// teardown allowance, not on a fresh budget.
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
        if quiet && self.phase == BudgetPhase::Run {
            self.enter_teardown();
        }
    }

    /// Move the virtual clock forward by `delta_ns` by hand (CPython's `TestLoop`
    /// protocol: a test's time generator drives the clock); timers that fall due
    /// join the ready set at the next step.
    pub fn advance_clock(&mut self, delta_ns: u64) {
        if delta_ns == 0 {
            return;
        }
        self.log.clock(delta_ns);
        self.now_ns = self.now_ns.saturating_add(delta_ns);
        self.steps_since_clock_moved = 0;
    }

    /// A run (`run_forever`) begins: forget the steps taken since the clock last
    /// moved (so teardown can cancel a spinner after a livelock), and give the run
    /// the full budgets unless they were spent (then teardown's allowance goes on).
    pub fn begin_run(&mut self) {
        self.steps_since_clock_moved = 0;
        self.run_start = (self.steps, self.now_ns);
        if self.phase == BudgetPhase::Run {
            self.step_limit = self
                .budgets
                .max_steps
                .map_or(u64::MAX, |max| self.steps.saturating_add(max));
            self.time_limit_ns = self
                .budgets
                .max_time_ns
                .map_or(NEVER, |max| self.now_ns.saturating_add(max));
        }
    }

    pub fn set_budgets(&mut self, budgets: Budgets) {
        self.budgets = budgets;
        if self.phase == BudgetPhase::Run {
            let (steps, now) = self.run_start;
            self.step_limit = budgets
                .max_steps
                .map_or(u64::MAX, |max| steps.saturating_add(max));
            self.time_limit_ns = budgets
                .max_time_ns
                .map_or(NEVER, |max| now.saturating_add(max));
        }
    }

    pub fn budgets(&self) -> Budgets {
        self.budgets
    }

    pub fn budget_phase(&self) -> BudgetPhase {
        self.phase
    }

    /// Steps and virtual time when the current run began.
    pub fn run_start(&self) -> (u64, u64) {
        self.run_start
    }

    /// Steps and virtual time at which the current allowance ends.
    pub fn limits(&self) -> (u64, u64) {
        (self.step_limit, self.time_limit_ns)
    }

    /// What each owner label did (indexed by label id; unused labels are zero).
    pub fn activity(&self) -> &[Activity] {
        &self.activity
    }

    fn enter_teardown(&mut self) {
        self.phase = BudgetPhase::Teardown;
        self.step_limit = self.steps.saturating_add(TEARDOWN_STEPS);
        self.time_limit_ns = self.now_ns.saturating_add(TEARDOWN_TIME_NS);
    }

    /// A budget ran out: the run's budget gives way to the teardown allowance, the
    /// teardown allowance to refusing every further step.
    fn exhaust(&mut self, kind: BudgetKind) -> Next<T> {
        match self.phase {
            BudgetPhase::Run => self.enter_teardown(),
            BudgetPhase::Teardown | BudgetPhase::Spent(_) => self.phase = BudgetPhase::Spent(kind),
        }
        Next::Budget(kind)
    }

    /// How often a busy stretch moved the clock to the next timer (see `next_step`).
    pub fn busy_advances(&self) -> u64 {
        self.busy_advances
    }

    pub fn set_livelock_steps(&mut self, steps: u64) {
        self.livelock_steps = steps;
    }

    /// The id the next scheduled handle will get.
    #[inline]
    pub fn peek_id(&self) -> u64 {
        self.next_seq
    }

    /// A fresh handle id. Ids increase, so they double as ready-set arrival order.
    #[inline]
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_seq;
        self.next_seq += 1;
        id
    }

    /// Make `payload` ready now; returns its handle id.
    #[inline]
    pub fn schedule_ready(&mut self, payload: T, label: u32, owner: u32) -> u64 {
        let id = self.next_id();
        self.push_ready(
            id,
            Entry {
                payload,
                label,
                owner,
                handle: id,
                from_timer: false,
            },
        );
        id
    }

    /// Run `payload` once the clock reaches `deadline_ns`; returns its handle id.
    pub fn schedule_timer(&mut self, deadline_ns: u64, payload: T, label: u32, owner: u32) -> u64 {
        let id = self.next_id();
        self.timers.push(
            deadline_ns.max(self.now_ns),
            id,
            Entry {
                payload,
                label,
                owner,
                handle: id,
                from_timer: true,
            },
        );
        id
    }

    /// Cancel a handle wherever it is. Returns its payload if it was still pending.
    pub fn cancel(&mut self, handle: u64) -> Option<T> {
        if let Some(entry) = self.timers.cancel(handle) {
            return Some(entry.payload);
        }
        let seq = self.moved_timers.remove(&handle).unwrap_or(handle);
        let entry = self.ready.remove(seq)?;
        self.unready(seq, &entry);
        Some(entry.payload)
    }

    /// Is this handle still waiting (ready or timer)?
    pub fn is_pending(&self, handle: u64) -> bool {
        if self.timers.contains(handle) {
            return true;
        }
        let seq = self.moved_timers.get(&handle).copied().unwrap_or(handle);
        self.ready.get(seq).is_some_and(|e| e.handle == handle)
    }

    #[inline]
    fn push_ready(&mut self, seq: u64, entry: Entry<T>) {
        if let Source::Seeded { strategy, rng } = &mut self.source {
            strategy.on_ready(seq, entry.owner, rng);
        }
        if entry.from_timer {
            self.timers_in_ready += 1;
            self.moved_timers.insert(entry.handle, seq);
        }
        self.ready.push(seq, entry);
    }

    #[inline]
    fn unready(&mut self, seq: u64, entry: &Entry<T>) {
        if let Source::Seeded { strategy, .. } = &mut self.source {
            strategy.on_unready(seq, entry.owner);
        }
        if entry.from_timer {
            self.timers_in_ready -= 1;
            self.moved_timers.remove(&entry.handle);
        }
    }

    fn move_due_timers(&mut self) -> Result<(), EngineError> {
        if self.faithful.is_some() && !self.quiet {
            return self.move_due_timers_faithfully();
        }
        while let Some((_, _, entry)) = self.timers.pop_due(self.now_ns) {
            let seq = self.next_id();
            self.push_ready(seq, entry);
        }
        Ok(())
    }

    /// Faithful mode: timers due at exactly the same instant join the ready set in
    /// an order the tape chooses (asyncio leaves it undefined: "if two callbacks are
    /// scheduled for exactly the same time, the order in which they are called is
    /// undefined"); canonical is scheduling order. Timers due at different instants
    /// keep deadline order, as on every real loop.
    fn move_due_timers_faithfully(&mut self) -> Result<(), EngineError> {
        let mut group: Vec<Entry<T>> = Vec::new();
        let mut group_deadline = 0;
        loop {
            let next = self.timers.pop_due(self.now_ns);
            let same = matches!(&next, Some((deadline, _, _)) if *deadline == group_deadline);
            if !same && !group.is_empty() {
                while group.len() > 1 {
                    let decided = self.decide(
                        Question::Choice { percent: None },
                        self.tie_label,
                        group.len() as u64,
                    );
                    let rank = match decided {
                        Ok(rank) => rank,
                        Err(error) => {
                            // The source failed (the universe ends): keep the timers
                            // pending for teardown, in scheduling order.
                            for entry in group.drain(..) {
                                let seq = self.next_id();
                                self.push_ready(seq, entry);
                            }
                            return Err(error);
                        }
                    };
                    let entry = group.remove(rank as usize);
                    let seq = self.next_id();
                    self.push_ready(seq, entry);
                }
                if let Some(entry) = group.pop() {
                    let seq = self.next_id();
                    self.push_ready(seq, entry);
                }
            }
            let Some((deadline, _, entry)) = next else {
                return Ok(());
            };
            group_deadline = deadline;
            group.push(entry);
        }
    }

    /// Faithful mode, when a stock-loop iteration begins: the iteration before it
    /// may have run long enough for the next timer to fall due (a tape choice,
    /// canonical: it did not). Only a stall of at most `max_stall` virtual
    /// nanoseconds is offered: a machine that slow is one a real loop runs on.
    fn maybe_stall(&mut self, max_stall: u64) -> Result<Option<Next<T>>, EngineError> {
        let Some((oldest, _)) = self.ready.iter().next() else {
            return Ok(None);
        };
        if oldest < self.batch_end {
            return Ok(None);
        }
        let deadline = match self.timers.next_deadline() {
            Some(deadline) if deadline != NEVER && deadline - self.now_ns <= max_stall => deadline,
            _ => return Ok(None),
        };
        let question = Question::Choice {
            percent: Some(STALL_PERCENT),
        };
        if self.decide(question, self.stall_label, 2)? == 0 {
            return Ok(None);
        }
        self.stalls += 1;
        self.jump_to(deadline)
    }

    /// Turn on the faithful model (see [`StrategyKind::Faithful`]): ready callbacks
    /// always run in the order they became ready; the decisions are stalls of at
    /// most `max_stall_ns` between iterations and the order of timers due at the
    /// same instant (plus faults and user choices, as always).
    pub fn set_faithful(&mut self, max_stall_ns: u64) {
        self.faithful = Some(max_stall_ns);
        self.stall_label = self.log.label("loop.stall");
        self.tie_label = self.log.label("timer.tie");
    }

    /// How many iterations faithful mode took to have stalled until a timer.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// Move the clock to a timer's `deadline` and make what falls due ready; past the
    /// time budget the run ends instead (`Some`), and the clock stays where it is, so
    /// the report shows the timers due.
    fn jump_to(&mut self, deadline: u64) -> Result<Option<Next<T>>, EngineError> {
        if deadline > self.time_limit_ns {
            return Ok(Some(self.exhaust(BudgetKind::Time)));
        }
        self.log.clock(deadline - self.now_ns);
        self.now_ns = deadline;
        self.steps_since_clock_moved = 0;
        self.move_due_timers()?;
        Ok(None)
    }

    /// The next callback to run, advancing the virtual clock if nothing is ready.
    pub fn next_step(&mut self) -> Result<Next<T>, EngineError> {
        if let BudgetPhase::Spent(kind) = self.phase {
            return Ok(Next::Budget(kind));
        }
        self.move_due_timers()?;
        if self.ready.is_empty() {
            let deadline = match self.timers.next_deadline() {
                Some(deadline) if deadline != NEVER => deadline,
                // Only timers that never fire (an infinite sleep) are left: idle.
                _ => return Ok(Next::Idle),
            };
            if let Some(spent) = self.jump_to(deadline)? {
                return Ok(spent);
            }
        }
        if self.steps_since_clock_moved >= self.livelock_steps {
            // A real loop's clock runs while callbacks run, so a busy stretch never
            // starves a timer forever: after this many steps at one instant the
            // stretch is taken to last until the next deadline, and that timer
            // fires (a task polling a flag a timer sets gets there). With no timer
            // to wait for, nothing can change: a livelock.
            match self.timers.next_deadline() {
                Some(deadline) if deadline != NEVER => {
                    if let Some(spent) = self.jump_to(deadline)? {
                        return Ok(spent);
                    }
                    self.busy_advances += 1;
                }
                // Reported before anything is taken, so the spinning callback stays
                // ready and teardown can still cancel its task.
                _ => {
                    return Ok(Next::Livelock {
                        steps: self.steps_since_clock_moved,
                    })
                }
            }
        }
        if self.steps >= self.step_limit {
            return Ok(self.exhaust(BudgetKind::Steps));
        }
        if let (Some(max_stall), false) = (self.faithful, self.quiet) {
            if let Some(spent) = self.maybe_stall(max_stall)? {
                return Ok(spent);
            }
        }
        let count = self.ready.len() as u64;
        let rank = if count >= 2 && !self.quiet && self.faithful.is_none() {
            let label = if self.timers_in_ready as u64 == count {
                self.timer_label
            } else {
                self.sched_label
            };
            self.decide(Question::Schedule, label, count)?
        } else {
            0
        };
        self.last_rank = rank;
        let (seq, entry) = self
            .ready
            .take(rank as usize)
            .expect("rank is within the ready set");
        self.unready(seq, &entry);
        if seq >= self.batch_end {
            // Every older entry has run: a new iteration of the stock loop begins,
            // made of what is ready now.
            self.batch += 1;
            self.batch_end = self.next_seq;
        }
        if let Source::Seeded { strategy, .. } = &mut self.source {
            if count >= 2 && !self.quiet && self.faithful.is_none() {
                strategy.after_schedule(self.decisions - 1, entry.owner);
            } else {
                // An eager start ends with the owner's first step, decided or not.
                strategy.after_lone_step(entry.owner);
            }
        }
        self.steps += 1;
        self.steps_since_clock_moved += 1;
        self.note_activity(entry.owner);
        self.log.step(entry.label);
        Ok(Next::Run(entry))
    }

    #[inline]
    fn note_activity(&mut self, owner: u32) {
        let slot = owner as usize;
        if slot >= self.activity.len() {
            self.activity.resize(slot + 1, Activity::default());
        }
        let activity = &mut self.activity[slot];
        activity.steps += 1;
        activity.last_step = self.steps;
        activity.last_ns = self.now_ns;
    }

    /// The number of the current batch (stock-loop iteration).
    pub fn batch(&self) -> u64 {
        self.batch
    }

    /// Ready entries that belong to the current batch (a prefix of the ready set).
    pub fn batch_ready(&self) -> usize {
        self.ready
            .iter()
            .take_while(|(seq, _)| *seq < self.batch_end)
            .count()
    }

    /// The next entry of the current batch, oldest first and without a decision
    /// (the rest of an iteration after `loop.stop()`); None when the batch is done.
    /// Timers that fell due meanwhile wait for the next batch, as on the stock loop.
    pub fn next_in_batch(&mut self) -> Option<Entry<T>> {
        let (seq, _) = self.ready.iter().next()?;
        if seq >= self.batch_end {
            return None;
        }
        let (seq, entry) = self.ready.take(0)?;
        self.last_rank = 0;
        self.unready(seq, &entry);
        self.steps += 1;
        self.steps_since_clock_moved += 1;
        self.note_activity(entry.owner);
        self.log.step(entry.label);
        Some(entry)
    }

    /// A labelled choice in `[0, bound)` (`sometimes`, `draw`, faults). Bounds below
    /// two are not decisions and answer 0 without touching the tape.
    pub fn choose(
        &mut self,
        label: &str,
        bound: u64,
        percent: Option<u32>,
    ) -> Result<u64, EngineError> {
        if bound < 2 || self.quiet {
            return Ok(0);
        }
        let label_id = self.log.label(label);
        self.decide(Question::Choice { percent }, label_id, bound)
    }

    /// Count a coverage hit for `label`.
    pub fn cover(&mut self, label: &str) {
        if let Some(count) = self.coverage.get_mut(label) {
            *count += 1;
        } else {
            self.coverage.insert(label.to_string(), 1);
        }
    }

    fn decide(&mut self, question: Question, label: u32, bound: u64) -> Result<u64, EngineError> {
        let index = self.decisions;
        let value = match &mut self.source {
            Source::Seeded { strategy, rng } => strategy.answer(question, bound, &self.ready, rng),
            Source::Replay {
                tape,
                cursor,
                strict,
            } => match tape.read(cursor) {
                Some((deviation, after)) if deviation.index == index => {
                    *cursor = after;
                    if deviation.value < bound {
                        deviation.value
                    } else if *strict {
                        return Err(EngineError::Misaligned {
                            index,
                            label: self.log.label_text(label).to_string(),
                            bound,
                            value: deviation.value,
                        });
                    } else {
                        self.misaligned = true;
                        self.log.misalign(index);
                        0
                    }
                }
                _ => 0,
            },
            Source::External {
                draws,
                next_deviation,
            } => {
                if *next_deviation == Some(index) {
                    let value = draws
                        .value(self.log.label_text(label), bound)
                        .map_err(|_| EngineError::Aborted)?;
                    *next_deviation = next_from(draws.as_mut(), index + 1)?;
                    value.clamp(1, bound - 1)
                } else {
                    0
                }
            }
        };
        debug_assert!(value < bound);
        self.decisions += 1;
        self.tape.record(index, value);
        self.log.decision(label, bound, value);
        Ok(value)
    }

    /// Close the universe: check that a replayed tape was used up, log the outcome.
    pub fn finish(&mut self, outcome: &str) -> Result<(), EngineError> {
        let outcome_label = self.log.label(outcome);
        self.log.end(outcome_label);
        if let Source::Replay {
            tape,
            cursor,
            strict,
        } = &self.source
        {
            if let Some((first, _)) = tape.read(cursor) {
                if *strict {
                    return Err(EngineError::UnusedDeviations {
                        first_index: first.index,
                        count: tape.len() - cursor.ordinal(),
                    });
                }
                self.misaligned = true;
                self.log.misalign(first.index);
            }
        }
        Ok(())
    }

    /// Take every pending callback out (teardown), ready ones first, oldest first.
    pub fn drain(&mut self) -> Vec<Entry<T>> {
        let mut out: Vec<Entry<T>> = self.ready.drain().into_iter().map(|(_, e)| e).collect();
        out.extend(self.timers.drain().into_iter().map(|(_, _, e)| e));
        self.moved_timers.clear();
        self.timers_in_ready = 0;
        out
    }

    /// Pending entries, for diagnostics: ready ones oldest first, then timers.
    pub fn pending(&self) -> impl Iterator<Item = &Entry<T>> {
        self.ready
            .iter()
            .map(|(_, e)| e)
            .chain(self.timers.iter().map(|(_, _, e)| e))
    }
}

/// In a universe the engine answers every model's questions, so their decisions are
/// on the tape. A model that got an answer outside its bound (which the engine never
/// gives: it validates replayed values itself) reports it here, and it is treated as
/// a replayed value that does not fit: lenient replay marks the universe misaligned
/// (a `misalign` event for the decision just made), strict replay fails.
impl<T> Choices for Engine<T> {
    type Error = EngineError;

    fn choose(
        &mut self,
        label: &str,
        bound: u64,
        percent: Option<u32>,
    ) -> Result<u64, EngineError> {
        Engine::choose(self, label, bound, percent)
    }

    fn mark_misaligned(&mut self, label: &str, bound: u64, value: u64) -> Result<(), EngineError> {
        let index = self.decisions.saturating_sub(1);
        if let Source::Replay { strict: true, .. } = self.source {
            return Err(EngineError::Misaligned {
                index,
                label: label.to_string(),
                bound,
                value,
            });
        }
        self.misaligned = true;
        self.log.misalign(index);
        Ok(())
    }
}

fn next_from(draws: &mut dyn ExternalDraws, base: u64) -> Result<Option<u64>, EngineError> {
    if !draws.more().map_err(|_| EngineError::Aborted)? {
        return Ok(None);
    }
    let gap = draws.gap().map_err(|_| EngineError::Aborted)?.min(MAX_GAP);
    Ok(Some(base + gap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::Eager;

    /// A toy program: `tasks` tasks each take `rounds` steps; each step re-schedules
    /// its task, and every third step also sets a timer. Returns (order run, engine).
    fn run_program(source: Source, tasks: u32, rounds: u32) -> (Vec<u32>, Engine<u32>) {
        let mut engine: Engine<u32> = Engine::new(source, 1_000_000).unwrap();
        let mut remaining = vec![rounds; tasks as usize];
        for task in 0..tasks {
            let label = engine.log_mut().label(&format!("Task-{task}"));
            engine.schedule_ready(task, label, label);
        }
        let mut order = Vec::new();
        loop {
            match engine.next_step().unwrap() {
                Next::Run(entry) => {
                    let task = entry.payload;
                    order.push(task);
                    let left = &mut remaining[task as usize];
                    if *left > 0 {
                        *left -= 1;
                        if (*left).is_multiple_of(3) {
                            let deadline = engine.now_ns() + 1_000;
                            engine.schedule_timer(deadline, task, entry.label, entry.owner);
                        } else {
                            engine.schedule_ready(task, entry.label, entry.owner);
                        }
                    }
                }
                Next::Idle => break,
                Next::Livelock { .. } => panic!("livelock"),
                Next::Budget(kind) => panic!("{kind:?} budget"),
            }
        }
        engine.finish("completed").unwrap();
        (order, engine)
    }

    fn faithful(seed: u64) -> Engine<u32> {
        let mut engine: Engine<u32> =
            Engine::new(Source::seeded(seed, &StrategyKind::Faithful), 1_000_000).unwrap();
        engine.set_faithful(DEFAULT_MAX_STALL_NS);
        engine
    }

    /// Run every step; return the payloads in the order they ran.
    fn drain_steps(engine: &mut Engine<u32>) -> Vec<u32> {
        let mut order = Vec::new();
        while let Next::Run(entry) = engine.next_step().unwrap() {
            order.push(entry.payload);
        }
        order
    }

    #[test]
    fn faithful_keeps_ready_callbacks_in_order_and_never_asks_to_reorder_them() {
        for seed in 0..50 {
            let mut engine = faithful(seed);
            let label = engine.log_mut().label("cb");
            for payload in 0..20 {
                engine.schedule_ready(payload, label, label);
            }
            assert_eq!(drain_steps(&mut engine), (0..20).collect::<Vec<_>>());
            // Nothing but ready callbacks: no decision at all (no timer to stall for).
            assert_eq!(engine.decisions(), 0, "seed {seed}");
        }
    }

    #[test]
    fn faithful_orders_timers_due_at_one_instant_by_the_tape_and_others_by_deadline() {
        let mut orders = std::collections::BTreeSet::new();
        for seed in 0..60 {
            let mut engine = faithful(seed);
            let label = engine.log_mut().label("t");
            for payload in 0..3 {
                engine.schedule_timer(1_000, payload, label, label);
            }
            engine.schedule_timer(2_000, 9, label, label);
            let order = drain_steps(&mut engine);
            assert_eq!(order.len(), 4);
            assert_eq!(order[3], 9, "a later deadline stays later (seed {seed})");
            orders.insert(order[..3].to_vec());
        }
        // Every permutation of the three ties shows up; FIFO (canonical) among them.
        assert_eq!(orders.len(), 6);
        let mut canonical: Engine<u32> =
            Engine::new(Source::replay(Tape::new(), true), 100).unwrap();
        canonical.set_faithful(DEFAULT_MAX_STALL_NS);
        let label = canonical.log_mut().label("t");
        for payload in 0..3 {
            canonical.schedule_timer(1_000, payload, label, label);
        }
        assert_eq!(drain_steps(&mut canonical), vec![0, 1, 2]);
    }

    #[test]
    fn faithful_keeps_tied_timers_pending_when_the_source_fails_choosing_their_order() {
        // Strict replay of a value that does not fit the tie's bound: the error ends
        // the universe, and the three timers stay for teardown.
        let tape = Tape::from_deviations([(0, 7)]).unwrap();
        let mut engine: Engine<u32> = Engine::new(Source::replay(tape, true), 100).unwrap();
        engine.set_faithful(DEFAULT_MAX_STALL_NS);
        let label = engine.log_mut().label("t");
        for payload in 0..3 {
            engine.schedule_timer(1_000, payload, label, label);
        }
        assert!(matches!(
            engine.next_step(),
            Err(EngineError::Misaligned { .. })
        ));
        let pending: Vec<u32> = engine.drain().into_iter().map(|e| e.payload).collect();
        assert_eq!(pending, vec![0, 1, 2]);
    }

    #[test]
    fn faithful_stalls_an_iteration_until_the_next_timer_within_the_bound() {
        // A timer at 0.5 s and a long chain of ready steps: some seeds stall an
        // iteration (the timer then runs before the chain ends), and a stall never
        // reaches a timer further away than the bound.
        let mut stalled = 0;
        for seed in 0..200 {
            let mut engine = faithful(seed);
            let label = engine.log_mut().label("x");
            engine.schedule_timer(500_000_000, 1_000, label, label);
            engine.schedule_timer(5_000_000_000, 2_000, label, label);
            engine.schedule_ready(0, label, label);
            let mut order = Vec::new();
            while let Next::Run(entry) = engine.next_step().unwrap() {
                order.push(entry.payload);
                if entry.payload < 100 {
                    engine.schedule_ready(entry.payload + 1, label, label);
                }
            }
            let timer_at = order.iter().position(|&p| p == 1_000).unwrap();
            if timer_at < 101 {
                stalled += 1;
                assert!(engine.stalls() >= 1);
            }
            // The 5 s timer is beyond the 1 s bound: it only ever runs last.
            assert_eq!(*order.last().unwrap(), 2_000, "seed {seed}");
        }
        assert!(stalled > 0 && stalled < 200, "stalled {stalled} of 200");
    }

    #[test]
    fn fifo_makes_no_deviations_and_an_empty_tape() {
        let (order, engine) = run_program(Source::seeded(1, &StrategyKind::Fifo), 3, 5);
        assert!(engine.tape().is_empty());
        assert!(engine.decisions() > 0);
        assert_eq!(&order[..3], &[0, 1, 2]);
    }

    #[test]
    fn a_single_task_makes_no_decisions() {
        let (_, engine) = run_program(Source::seeded(9, &StrategyKind::Random), 1, 50);
        assert_eq!(engine.decisions(), 0);
        assert!(engine.now_ns() > 0, "timers advanced the clock");
    }

    #[test]
    fn same_seed_same_trace_and_replay_reproduces_it() {
        for kind in [
            StrategyKind::Random,
            StrategyKind::Pct {
                depth: 3,
                horizon: 40,
                eager: Eager::Drawn,
            },
        ] {
            for seed in 0..50 {
                let (order_a, a) = run_program(Source::seeded(seed, &kind), 4, 12);
                let (order_b, b) = run_program(Source::seeded(seed, &kind), 4, 12);
                assert_eq!(order_a, order_b);
                assert_eq!(a.log().bytes(), b.log().bytes());
                let (order_c, c) = run_program(Source::replay(a.tape().clone(), true), 4, 12);
                assert_eq!(order_a, order_c);
                assert_eq!(a.log().digest_hex(), c.log().digest_hex());
                assert!(!c.misaligned());
            }
        }
    }

    #[test]
    fn lenient_replay_of_a_misfit_tape_falls_back_and_says_so() {
        let tape = Tape::from_deviations([(0, 99), (100_000, 1)]).unwrap();
        let (_, engine) = run_program(Source::replay(tape.clone(), false), 3, 3);
        assert!(engine.misaligned());
        assert!(engine.tape().is_empty());
        let mut strict: Engine<u32> = Engine::new(Source::replay(tape, true), 10).unwrap();
        strict.schedule_ready(0, 0, 0);
        strict.schedule_ready(1, 0, 0);
        assert!(matches!(
            strict.next_step(),
            Err(EngineError::Misaligned {
                index: 0,
                value: 99,
                bound: 2,
                ..
            })
        ));
    }

    #[test]
    fn last_rank_counts_the_older_ready_entries_a_step_ran_ahead_of() {
        let mut tape = Tape::new();
        tape.record(0, 2);
        let mut engine: Engine<&str> = Engine::new(Source::replay(tape, true), 100).unwrap();
        for name in ["a", "b", "c"] {
            engine.schedule_ready(name, 0, 0);
        }
        let mut ran = Vec::new();
        let mut ranks = Vec::new();
        while let Next::Run(entry) = engine.next_step().unwrap() {
            ran.push(entry.payload);
            ranks.push(engine.last_rank());
        }
        assert_eq!(ran, ["c", "a", "b"]);
        assert_eq!(ranks, [2, 0, 0]);
    }

    #[test]
    fn cancelled_handles_leave_the_ready_set_and_the_heap() {
        let mut engine: Engine<&str> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 100).unwrap();
        let a = engine.schedule_ready("a", 0, 0);
        let b = engine.schedule_ready("b", 0, 0);
        let t = engine.schedule_timer(5, "t", 0, 0);
        assert_eq!(engine.cancel(a), Some("a"));
        assert_eq!(engine.cancel(t), Some("t"));
        assert!(engine.is_pending(b));
        match engine.next_step().unwrap() {
            Next::Run(entry) => assert_eq!(entry.payload, "b"),
            _ => panic!(),
        }
        assert!(matches!(engine.next_step().unwrap(), Next::Idle));
        assert_eq!(
            engine.decisions(),
            0,
            "a cancelled handle is no alternative"
        );
    }

    #[test]
    fn a_timer_due_with_a_ready_callback_is_an_alternative() {
        let mut engine: Engine<&str> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 100).unwrap();
        engine.schedule_timer(0, "timer", 0, 0);
        engine.schedule_ready("callback", 0, 0);
        let Next::Run(first) = engine.next_step().unwrap() else {
            panic!()
        };
        assert_eq!(engine.decisions(), 1);
        assert_eq!(
            first.payload, "callback",
            "FIFO: the ready callback came first"
        );
    }

    #[test]
    fn spinning_without_the_clock_moving_is_a_livelock() {
        let mut engine: Engine<()> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1000).unwrap();
        engine.schedule_ready((), 0, 0);
        let mut steps = 0;
        loop {
            match engine.next_step().unwrap() {
                Next::Run(_) => {
                    steps += 1;
                    engine.schedule_ready((), 0, 0);
                }
                Next::Livelock { steps: s } => {
                    assert_eq!(s, 1000);
                    assert_eq!(engine.ready_len(), 1, "the spinner is still ready");
                    break;
                }
                Next::Idle | Next::Budget(_) => panic!(),
            }
        }
        assert_eq!(steps, 1000);
    }

    #[test]
    fn a_busy_stretch_lets_the_next_timer_fire() {
        let mut engine: Engine<u8> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1000).unwrap();
        engine.schedule_timer(100_000_000, 1, 0, 0);
        engine.schedule_ready(0, 0, 0);
        let mut steps = 0;
        loop {
            match engine.next_step().unwrap() {
                Next::Run(entry) if entry.payload == 0 => {
                    steps += 1;
                    engine.schedule_ready(0, 0, 0);
                }
                Next::Run(entry) => {
                    assert_eq!(entry.payload, 1);
                    break;
                }
                Next::Livelock { .. } | Next::Idle | Next::Budget(_) => panic!(),
            }
        }
        // The timer joins the ready set behind the spinner, which runs once more.
        assert_eq!(steps, 1001, "the spinner ran the whole stretch first");
        assert_eq!(engine.now_ns(), 100_000_000);
        assert_eq!(engine.busy_advances(), 1);
        // With no timer left the same spin is a livelock.
        loop {
            match engine.next_step().unwrap() {
                Next::Run(_) => {
                    engine.schedule_ready(0, 0, 0);
                }
                Next::Livelock { steps } => {
                    assert_eq!(steps, 1000);
                    break;
                }
                Next::Idle | Next::Budget(_) => panic!(),
            }
        }
    }

    /// A task that sleeps `period_ns` in a loop forever (each wakeup re-arms the
    /// timer); steps until the engine says something other than `Run`.
    fn tick_until_stopped(engine: &mut Engine<()>, period_ns: u64) -> (u64, Next<()>) {
        let mut steps = 0;
        loop {
            match engine.next_step().unwrap() {
                Next::Run(_) => {
                    steps += 1;
                    let deadline = engine.now_ns() + period_ns;
                    engine.schedule_timer(deadline, (), 0, 0);
                }
                other => return (steps, other),
            }
        }
    }

    fn budgeted(max_steps: Option<u64>, max_time_ns: Option<u64>) -> Engine<()> {
        let mut engine: Engine<()> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1_000_000).unwrap();
        engine.set_budgets(Budgets {
            max_steps,
            max_time_ns,
        });
        engine.begin_run();
        engine.schedule_ready((), 0, 0);
        engine
    }

    #[test]
    fn a_spinner_that_moves_the_clock_runs_out_of_steps_and_stays_scheduled() {
        let mut engine = budgeted(Some(500), None);
        let (steps, next) = tick_until_stopped(&mut engine, 1);
        assert!(matches!(next, Next::Budget(BudgetKind::Steps)));
        assert_eq!(steps, 500);
        assert_eq!(engine.steps(), 500);
        assert_eq!(
            engine.ready_len() + engine.timers_len(),
            1,
            "the spinner is still scheduled"
        );
        assert_eq!(engine.budget_phase(), BudgetPhase::Teardown);
    }

    #[test]
    fn a_periodic_timer_runs_out_of_virtual_time_without_moving_the_clock_past_it() {
        let second = 1_000_000_000;
        let mut engine = budgeted(None, Some(10 * second));
        let (steps, next) = tick_until_stopped(&mut engine, second);
        assert!(matches!(next, Next::Budget(BudgetKind::Time)));
        // Runs at 0, 1, ..., 10 s: a timer due exactly at the limit still fires.
        assert_eq!(steps, 11);
        assert_eq!(engine.now_ns(), 10 * second);
        assert_eq!(engine.timers_len(), 1);
    }

    #[test]
    fn teardown_gets_one_small_allowance_after_a_spent_budget_then_nothing() {
        let mut engine = budgeted(Some(10), None);
        let (_, first) = tick_until_stopped(&mut engine, 1);
        assert!(matches!(first, Next::Budget(BudgetKind::Steps)));
        // A new run (teardown) does not get a fresh budget, only the allowance.
        engine.begin_run();
        let (steps, second) = tick_until_stopped(&mut engine, 1);
        assert!(matches!(second, Next::Budget(BudgetKind::Steps)));
        assert_eq!(steps, TEARDOWN_STEPS);
        engine.begin_run();
        assert!(matches!(
            engine.next_step().unwrap(),
            Next::Budget(BudgetKind::Steps)
        ));
        assert_eq!(engine.budget_phase(), BudgetPhase::Spent(BudgetKind::Steps));
    }

    #[test]
    fn each_run_gets_the_full_budget_until_it_is_spent() {
        let mut engine = budgeted(Some(100), None);
        for _ in 0..5 {
            for _ in 0..60 {
                assert!(matches!(engine.next_step().unwrap(), Next::Run(_)));
                engine.schedule_ready((), 0, 0);
            }
            engine.begin_run();
        }
        assert_eq!(engine.steps(), 300);
        assert_eq!(engine.budget_phase(), BudgetPhase::Run);
    }

    #[test]
    fn quiet_mode_runs_on_the_teardown_allowance() {
        let mut engine = budgeted(Some(u64::MAX), None);
        engine.set_quiet(true);
        engine.begin_run();
        let (steps, next) = tick_until_stopped(&mut engine, 1);
        assert!(matches!(next, Next::Budget(BudgetKind::Steps)));
        assert_eq!(steps, TEARDOWN_STEPS);
    }

    #[test]
    fn budgets_that_are_not_reached_change_nothing() {
        let mut fast: Engine<u32> =
            Engine::new(Source::seeded(3, &StrategyKind::Random), 1_000_000).unwrap();
        fast.set_budgets(Budgets {
            max_steps: Some(1_000_000),
            max_time_ns: Some(1_000_000_000),
        });
        fast.begin_run();
        let (order_a, a) = run_program(Source::seeded(3, &StrategyKind::Random), 4, 30);
        let mut order_b = Vec::new();
        let mut remaining = [30u32; 4];
        for task in 0..4 {
            let label = fast.log_mut().label(&format!("Task-{task}"));
            fast.schedule_ready(task, label, label);
        }
        while let Next::Run(entry) = fast.next_step().unwrap() {
            let task = entry.payload;
            order_b.push(task);
            let left = &mut remaining[task as usize];
            if *left > 0 {
                *left -= 1;
                if (*left).is_multiple_of(3) {
                    let deadline = fast.now_ns() + 1_000;
                    fast.schedule_timer(deadline, task, entry.label, entry.owner);
                } else {
                    fast.schedule_ready(task, entry.label, entry.owner);
                }
            }
        }
        fast.finish("completed").unwrap();
        assert_eq!(order_a, order_b);
        assert_eq!(a.log().bytes(), fast.log().bytes());
        assert_eq!(a.tape(), fast.tape());
    }

    #[test]
    fn activity_says_who_ran_and_when() {
        let mut engine: Engine<()> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1_000).unwrap();
        engine.begin_run();
        engine.schedule_ready((), 0, 2);
        engine.schedule_timer(5, (), 0, 4);
        while let Next::Run(_) = engine.next_step().unwrap() {}
        let activity = engine.activity();
        assert_eq!(
            activity[2],
            Activity {
                steps: 1,
                last_step: 1,
                last_ns: 0
            }
        );
        assert_eq!(
            activity[4],
            Activity {
                steps: 1,
                last_step: 2,
                last_ns: 5
            }
        );
        assert_eq!(activity[3], Activity::default());
    }

    #[test]
    fn a_fifo_run_of_100k_steps_records_a_tiny_tape() {
        let (order, engine) = run_program(Source::seeded(0, &StrategyKind::Fifo), 10, 10_000);
        assert!(order.len() >= 100_000);
        assert!(engine.tape().to_cbor().len() <= 16);
    }

    struct Scripted(Vec<u64>, usize);
    impl ExternalDraws for Scripted {
        fn more(&mut self) -> Result<bool, SourceAbort> {
            self.1 += 1;
            Ok(self.0.get(self.1 - 1).copied().unwrap_or(0) == 1)
        }
        fn gap(&mut self) -> Result<u64, SourceAbort> {
            self.1 += 1;
            Ok(self.0[self.1 - 1])
        }
        fn value(&mut self, _label: &str, _bound: u64) -> Result<u64, SourceAbort> {
            self.1 += 1;
            Ok(self.0[self.1 - 1])
        }
    }

    #[test]
    fn external_draws_decode_the_sparse_encoding() {
        let (order_a, a) = run_program(Source::seeded(5, &StrategyKind::Random), 3, 6);
        let draws = a.tape().to_draws();
        let (order_b, b) = run_program(Source::external(Box::new(Scripted(draws, 0))), 3, 6);
        assert_eq!(order_a, order_b);
        assert_eq!(a.tape(), b.tape());
    }

    #[test]
    fn a_batch_is_what_was_ready_when_it_began() {
        let mut engine: Engine<u32> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1_000).unwrap();
        let label = engine.log_mut().label("cb");
        engine.schedule_ready(1, label, label);
        engine.schedule_ready(2, label, label);
        let Next::Run(first) = engine.next_step().unwrap() else {
            panic!("1 is ready")
        };
        assert_eq!((first.payload, engine.batch()), (1, 1));
        // Scheduled during batch 1: belongs to batch 2.
        engine.schedule_ready(3, label, label);
        assert_eq!(engine.batch_ready(), 1);
        assert_eq!(engine.next_in_batch().map(|e| e.payload), Some(2));
        assert!(
            engine.next_in_batch().is_none(),
            "3 waits for the next batch"
        );
        let Next::Run(third) = engine.next_step().unwrap() else {
            panic!("3 is ready")
        };
        assert_eq!((third.payload, engine.batch()), (3, 2));
        assert_eq!(engine.steps(), 3);
    }

    #[test]
    fn advancing_the_clock_by_hand_makes_timers_due() {
        let mut engine: Engine<u32> =
            Engine::new(Source::seeded(0, &StrategyKind::Fifo), 1_000).unwrap();
        let label = engine.log_mut().label("timer");
        engine.schedule_timer(500, 7, label, label);
        engine.advance_clock(800);
        assert_eq!(engine.now_ns(), 800);
        let Next::Run(entry) = engine.next_step().unwrap() else {
            panic!("the timer is due")
        };
        assert_eq!(entry.payload, 7);
        assert_eq!(
            engine.now_ns(),
            800,
            "no jump: the clock was already past it"
        );
    }
}
