//! Monitors: properties of a running universe, judged between its steps.
//!
//! Owns the state of each monitor and when it is violated; the predicates are the
//! caller's (the Python layer calls them through the `evaluate` closure).
//!
//! - `Always(p)`: `p` holds after every step (and when it is added).
//! - `Eventually(p, within)`: `p` holds after some step no later than `within`
//!   virtual nanoseconds after the monitor was added (`None`: before the universe
//!   ends). Once it held, the monitor is done.
//! - `LeadsTo(p, q, within)`: whenever `p` holds, `q` holds at that step or a later
//!   one, no later than `within` after (`None`: before the universe ends). One
//!   obligation is open at a time: `p` holding again while one is open does not
//!   restart its clock.
//!
//! A time limit is judged at the first step at or after it (nothing can change
//! between steps), so a violation's time is the deadline, not that step's time.

/// What a monitor asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Always,
    Eventually { within_ns: Option<u64> },
    LeadsTo { within_ns: Option<u64> },
}

/// Which of a monitor's predicates to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    P,
    Q,
}

/// A violated monitor: its index, when, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub monitor: usize,
    pub time_ns: u64,
    /// For `LeadsTo`: when the `p` it could not answer held.
    pub since_ns: Option<u64>,
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `Always`: `p` was false.
    False,
    /// The time limit passed without `p` (`Eventually`) or `q` (`LeadsTo`).
    Deadline,
    /// The universe ended without it.
    Ended,
}

#[derive(Clone, Debug)]
struct Slot {
    kind: Kind,
    added_ns: u64,
    /// `Eventually`: it held. Removed monitors are done too.
    done: bool,
    /// `LeadsTo`: the time `p` held with `q` not yet following.
    open_since: Option<u64>,
}

/// Every monitor of one universe.
#[derive(Clone, Debug, Default)]
pub struct Monitors {
    slots: Vec<Slot>,
    active: usize,
}

impl Monitors {
    pub fn add(&mut self, kind: Kind, now_ns: u64) -> usize {
        self.slots.push(Slot {
            kind,
            added_ns: now_ns,
            done: false,
            open_since: None,
        });
        self.active += 1;
        self.slots.len() - 1
    }

