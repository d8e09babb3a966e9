//! Is a history of transactions serializable? Elle's inference, for list-append
//! and read-write-register transactions.
//!
//! Each committed transaction is a node. Edges say one transaction must come
//! before another in any serial order that explains what was read:
//!
//! - **ww**: it wrote the version of a key that the other overwrote;
//! - **wr**: the other read what it wrote;
//! - **rw** (anti-dependency): it read a version that the other overwrote;
//! - **rt** (with `realtime`): it completed before the other was invoked.
//!
//! For list-append the version order of a key is its longest read (every read of a
//! key must be a prefix of it; appended values are unique), so all three are
//! exact. For read-write registers (written values unique per key) wr is exact and
//! the version order is what can be proven: the initial (absent) version first, and
//! a transaction that read a version and then wrote the key wrote the next one.
//!
//! Anomalies: **G1a** (a committed transaction read a value written by an aborted
//! one), **G1b** (it read a value its writer later overwrote in the same
//! transaction), **incompatible-order** (two reads of a list that are not prefixes
//! of one another), and cycles: **G0** (ww only), **G1c** (ww and wr, at least one
//! wr), **G-single** (exactly one rw), **G2** (more than one rw), each with its
//! shortest cycle. With `realtime`, a cycle that needs an rt edge is reported as
//! the same anomaly with `-realtime` (a strict-serializability violation).

use super::history::Value;
use super::FastMap as HashMap;
use std::collections::VecDeque;

/// One micro-operation of a transaction.
#[derive(Clone, Debug, PartialEq)]
pub enum Micro {
    /// `append(key, value)` (list-append) or `write(key, value)` (register).
    Write { key: Value, value: Value },
    /// `read(key)`: the list (list-append) or the value (register); `None` when
    /// unknown (the transaction did not complete).
    Read { key: Value, value: Option<Value> },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    Fail,
    Info,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub process: u64,
    pub invoked: u64,
    pub completed: Option<u64>,
    pub status: Status,
    pub ops: Vec<Micro>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ListAppend,
    Register,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Edge {
    Ww,
    Wr,
    Rw,
    Rt,
}

impl Edge {
    pub fn name(self) -> &'static str {
        match self {
            Edge::Ww => "ww",
            Edge::Wr => "wr",
            Edge::Rw => "rw",
            Edge::Rt => "rt",
        }
    }
}

/// One anomaly: its name, the transactions involved (a cycle's, in order: each
/// one precedes the next by `edges[i]`, the last the first), and the key that
/// explains each edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    pub name: String,
    pub transactions: Vec<usize>,
    pub edges: Vec<Edge>,
    pub keys: Vec<Value>,
}

/// Every edge, adjacency by source: `(target, kind, key)`.
type Graph = Vec<Vec<(usize, Edge, Value)>>;

/// The anomalies of `history` (empty: serializable; strict too, with `realtime`).
pub fn check(history: &[Transaction], kind: Kind, realtime: bool) -> Vec<Anomaly> {
    let mut anomalies = Vec::new();
    let mut graph: Graph = vec![Vec::new(); history.len()];
    match kind {
        Kind::ListAppend => list_append_edges(history, &mut graph, &mut anomalies),
        Kind::Register => register_edges(history, &mut graph, &mut anomalies),
    }
    if realtime {
        realtime_edges(history, &mut graph);
    }
    for graph_edges in graph.iter_mut() {
        graph_edges.sort_by_key(|&(to, edge, _)| (to, edge));
        graph_edges.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    }
    cycles(&graph, realtime, &mut anomalies);
    anomalies
}

fn committed(t: &Transaction) -> bool {
    t.status == Status::Ok
}

fn add(graph: &mut Graph, from: usize, to: usize, edge: Edge, key: &Value) {
    if from != to {
        graph[from].push((to, edge, key.clone()));
    }
}

/// Who wrote each value of each key, and whether it was that transaction's last
/// write of the key: `writers[key][value] = (transaction, last)`.
type Writers<'h> = HashMap<&'h Value, HashMap<&'h Value, (usize, bool)>>;

