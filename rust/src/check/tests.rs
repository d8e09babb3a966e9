//! The search against a brute-force reference (every order that respects real
//! time, every subset of the indeterminate operations) on random small histories,
//! plus hand-made histories whose answer is known.

use super::history::{Function, Operation, Outcome, Value};
use super::linearizable::{check, Limits, Verdict};
use super::models::{Builtin, Model};

fn op(
    process: u64,
    invoked: u64,
    completed: u64,
    function: Function,
    args: &[i64],
    result: Option<i64>,
) -> Operation {
    Operation {
        tag: 0,
        process,
        invoked,
        completed: Some(completed),
        function,
        key: Value::Nil,
        args: args.iter().map(|&a| Value::Int(a)).collect(),
        result: result.map(Value::Int),
        outcome: Outcome::Ok,
    }
}

fn verdict(model: Builtin, history: &[Operation]) -> Verdict {
    check(&model, history, model.by_key(), Limits::default()).expect("the check answers")
}

#[test]
fn a_read_of_the_last_write_is_linearizable() {
    let history = [
        op(1, 0, 10, Function::Write, &[1], None),
        op(2, 20, 30, Function::Read, &[], Some(1)),
    ];
    assert_eq!(verdict(Builtin::Register, &history), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_completed_write_is_not() {
    let history = [
        op(1, 0, 10, Function::Write, &[1], None),
        op(1, 11, 20, Function::Write, &[2], None),
        op(2, 25, 30, Function::Read, &[], Some(1)),
    ];
    let Verdict::NotLinearizable(example) = verdict(Builtin::Register, &history) else {
        panic!("a stale read passed");
    };
    assert_eq!(
        example.operations,
        vec![0, 1, 2],
        "the write of 1 explains the read, the write of 2 makes it stale"
    );
    assert_eq!(example.unplaceable, 2);
    assert!(example.concurrent.is_empty());
    assert!(example.minimal);
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [0, 5] {
        let history = [
            op(1, 0, 1, Function::Write, &[0], None),
            op(1, 10, 30, Function::Write, &[5], None),
            op(2, 15, 20, Function::Read, &[], Some(seen)),
        ];
        assert_eq!(verdict(Builtin::Register, &history), Verdict::Linearizable);
    }
}

#[test]
fn an_indeterminate_write_may_or_may_not_have_happened() {
    let mut lost = op(1, 0, 10, Function::Write, &[7], None);
    lost.outcome = Outcome::Info;
    lost.completed = None;
    for seen in [None, Some(7)] {
        let mut read = op(2, 20, 30, Function::Read, &[], seen);
        read.result = Some(seen.map_or(Value::Nil, Value::Int));
        assert_eq!(
            verdict(Builtin::Register, &[lost.clone(), read]),
            Verdict::Linearizable
        );
    }
}

#[test]
fn two_holders_of_a_mutex_are_caught() {
    let history = [
        op(1, 0, 10, Function::Acquire, &[], Some(1)),
        op(2, 5, 15, Function::Acquire, &[], Some(1)),
        op(1, 20, 30, Function::Release, &[], None),
    ];
    assert!(matches!(
        verdict(Builtin::Mutex, &history),
        Verdict::NotLinearizable(_)
    ));
}

#[test]
fn a_map_is_checked_key_by_key() {
    let mut history = Vec::new();
    for key in 0..3 {
        let mut w = op(
            1,
            key * 100,
            key * 100 + 10,
            Function::Write,
            &[key as i64],
            None,
        );
        w.key = Value::Int(key as i64);
        let mut r = op(
            2,
            key * 100 + 20,
            key * 100 + 30,
            Function::Read,
            &[],
            Some(key as i64),
        );
        r.key = Value::Int(key as i64);
        history.extend([w, r]);
    }
    assert_eq!(verdict(Builtin::KeyValue, &history), Verdict::Linearizable);
    history[5].result = Some(Value::Int(0)); // key 2 reads key 0's value
    let Verdict::NotLinearizable(example) = verdict(Builtin::KeyValue, &history) else {
        panic!("a wrong read on key 2 passed");
    };
    assert_eq!(example.key, Value::Int(2));
}

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Every order of `ops` that respects real time, over every subset of the
/// indeterminate ones: does one of them satisfy the model?
fn brute_force(model: &Builtin, ops: &[Operation]) -> bool {
    let ops: Vec<&Operation> = ops.iter().filter(|o| o.outcome != Outcome::Fail).collect();
    fn go(
        model: &Builtin,
        ops: &[&Operation],
        used: &mut Vec<bool>,
        state: &<Builtin as Model>::State,
    ) -> bool {
        let remaining_needed = ops
            .iter()
            .zip(used.iter())
            .any(|(o, &u)| !u && o.determinate());
        if !remaining_needed {
            return true;
        }
        for i in 0..ops.len() {
            if used[i] {
                continue;
            }
            // i may go next only if no unused determinate op completed before i began.
            let blocked = ops.iter().zip(used.iter()).any(|(o, &u)| {
                !u && o.determinate() && o.completed.is_some_and(|c| c < ops[i].invoked)
            });
            if blocked {
                continue;
            }
            if let Some(next) = model.step(state, ops[i]).expect("model step") {
                used[i] = true;
                if go(model, ops, used, &next) {
                    return true;
                }
                used[i] = false;
            }
        }
        false
    }
    let mut used = vec![false; ops.len()];
    go(model, &ops, &mut used, &model.init().expect("init"))
}

fn random_history(rng: &mut Rng, model: Builtin, n: usize) -> Vec<Operation> {
    let functions: &[Function] = match model {
        Builtin::Register => &[Function::Read, Function::Write],
        Builtin::CasRegister | Builtin::KeyValue => {
            &[Function::Read, Function::Write, Function::Cas]
        }
        Builtin::Counter => &[Function::Read, Function::Add],
        Builtin::Set => &[
            Function::Add,
            Function::Remove,
            Function::Contains,
            Function::Read,
        ],
        Builtin::Queue => &[Function::Enqueue, Function::Dequeue],
        Builtin::Mutex => &[Function::Acquire, Function::Release],
    };
    let small = |rng: &mut Rng| Value::Int(rng.below(3) as i64);
    (0..n)
        .map(|_| {
            let invoked = rng.below(40);
            let completed = invoked + rng.below(15);
            let function = functions[rng.below(functions.len() as u64) as usize];
            let args = match function {
                Function::Write
                | Function::Add
                | Function::Remove
                | Function::Contains
                | Function::Enqueue => vec![small(rng)],
                Function::Cas => vec![small(rng), small(rng)],
                _ => vec![],
            };
            let result = match function {
                Function::Read if model == Builtin::Set => {
                    let members: Vec<Value> = (0..3)
                        .filter(|_| rng.below(2) == 0)
                        .map(Value::Int)
                        .collect();
                    Some(Value::Coll(members.into_boxed_slice()))
                }
                Function::Read | Function::Dequeue => Some(if rng.below(4) == 0 {
                    Value::Nil
                } else {
                    small(rng)
                }),
                Function::Cas | Function::Contains | Function::Acquire => {
                    Some(Value::Bool(rng.below(3) > 0))
                }
                _ => None,
            };
            let outcome = match rng.below(8) {
                0 => Outcome::Info,
                1 => Outcome::Fail,
                _ => Outcome::Ok,
            };
            Operation {
                tag: 0,
                process: rng.below(3),
                invoked,
                completed: if outcome == Outcome::Info {
                    None
                } else {
                    Some(completed)
                },
                function,
                key: Value::Nil,
                args,
                result: if outcome == Outcome::Info && rng.below(2) == 0 {
                    None
                } else {
                    result
                },
                outcome,
            }
        })
        .collect()
}

#[test]
fn the_search_agrees_with_brute_force_on_random_histories() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    let models = [
        Builtin::Register,
        Builtin::CasRegister,
        Builtin::Counter,
        Builtin::Set,
        Builtin::Queue,
        Builtin::Mutex,
    ];
    let mut counts = [0usize; 2];
    for round in 0..6_000 {
        let model = models[round % models.len()];
        let n = 1 + rng.below(7) as usize;
        let history = random_history(&mut rng, model, n);
        let expected = brute_force(&model, &history);
        let got = verdict(model, &history);
        counts[usize::from(expected)] += 1;
        match (&got, expected) {
            (Verdict::Linearizable, true) => {}
            (Verdict::NotLinearizable(example), false) => {
                // The shrunk sub-history is itself not linearizable.
                let sub: Vec<Operation> = example
                    .operations
                    .iter()
                    .map(|&i| history[i].clone())
                    .collect();
                assert!(
                    !brute_force(&model, &sub),
                    "{model:?}: shrunk to a linearizable sub-history"
                );
                assert!(example.operations.contains(&example.unplaceable));
            }
            _ => panic!("{model:?}: search {got:?}, brute force {expected} on {history:#?}"),
        }
    }
    // Both answers are common, or the comparison proves little.
    assert!(counts[0] > 1_000 && counts[1] > 1_000, "{counts:?}");
}

#[test]
fn ten_thousand_operations_of_ten_clients_check_quickly() {
    // An atomic register driven by 10 clients: each operation takes effect at a
    // point inside its interval, so the history is linearizable by construction.
    let mut rng = Rng(42);
    let mut value = 0i64;
    let mut history = Vec::new();
    let mut busy_until = [0u64; 10];
    let mut time = 0u64;
    let mut pending: Vec<(u64, usize)> = Vec::new();
    for i in 0..10_000 {
        time += 1 + rng.below(3);
        let process = rng.below(10) as usize;
        let invoked = time.max(busy_until[process] + 1);
        let point = invoked + rng.below(5);
        let completed = point + rng.below(5);
        busy_until[process] = completed;
        pending.push((point, i));
        let write = rng.below(2) == 0;
        history.push(op(
            process as u64,
            invoked,
            completed,
            if write {
                Function::Write
            } else {
                Function::Read
            },
            if write { &[0] } else { &[] },
            None,
        ));
    }
    pending.sort();
    for &(_, i) in &pending {
        if history[i].function == Function::Write {
            value += 1;
            history[i].args = vec![Value::Int(value)];
        } else {
            history[i].result = Some(Value::Int(value));
        }
    }
    for h in &mut history {
        if h.function == Function::Read && h.result.is_none() {
            h.result = Some(Value::Int(0));
        }
    }
    assert_eq!(verdict(Builtin::Register, &history), Verdict::Linearizable);
    // One stale read breaks it.
    let read = (5_000..)
        .find(|&i| {
            history[i].function == Function::Read && history[i].result != Some(Value::Int(0))
        })
        .unwrap();
    history[read].result = Some(Value::Int(1));
    assert!(matches!(
        verdict(Builtin::Register, &history),
        Verdict::NotLinearizable(_)
    ));
}
