//! The one interface every model decides through: a labelled choice in `[0, bound)`,
//! 0 being canonical, and the one rule for an answer outside that range.
//!
//! Owns: the [`Choices`] trait, [`ask`] (the only way a model asks), [`Latch`] (a
//! source that cannot fail, over one that can) and, for unit tests, the shared test
//! doubles in `doubles`. Must not: know any model's labels, or draw randomness.
//!
//! # The rules
//!
//! - **Only real questions are asked.** A bound below 2 has one answer (0); [`ask`]
//!   returns it without asking, so a model with nothing to decide adds nothing to
//!   the tape.
//! - **One out-of-range rule.** An answer at or above its bound is replaced by the
//!   simplest valid value, 0 (the canonical choice), and the source is told through
//!   [`Choices::mark_misaligned`]. The engine turns that into its misalignment mark (the
//!   `misalign` event and `RunResult.misaligned`), or into `TapeMisalignedError` in
//!   strict replay, exactly as it treats a replayed value that no longer fits. The
//!   engine itself validates replayed values before a model sees them, so in a
//!   universe this rule is the backstop, not the common path.
//! - **A source may fail** (Hypothesis stops the test case, strict replay finds a
//!   misfit): its `Error` comes back from [`ask`]. The disk decides everything
//!   before changing anything and propagates it; the network, whose calls cannot
//!   stop half way, is driven through a [`Latch`] and the driver raises the kept
//!   error after the call.

use std::convert::Infallible;

/// Where a model's decisions come from. The engine answers from its tape; tests
/// answer from `doubles`. Models never call [`Choices::choose`] directly: they go
/// through [`ask`], which applies the rules above.
pub trait Choices {
    /// Why the source could not answer.
    type Error;

    /// A raw answer for a decision labelled `label` with `bound` alternatives
    /// (`bound >= 2`); 0 is canonical. `percent` is the chance of a nonzero answer in
    /// seeded universes, `None` for a uniform draw.
    fn choose(&mut self, label: &str, bound: u64, percent: Option<u32>)
        -> Result<u64, Self::Error>;

    /// The answer `value` to the decision just asked did not fit its `bound`; the
    /// model took 0 instead.
    fn mark_misaligned(&mut self, label: &str, bound: u64, value: u64) -> Result<(), Self::Error>;
}

impl<C: Choices + ?Sized> Choices for &mut C {
    type Error = C::Error;

    fn choose(&mut self, label: &str, bound: u64, percent: Option<u32>) -> Result<u64, C::Error> {
        (**self).choose(label, bound, percent)
    }

    fn mark_misaligned(&mut self, label: &str, bound: u64, value: u64) -> Result<(), C::Error> {
        (**self).mark_misaligned(label, bound, value)
    }
}

/// Ask `choices` for a value in `[0, bound)`: 0 without asking when `bound < 2`;
/// an answer out of range becomes 0 and is reported as misaligned.
pub fn ask<C: Choices + ?Sized>(
    choices: &mut C,
    label: &str,
    bound: u64,
    percent: Option<u32>,
) -> Result<u64, C::Error> {
    if bound < 2 {
        return Ok(0);
    }
    let value = choices.choose(label, bound, percent)?;
    if value < bound {
        return Ok(value);
    }
    choices.mark_misaligned(label, bound, value)?;
    Ok(0)
}

/// A source that cannot fail, over `source`, which can: the first error is kept,
/// and from then on every question is answered 0 (canonical) without asking. A model
/// whose calls must run to the end (the network) finishes its call with canonical
/// answers; the caller takes the error with [`Latch::take_error`] and raises it.
pub struct Latch<C: Choices> {
    source: C,
    error: Option<C::Error>,
}

impl<C: Choices> Latch<C> {
    pub fn new(source: C) -> Latch<C> {
        Latch {
            source,
            error: None,
        }
    }

    /// The first error of the source, if it failed.
    pub fn take_error(&mut self) -> Option<C::Error> {
        self.error.take()
    }
}

impl<C: Choices> Choices for Latch<C> {
    type Error = Infallible;

    fn choose(&mut self, label: &str, bound: u64, percent: Option<u32>) -> Result<u64, Infallible> {
        if self.error.is_none() {
            match self.source.choose(label, bound, percent) {
                Ok(value) => return Ok(value),
                Err(error) => self.error = Some(error),
            }
        }
        Ok(0)
    }

    fn mark_misaligned(&mut self, label: &str, bound: u64, value: u64) -> Result<(), Infallible> {
        if self.error.is_none() {
            if let Err(error) = self.source.mark_misaligned(label, bound, value) {
                self.error = Some(error);
            }
        }
        Ok(())
    }
}

/// Test doubles shared by every model's unit tests. Each remembers what it was asked
/// (`asked`: label and bound, in order) and what it was told did not fit
/// (`misaligned`: label, bound, value).
#[cfg(test)]
pub(crate) mod doubles {
    use super::Choices;
    use std::collections::{BTreeMap, VecDeque};
    use std::convert::Infallible;