fn writers(history: &[Transaction]) -> Writers<'_> {
    let mut writers: Writers<'_> = HashMap::default();
    for (t, txn) in history.iter().enumerate() {
        let mut last_of_key: HashMap<&Value, &Value> = HashMap::default();
        for op in &txn.ops {
            if let Micro::Write { key, value } = op {
                last_of_key.insert(key, value);
            }
        }
        for op in &txn.ops {
            if let Micro::Write { key, value } = op {
                let last = last_of_key.get(key) == Some(&value);
                writers.entry(key).or_default().insert(value, (t, last));
            }
        }
    }
    writers
}

fn writer_of(writers: &Writers<'_>, key: &Value, value: &Value) -> Option<(usize, bool)> {
    writers.get(key)?.get(value).copied()
}

fn read_anomaly(
    anomalies: &mut Vec<Anomaly>,
    name: &str,
    reader: usize,
    writer: usize,
    key: &Value,
) {
    if anomalies.iter().any(|a| a.name == name) {
        return; // one example of each is enough
    }
    anomalies.push(Anomaly {
        name: name.to_string(),
        transactions: vec![writer, reader],
        edges: vec![Edge::Wr],
        keys: vec![key.clone()],
    });
}

fn list_append_edges(history: &[Transaction], graph: &mut Graph, anomalies: &mut Vec<Anomaly>) {
    let writers = writers(history);
    // The version order per key: the longest committed read; every other read
    // must be a prefix of it.
    let mut longest: HashMap<&Value, (usize, &[Value])> = HashMap::default();
    for (t, txn) in history.iter().enumerate().filter(|(_, t)| committed(t)) {
        for op in &txn.ops {
            if let Micro::Read {
                key,
                value: Some(Value::Coll(items)),
            } = op
            {
                let entry = longest.entry(key).or_insert((t, &items[..]));
                if items.len() > entry.1.len() {
                    *entry = (t, &items[..]);
                }
            }
        }
    }
    let mut incompatible = false;
    for txn in history.iter().filter(|t| committed(t)) {
        for op in &txn.ops {
            if let Micro::Read {
                key,
                value: Some(Value::Coll(items)),
            } = op
            {
                let order = longest[key].1;
                if !incompatible && order[..items.len()] != items[..] {
                    incompatible = true;
                    let other = longest[key].0;
                    let me = history
                        .iter()
                        .position(|t| std::ptr::eq(t, txn))
                        .unwrap_or(0);
                    anomalies.push(Anomaly {
                        name: "incompatible-order".into(),
                        transactions: vec![me, other],
                        edges: vec![],
                        keys: vec![key.clone()],
                    });
                }
            }
        }
    }
    // ww: consecutive versions' writers.
    for (key, (_, order)) in &longest {
        for pair in order.windows(2) {
            let a = writer_of(&writers, key, &pair[0]);
            let b = writer_of(&writers, key, &pair[1]);
            if let (Some((a, _)), Some((b, _))) = (a, b) {
                if committed(&history[a]) && committed(&history[b]) {
                    add(graph, a, b, Edge::Ww, key);
                }
            }
        }
    }
    // wr and rw from each committed read; G1a and G1b from what it saw.
    let any_failed = history.iter().any(|t| t.status == Status::Fail);
    for (t, txn) in history.iter().enumerate().filter(|(_, t)| committed(t)) {
        for op in &txn.ops {
            let Micro::Read {
                key,
                value: Some(Value::Coll(items)),
            } = op
            else {
                continue;
            };
            for item in items.iter().filter(|_| any_failed) {
                if let Some((w, _)) = writer_of(&writers, key, item) {
                    if history[w].status == Status::Fail {
                        read_anomaly(anomalies, "G1a", t, w, key);
                    }
                }
            }
            let order = longest[key].1;
            if let Some(last) = items.last() {
                if let Some((w, was_last)) = writer_of(&writers, key, last) {
                    if !was_last && w != t {
                        read_anomaly(anomalies, "G1b", t, w, key);
                    }
                    if committed(&history[w]) {
                        add(graph, w, t, Edge::Wr, key);
                    }
                }
            }
            // The version after the one read, if any, was written by someone who
            // overwrote what this transaction saw.
            if let Some(next) = order.get(items.len()) {
                if let Some((w, _)) = writer_of(&writers, key, next) {
                    if committed(&history[w]) {
                        add(graph, t, w, Edge::Rw, key);
                    }
                }
            }
        }
    }
}