    /// Stop judging monitor `index` (it stays numbered).
    pub fn remove(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            if !slot.done {
                slot.done = true;
                self.active -= 1;
            }
        }
    }

    /// Whether any monitor is still judged (else stepping need not call in).
    pub fn is_active(&self) -> bool {
        self.active > 0
    }

    /// Judge every monitor after a step at `now_ns`; `evaluate(index, which)` calls
    /// a predicate. The first violation wins.
    pub fn after_step<E>(
        &mut self,
        now_ns: u64,
        mut evaluate: impl FnMut(usize, Which) -> Result<bool, E>,
    ) -> Result<Option<Violation>, E> {
        for index in 0..self.slots.len() {
            if let Some(violation) = self.judge(index, now_ns, &mut evaluate)? {
                return Ok(Some(violation));
            }
        }
        Ok(None)
    }

    /// Judge monitor `index` alone (when it is added: `Always` must hold then).
    pub fn judge<E>(
        &mut self,
        index: usize,
        now_ns: u64,
        evaluate: &mut impl FnMut(usize, Which) -> Result<bool, E>,
    ) -> Result<Option<Violation>, E> {
        let slot = &mut self.slots[index];
        if slot.done {
            return Ok(None);
        }
        let violation = |time_ns, since_ns, reason| Violation {
            monitor: index,
            time_ns,
            since_ns,
            reason,
        };
        match slot.kind {
            Kind::Always => {
                if !evaluate(index, Which::P)? {
                    return Ok(Some(violation(now_ns, None, Reason::False)));
                }
            }
            Kind::Eventually { within_ns } => {
                let deadline = within_ns.map(|w| slot.added_ns.saturating_add(w));
                if let Some(deadline) = deadline.filter(|&d| now_ns > d) {
                    return Ok(Some(violation(deadline, None, Reason::Deadline)));
                }
                if evaluate(index, Which::P)? {
                    slot.done = true;
                    self.active -= 1;
                }
            }
            Kind::LeadsTo { within_ns } => {
                if let Some(since) = slot.open_since {
                    let deadline = within_ns.map(|w| since.saturating_add(w));
                    if let Some(deadline) = deadline.filter(|&d| now_ns > d) {
                        return Ok(Some(violation(deadline, Some(since), Reason::Deadline)));
                    }
                    if evaluate(index, Which::Q)? {
                        slot.open_since = None;
                    }
                } else if evaluate(index, Which::P)? && !evaluate(index, Which::Q)? {
                    slot.open_since = Some(now_ns);
                }
            }
        }
        Ok(None)
    }

    /// The universe ended at `now_ns`: an `Eventually` that never held and an open
    /// `LeadsTo` obligation are violations.
    pub fn at_end(&mut self, now_ns: u64) -> Option<Violation> {
        for (index, slot) in self.slots.iter().enumerate() {
            if slot.done {
                continue;
            }
            match slot.kind {
                Kind::Eventually { .. } => {
                    return Some(Violation {
                        monitor: index,
                        time_ns: now_ns,
                        since_ns: None,
                        reason: Reason::Ended,
                    })
                }
                Kind::LeadsTo { .. } if slot.open_since.is_some() => {
                    return Some(Violation {
                        monitor: index,
                        time_ns: now_ns,
                        since_ns: slot.open_since,
                        reason: Reason::Ended,
                    })
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Predicates that are true unless `values` says otherwise.
    fn answers(
        values: &[(usize, Which, bool)],
    ) -> impl FnMut(usize, Which) -> Result<bool, ()> + '_ {
        move |index, which| {
            Ok(!values
                .iter()
                .any(|(i, w, v)| *i == index && *w == which && !*v))
        }
    }

    #[test]
    fn always_fails_at_the_first_false_step() {
        let mut monitors = Monitors::default();
        monitors.add(Kind::Always, 0);
        assert_eq!(monitors.after_step(5, answers(&[])).unwrap(), None);
        let v = monitors
            .after_step(7, answers(&[(0, Which::P, false)]))
            .unwrap()
            .unwrap();
        assert_eq!((v.monitor, v.time_ns, v.reason), (0, 7, Reason::False));
    }

    #[test]
    fn eventually_is_done_once_it_held_and_fails_at_its_deadline_or_the_end() {
        let mut monitors = Monitors::default();
        monitors.add(
            Kind::Eventually {
                within_ns: Some(10),
            },
            100,
        );
        monitors.add(Kind::Eventually { within_ns: None }, 100);
        let no = [(0, Which::P, false), (1, Which::P, false)];
        assert_eq!(monitors.after_step(105, answers(&no)).unwrap(), None);
        let v = monitors.after_step(111, answers(&no)).unwrap().unwrap();
        assert_eq!((v.monitor, v.time_ns, v.reason), (0, 110, Reason::Deadline));
        monitors.remove(0);
        let v = monitors.at_end(500).unwrap();
        assert_eq!((v.monitor, v.reason), (1, Reason::Ended));
        // Once it held, nothing more is asked of it.
        assert_eq!(monitors.after_step(600, answers(&[])).unwrap(), None);
        assert_eq!(monitors.at_end(700), None);
        assert!(!monitors.is_active());
    }

    #[test]
    fn leads_to_opens_an_obligation_and_closes_it_when_q_follows() {
        let mut monitors = Monitors::default();
        monitors.add(
            Kind::LeadsTo {
                within_ns: Some(50),
            },
            0,
        );
        // p without q opens at 10; q at 40 closes it.
        assert_eq!(
            monitors
                .after_step(10, answers(&[(0, Which::Q, false)]))
                .unwrap(),
            None
        );
        assert_eq!(monitors.after_step(40, answers(&[])).unwrap(), None);
        // Opens again at 100, q never follows: violated at 150, since 100.
        let no_q = [(0, Which::Q, false)];
        assert_eq!(monitors.after_step(100, answers(&no_q)).unwrap(), None);
        assert_eq!(monitors.after_step(150, answers(&no_q)).unwrap(), None);
        let v = monitors.after_step(151, answers(&no_q)).unwrap().unwrap();
        assert_eq!(
            (v.time_ns, v.since_ns, v.reason),
            (150, Some(100), Reason::Deadline)
        );
    }

    #[test]
    fn an_open_leads_to_at_the_end_is_a_violation() {
        let mut monitors = Monitors::default();
        monitors.add(Kind::LeadsTo { within_ns: None }, 0);
        monitors
            .after_step(3, answers(&[(0, Which::Q, false)]))
            .unwrap();
        let v = monitors.at_end(9).unwrap();
        assert_eq!((v.since_ns, v.reason), (Some(3), Reason::Ended));
    }

    #[test]
    fn a_predicate_error_propagates() {
        let mut monitors = Monitors::default();
        monitors.add(Kind::Always, 0);
        let result = monitors.after_step(1, |_, _| Err::<bool, &str>("boom"));
        assert_eq!(result, Err("boom"));
    }
}