    /// What a double was asked and told.
    #[derive(Debug, Default, Clone, PartialEq, Eq)]
    pub(crate) struct Record {
        pub(crate) asked: Vec<(String, u64)>,
        pub(crate) misaligned: Vec<(String, u64, u64)>,
    }

    impl Record {
        fn ask(&mut self, label: &str, bound: u64) {
            self.asked.push((label.to_string(), bound));
        }

        fn misfit(&mut self, label: &str, bound: u64, value: u64) {
            self.misaligned.push((label.to_string(), bound, value));
        }

        /// The labels asked, in order.
        pub(crate) fn labels(&self) -> Vec<&str> {
            self.asked.iter().map(|(label, _)| label.as_str()).collect()
        }
    }

    /// The canonical universe: answers 0 to everything.
    #[derive(Default)]
    pub(crate) struct Canonical {
        pub(crate) record: Record,
    }

    impl Choices for Canonical {
        type Error = Infallible;
        fn choose(&mut self, label: &str, bound: u64, _: Option<u32>) -> Result<u64, Infallible> {
            self.record.ask(label, bound);
            Ok(0)
        }
        fn mark_misaligned(
            &mut self,
            label: &str,
            bound: u64,
            value: u64,
        ) -> Result<(), Infallible> {
            self.record.misfit(label, bound, value);
            Ok(())
        }
    }

    /// Scripted answers: per label in order ([`Scripted::per_label`]), else from one
    /// queue in order ([`Scripted::new`]); 0 once the script runs out. A scripted value
    /// is returned as written, in range or not.
    #[derive(Default)]
    pub(crate) struct Scripted {
        by_label: BTreeMap<String, VecDeque<u64>>,
        in_order: VecDeque<u64>,
        pub(crate) record: Record,
    }

    impl Scripted {
        /// Answers in the order the questions come, whatever their label.
        pub(crate) fn new(answers: &[u64]) -> Scripted {
            Scripted {
                in_order: answers.iter().copied().collect(),
                ..Scripted::default()
            }
        }

        /// Answers per label, each label's in order.
        pub(crate) fn per_label(script: &[(&str, &[u64])]) -> Scripted {
            Scripted {
                by_label: script
                    .iter()
                    .map(|(label, answers)| (label.to_string(), answers.iter().copied().collect()))
                    .collect(),
                ..Scripted::default()
            }
        }

        /// Every scripted answer was used.
        pub(crate) fn exhausted(&self) -> bool {
            self.in_order.is_empty() && self.by_label.values().all(VecDeque::is_empty)
        }
    }

    impl Choices for Scripted {
        type Error = Infallible;
        fn choose(&mut self, label: &str, bound: u64, _: Option<u32>) -> Result<u64, Infallible> {
            self.record.ask(label, bound);
            let answer = match self.by_label.get_mut(label) {
                Some(answers) => answers.pop_front(),
                None => self.in_order.pop_front(),
            };
            Ok(answer.unwrap_or(0))
        }
        fn mark_misaligned(
            &mut self,
            label: &str,
            bound: u64,
            value: u64,
        ) -> Result<(), Infallible> {
            self.record.misfit(label, bound, value);
            Ok(())
        }
    }

    /// A seeded linear congruential generator: arbitrary but repeatable answers,
    /// honouring `percent` as the seeded strategies do. Also the workload generator
    /// of randomized tests ([`Lcg::below`]).
    pub(crate) struct Lcg(pub(crate) u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        /// A value in `[0, bound)` (0 when `bound` is 0).
        pub(crate) fn below(&mut self, bound: u64) -> u64 {
            self.next() % bound.max(1)
        }

        /// Up to `max_len` lowercase letters.
        pub(crate) fn bytes(&mut self, max_len: u64) -> Vec<u8> {
            let len = self.below(max_len + 1);
            (0..len).map(|_| b'a' + self.below(26) as u8).collect()
        }
    }

    impl Choices for Lcg {
        type Error = Infallible;
        fn choose(&mut self, _: &str, bound: u64, percent: Option<u32>) -> Result<u64, Infallible> {
            Ok(match percent {
                Some(percent) if self.below(100) < percent as u64 => 1 + self.below(bound - 1),
                Some(_) => 0,
                None => self.below(bound),
            })
        }
        fn mark_misaligned(
            &mut self,
            label: &str,
            bound: u64,
            value: u64,
        ) -> Result<(), Infallible> {
            panic!("Lcg answered {value} to {label} (bound {bound})");
        }
    }

    /// Answers the largest value (`bound - 1`) until its `n`th question, which fails.
    pub(crate) struct FailsAt(pub(crate) usize);

    /// The error of [`FailsAt`].
    pub(crate) const SOURCE_RAISED: &str = "source raised";