fn register_edges(history: &[Transaction], graph: &mut Graph, anomalies: &mut Vec<Anomaly>) {
    let writers = writers(history);
    // Versions that are proven to follow one another: (key, earlier) -> writers of
    // later versions; `Nil` is the initial version.
    let mut next_versions: HashMap<(Value, Value), Vec<usize>> = HashMap::default();
    for (t, txn) in history.iter().enumerate().filter(|(_, t)| committed(t)) {
        let mut seen: HashMap<&Value, &Value> = HashMap::default();
        for op in &txn.ops {
            match op {
                Micro::Read {
                    key,
                    value: Some(value),
                } => {
                    seen.entry(key).or_insert(value);
                }
                Micro::Write { key, .. } => {
                    if let Some(read) = seen.get(key) {
                        next_versions
                            .entry((key.clone(), (*read).clone()))
                            .or_default()
                            .push(t);
                    }
                    seen.entry(key).or_insert(&Value::Nil);
                }
                _ => {}
            }
        }
    }
    for (t, txn) in history.iter().enumerate().filter(|(_, t)| committed(t)) {
        let mut written: Vec<&Value> = Vec::new();
        for op in &txn.ops {
            match op {
                Micro::Write { key, .. } => written.push(key),
                Micro::Read {
                    key,
                    value: Some(value),
                } => {
                    // A read of its own earlier write says nothing about others.
                    if written.contains(&key) {
                        continue;
                    }
                    if *value != Value::Nil {
                        if let Some((w, was_last)) = writer_of(&writers, key, value) {
                            match history[w].status {
                                Status::Fail => read_anomaly(anomalies, "G1a", t, w, key),
                                _ if !was_last && w != t => {
                                    read_anomaly(anomalies, "G1b", t, w, key)
                                }
                                Status::Ok => add(graph, w, t, Edge::Wr, key),
                                Status::Info => {}
                            }
                        }
                    }
                    for &later in next_versions
                        .get(&(key.clone(), value.clone()))
                        .map_or(&[][..], Vec::as_slice)
                    {
                        add(graph, t, later, Edge::Rw, key);
                        if *value != Value::Nil {
                            if let Some((w, _)) = writer_of(&writers, key, value) {
                                if committed(&history[w]) {
                                    add(graph, w, later, Edge::Ww, key);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// T1 completed before T2 was invoked: T1 rt T2. Only the transitive reduction's
/// frontier is added (each transaction to those that started after it completed
/// and before anything else completed after it), keeping the graph linear in size.
fn realtime_edges(history: &[Transaction], graph: &mut Graph) {
    let mut done: Vec<(u64, usize)> = history
        .iter()
        .enumerate()
        .filter(|(_, t)| committed(t))
        .filter_map(|(i, t)| t.completed.map(|c| (c, i)))
        .collect();
    done.sort();
    let mut started: Vec<(u64, usize)> = history
        .iter()
        .enumerate()
        .filter(|(_, t)| committed(t))
        .map(|(i, t)| (t.invoked, i))
        .collect();
    started.sort();
    // For each completion, link it to the transactions invoked after it but before
    // the next completion; chains of rt edges then give every rt order.
    for (n, &(completed, t)) in done.iter().enumerate() {
        let until = done.get(n + 1).map_or(u64::MAX, |d| d.0);
        let from = started.partition_point(|&(inv, _)| inv <= completed);
        for &(invoked, s) in &started[from..] {
            if invoked > until {
                break;
            }
            add(graph, t, s, Edge::Rt, &Value::Nil);
        }
        if let Some(&(_, next)) = done.get(n + 1) {
            add(graph, t, next, Edge::Rt, &Value::Nil);
        }
    }
}

/// Strongly connected components (Tarjan, iterative): the component of each node.
fn components(graph: &Graph, allowed: impl Fn(Edge) -> bool) -> Vec<usize> {
    let n = graph.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut component = vec![usize::MAX; n];
    let mut stack = Vec::new();
    let mut counter = 0;
    let mut components = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = counter;
        low[root] = counter;
        counter += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (node, ref mut next)) = work.last_mut() {
            if let Some(&(to, edge, _)) = graph[node].get(*next) {
                *next += 1;
                if !allowed(edge) {
                    continue;
                }
                if index[to] == usize::MAX {
                    index[to] = counter;
                    low[to] = counter;
                    counter += 1;
                    stack.push(to);
                    on_stack[to] = true;
                    work.push((to, 0));
                } else if on_stack[to] {
                    low[node] = low[node].min(index[to]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[node]);
                }
                if low[node] == index[node] {
                    while let Some(member) = stack.pop() {
                        on_stack[member] = false;
                        component[member] = components;
                        if member == node {
                            break;
                        }
                    }
                    components += 1;
                }
            }
        }
    }
    component
}

/// The shortest path from `from` to `to` (two different nodes) over `allowed`
/// edges, staying in `from`'s component: the nodes after `from` (ending with `to`),
/// the edges and the keys that explain them.
fn shortest_path(
    graph: &Graph,
    component: &[usize],
    from: usize,
    to: usize,
    allowed: &impl Fn(Edge) -> bool,
) -> Option<(Vec<usize>, Vec<Edge>, Vec<Value>)> {
    let mut previous: HashMap<usize, (usize, Edge, Value)> = HashMap::default();
    let mut queue = VecDeque::from([from]);
    'bfs: while let Some(node) = queue.pop_front() {
        for (next, edge, key) in &graph[node] {
            if !allowed(*edge) || component[*next] != component[from] || *next == from {
                continue;
            }
            if previous.contains_key(next) {
                continue;
            }
            previous.insert(*next, (node, *edge, key.clone()));
            if *next == to {
                break 'bfs;
            }
            queue.push_back(*next);
        }
    }
    previous.get(&to)?;
    let (mut nodes, mut edges, mut keys) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = to;
    while at != from {
        let (back, edge, key) = previous[&at].clone();
        nodes.push(at);
        edges.push(edge);
        keys.push(key);
        at = back;
    }
    nodes.reverse();
    edges.reverse();
    keys.reverse();
    Some((nodes, edges, keys))
}

/// A kind of cycle to look for: the edge it must take, and the edges it may come
/// back over.
type CycleClass = (Edge, fn(Edge) -> bool);

/// How many searches a cycle class may run (each a BFS within one component).
const SEARCHES: usize = 2_000;

fn ww(e: Edge) -> bool {
    e == Edge::Ww
}

fn ww_wr(e: Edge) -> bool {
    matches!(e, Edge::Ww | Edge::Wr)
}

fn any_dependency(e: Edge) -> bool {
    matches!(e, Edge::Ww | Edge::Wr | Edge::Rw)
}

/// What a cycle with these edges is.
fn classify(edges: &[Edge]) -> &'static str {
    let rw = edges.iter().filter(|e| **e == Edge::Rw).count();
    if rw == 0 && !edges.contains(&Edge::Wr) {
        "G0"
    } else if rw == 0 {
        "G1c"
    } else if rw == 1 {
        "G-single"
    } else {
        "G2"
    }
}

fn cycles(graph: &Graph, realtime: bool, anomalies: &mut Vec<Anomaly>) {
    // Most histories have no cycle at all: one pass over every edge says so.
    let everything = components(graph, |_| true);
    let mut sizes: HashMap<usize, usize> = HashMap::default();
    for &c in &everything {
        *sizes.entry(c).or_default() += 1;
    }
    if sizes.values().all(|&n| n < 2) {
        return;
    }
    // (the edge a cycle must take, the edges it may come back over)
    let classes: [CycleClass; 4] = [
        (Edge::Ww, ww),
        (Edge::Wr, ww_wr),
        (Edge::Rw, ww_wr),
        (Edge::Rw, any_dependency),
    ];
    for with_rt in [false, true] {
        if with_rt && !realtime {
            break;
        }
        for (first, back) in classes {
            let allowed = |e: Edge| back(e) || e == first || (with_rt && e == Edge::Rt);
            let component = components(graph, allowed);
            let mut best: Option<Anomaly> = None;
            let mut searches = 0;
            'search: for (from, edges) in graph.iter().enumerate() {
                for (to, edge, key) in edges {
                    if *edge != first || component[*to] != component[from] {
                        continue;
                    }
                    searches += 1;
                    if searches > SEARCHES {
                        break 'search;
                    }
                    let Some((nodes, path, keys)) =
                        shortest_path(graph, &component, *to, from, &allowed)
                    else {
                        continue;
                    };
                    if best
                        .as_ref()
                        .is_some_and(|b| b.transactions.len() <= nodes.len())
                    {
                        continue;
                    }
                    // from -edge-> to -path...-> from: the transactions from, to, ...
                    let mut transactions = vec![from, *to];
                    transactions.extend(&nodes[..nodes.len() - 1]);
                    let mut all_edges = vec![*edge];
                    all_edges.extend(path);
                    let mut all_keys = vec![key.clone()];
                    all_keys.extend(keys);
                    let name = classify(&all_edges);
                    let uses_rt = all_edges.contains(&Edge::Rt);
                    if uses_rt != with_rt {
                        continue; // a plain cycle is found without rt edges
                    }
                    let name = if uses_rt {
                        format!("{name}-realtime")
                    } else {
                        name.to_string()
                    };
                    best = Some(Anomaly {
                        name,
                        transactions,
                        edges: all_edges,
                        keys: all_keys,
                    });
                }
            }
            if let Some(found) = best {
                if !anomalies.iter().any(|a| a.name == found.name) {
                    anomalies.push(found);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(i: i64) -> Value {
        Value::Int(i)
    }

    fn key(k: &str) -> Value {
        Value::Sym(k.bytes().next().unwrap_or(0) as u64)
    }

    fn append(k: &str, v: i64) -> Micro {
        Micro::Write {
            key: key(k),
            value: int(v),
        }
    }

    fn read(k: &str, items: &[i64]) -> Micro {
        Micro::Read {
            key: key(k),
            value: Some(Value::Coll(items.iter().map(|&i| int(i)).collect())),
        }
    }

    fn txn(invoked: u64, completed: u64, ops: Vec<Micro>) -> Transaction {
        Transaction {
            process: invoked,
            invoked,
            completed: Some(completed),
            status: Status::Ok,
            ops,
        }
    }

    fn names(history: &[Transaction], kind: Kind, realtime: bool) -> Vec<String> {
        let mut names: Vec<String> = check(history, kind, realtime)
            .into_iter()
            .map(|a| a.name)
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_serial_history_has_no_anomaly() {
        let history = vec![
            txn(0, 1, vec![append("x", 1), read("y", &[])]),
            txn(2, 3, vec![read("x", &[1]), append("y", 2)]),
            txn(4, 5, vec![read("x", &[1]), read("y", &[2])]),
        ];
        assert!(names(&history, Kind::ListAppend, true).is_empty());
    }

    #[test]
    fn g0_two_transactions_overwrite_each_other() {
        let history = vec![
            txn(0, 9, vec![append("x", 1), append("y", 2)]),
            txn(0, 9, vec![append("x", 3), append("y", 4)]),
            txn(10, 11, vec![read("x", &[1, 3]), read("y", &[4, 2])]),
        ];
        let anomalies = check(&history, Kind::ListAppend, false);
        let g0 = anomalies.iter().find(|a| a.name == "G0").expect("G0");
        assert_eq!(g0.edges, vec![Edge::Ww, Edge::Ww]);
        let mut members = g0.transactions.clone();
        members.sort();
        assert_eq!(members, vec![0, 1]);
    }

    #[test]
    fn g1c_each_reads_the_others_write() {
        let history = vec![
            txn(0, 9, vec![append("x", 1), read("y", &[2])]),
            txn(0, 9, vec![append("y", 2), read("x", &[1])]),
        ];
        assert_eq!(names(&history, Kind::ListAppend, false), vec!["G1c"]);
    }

    #[test]
    fn g_single_a_read_skew() {
        let history = vec![
            txn(0, 9, vec![read("x", &[]), read("y", &[1])]),
            txn(0, 9, vec![append("x", 2), append("y", 1)]),
            txn(10, 11, vec![read("x", &[2])]),
        ];
        assert_eq!(names(&history, Kind::ListAppend, false), vec!["G-single"]);
    }

    #[test]
    fn g2_a_write_skew() {
        let history = vec![
            txn(0, 9, vec![read("x", &[]), append("y", 1)]),
            txn(0, 9, vec![read("y", &[]), append("x", 2)]),
            txn(10, 11, vec![read("x", &[2]), read("y", &[1])]),
        ];
        let anomalies = check(&history, Kind::ListAppend, false);
        assert_eq!(anomalies.len(), 1, "{anomalies:?}");
        assert_eq!(anomalies[0].name, "G2");
        assert_eq!(anomalies[0].edges, vec![Edge::Rw, Edge::Rw]);
    }

    #[test]
    fn aborted_and_intermediate_reads() {
        let mut aborted = txn(0, 1, vec![append("x", 1)]);
        aborted.status = Status::Fail;
        let history = vec![aborted, txn(2, 3, vec![read("x", &[1])])];
        assert_eq!(names(&history, Kind::ListAppend, false), vec!["G1a"]);
        let history = vec![
            txn(0, 9, vec![append("x", 1), append("x", 2)]),
            txn(0, 9, vec![read("x", &[1])]),
            txn(10, 11, vec![read("x", &[1, 2])]),
        ];
        assert!(names(&history, Kind::ListAppend, false).contains(&"G1b".to_string()));
    }

    #[test]
    fn reads_that_disagree_on_the_order() {
        let history = vec![
            txn(0, 9, vec![append("x", 1)]),
            txn(0, 9, vec![append("x", 2)]),
            txn(10, 11, vec![read("x", &[1, 2])]),
            txn(10, 11, vec![read("x", &[2, 1])]),
        ];
        assert!(
            names(&history, Kind::ListAppend, false).contains(&"incompatible-order".to_string())
        );
    }

    #[test]
    fn a_stale_read_after_a_commit_is_only_a_realtime_anomaly() {
        let history = vec![
            txn(0, 10, vec![append("x", 1)]),
            txn(20, 30, vec![read("x", &[])]),
            txn(40, 50, vec![read("x", &[1])]),
        ];
        assert!(
            names(&history, Kind::ListAppend, false).is_empty(),
            "serializable"
        );
        assert_eq!(
            names(&history, Kind::ListAppend, true),
            vec!["G-single-realtime"]
        );
    }

    #[test]
    fn registers_infer_what_they_can() {
        let w = |k: &str, v: i64| Micro::Write {
            key: key(k),
            value: int(v),
        };
        let r = |k: &str, v: Option<i64>| Micro::Read {
            key: key(k),
            value: Some(v.map_or(Value::Nil, int)),
        };
        // A lost update: both read the initial version, both write.
        let history = vec![
            txn(0, 9, vec![r("x", None), w("x", 1)]),
            txn(0, 9, vec![r("x", None), w("x", 2)]),
        ];
        assert_eq!(names(&history, Kind::Register, false), vec!["G2"]);
        // Reads of each other's writes: G1c.
        let history = vec![
            txn(0, 9, vec![w("x", 1), r("y", Some(2))]),
            txn(0, 9, vec![w("y", 2), r("x", Some(1))]),
        ];
        assert_eq!(names(&history, Kind::Register, false), vec!["G1c"]);
        // Serial.
        let history = vec![
            txn(0, 1, vec![w("x", 1)]),
            txn(2, 3, vec![r("x", Some(1)), w("x", 2)]),
            txn(4, 5, vec![r("x", Some(2))]),
        ];
        assert!(names(&history, Kind::Register, true).is_empty());
    }
}