    impl Choices for FailsAt {
        type Error = &'static str;
        fn choose(&mut self, _: &str, bound: u64, _: Option<u32>) -> Result<u64, &'static str> {
            if self.0 == 0 {
                return Err(SOURCE_RAISED);
            }
            self.0 -= 1;
            Ok(bound - 1)
        }
        fn mark_misaligned(
            &mut self,
            label: &str,
            bound: u64,
            value: u64,
        ) -> Result<(), &'static str> {
            panic!("FailsAt answered {value} to {label} (bound {bound})");
        }
    }

    /// Answers every question out of range (`bound + extra`), as a foreign or corrupt
    /// tape would.
    #[derive(Default)]
    pub(crate) struct OutOfRange {
        pub(crate) extra: u64,
        pub(crate) record: Record,
    }

    impl Choices for OutOfRange {
        type Error = Infallible;
        fn choose(&mut self, label: &str, bound: u64, _: Option<u32>) -> Result<u64, Infallible> {
            self.record.ask(label, bound);
            Ok(bound.saturating_add(self.extra))
        }
        fn mark_misaligned(
            &mut self,
            label: &str,
            bound: u64,
            value: u64,
        ) -> Result<(), Infallible> {
            self.record.misfit(label, bound, value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::doubles::{Canonical, FailsAt, OutOfRange, Scripted, SOURCE_RAISED};
    use super::*;
    use crate::engine::{Engine, EngineError, Source};
    use crate::tape::Tape;

    #[test]
    fn a_bound_below_two_is_not_asked() {
        let mut choices = Canonical::default();
        assert_eq!(ask(&mut choices, "x", 0, None), Ok(0));
        assert_eq!(ask(&mut choices, "x", 1, Some(100)), Ok(0));
        assert!(choices.record.asked.is_empty());
        let mut failing = FailsAt(0);
        assert_eq!(
            ask(&mut failing, "x", 1, None),
            Ok(0),
            "nothing asked, nothing failed"
        );
    }

    #[test]
    fn an_answer_in_range_is_taken_as_it_is() {
        let mut choices = Scripted::new(&[0, 4, 9]);
        let answers: Vec<u64> = (0..3)
            .map(|_| ask(&mut choices, "x", 10, None).unwrap())
            .collect();
        assert_eq!(answers, [0, 4, 9]);
        assert!(choices.record.misaligned.is_empty());
    }

    #[test]
    fn an_answer_out_of_range_becomes_zero_and_is_reported_misaligned() {
        let mut choices = OutOfRange {
            extra: 3,
            ..OutOfRange::default()
        };
        assert_eq!(ask(&mut choices, "net.latency", 5, None), Ok(0));
        assert_eq!(
            choices.record.misaligned,
            [("net.latency".to_string(), 5, 8)]
        );
        let mut scripted = Scripted::new(&[2]);
        assert_eq!(
            ask(&mut scripted, "disk.crash", 2, None),
            Ok(0),
            "2 is out of [0, 2)"
        );
        assert_eq!(
            scripted.record.misaligned,
            [("disk.crash".to_string(), 2, 2)]
        );
    }

    #[test]
    fn a_failing_source_surfaces_its_error() {
        let mut choices = FailsAt(1);
        assert_eq!(ask(&mut choices, "x", 3, None), Ok(2));
        assert_eq!(ask(&mut choices, "x", 3, None), Err(SOURCE_RAISED));
    }

    #[test]
    fn a_latch_keeps_the_first_error_and_answers_zero_after_it() {
        let mut latch = Latch::new(FailsAt(1));
        assert_eq!(ask(&mut latch, "x", 3, None), Ok(2));
        assert_eq!(ask(&mut latch, "x", 3, None), Ok(0));
        assert_eq!(ask(&mut latch, "x", 3, None), Ok(0), "not asked again");
        assert_eq!(latch.take_error(), Some(SOURCE_RAISED));
        assert_eq!(latch.take_error(), None);
        let mut out_of_range = OutOfRange::default();
        let mut latch = Latch::new(&mut out_of_range);
        assert_eq!(ask(&mut latch, "x", 3, None), Ok(0));
        assert_eq!(latch.take_error(), None);
        assert_eq!(out_of_range.record.misaligned, [("x".to_string(), 3, 3)]);
    }

    #[test]
    fn the_engine_marks_a_misfit_as_it_marks_a_replayed_one() {
        let mut engine: Engine<()> = Engine::new(Source::replay(Tape::new(), false), 10).unwrap();
        assert_eq!(Choices::choose(&mut engine, "x", 3, None), Ok(0));
        assert!(!engine.misaligned());
        Choices::mark_misaligned(&mut engine, "x", 3, 7).unwrap();
        assert!(engine.misaligned());
        let log = engine.log().bytes();
        assert_eq!(
            &log[log.len() - 2..],
            [7, 0],
            "a misalign event for decision #0"
        );

        let mut strict: Engine<()> = Engine::new(Source::replay(Tape::new(), true), 10).unwrap();
        Choices::choose(&mut strict, "x", 3, None).unwrap();
        assert_eq!(
            Choices::mark_misaligned(&mut strict, "x", 3, 7),
            Err(EngineError::Misaligned {
                index: 0,
                label: "x".to_string(),
                bound: 3,
                value: 7
            })
        );
        assert!(!strict.misaligned());
    }
}
