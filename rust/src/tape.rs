//! The choice tape: every nondeterministic decision of a universe, recorded as its
//! deviations from the canonical choice 0.
//!
//! A decision is one point where there was a real alternative. Choice 0 is canonical
//! (the oldest ready callback, no fault, the minimum). A tape stores only the
//! decisions whose value was not 0, as `(decision index, value)` pairs in increasing
//! index order, so a FIFO universe of any length has an empty tape.
//!
//! The same tape is also a *draw sequence* (the sparse encoding that Hypothesis sees):
//! `more?` (0/1), then for each deviation `gap` (decisions skipped since the previous
//! deviation) and `value` (1 ..= bound-1), then `more?` again. FIFO is the single
//! draw `[0]`.
//!
//! Serialised forms: JSON (human-readable artifact) and CBOR (compact), each carrying
//! a format marker and version so a foreign, newer, corrupt or truncated file is a
//! named error.

use serde::{Deserialize, Serialize};
use std::fmt;

pub const TAPE_FORMAT: &str = "simloom.tape";
/// The CBOR form starts with this short marker instead of the long format name.
pub const TAPE_CBOR_MAGIC: &str = "sltp";
pub const TAPE_VERSION: u64 = 1;
/// Largest gap the draw encoding can express between two deviations.
pub const MAX_GAP: u64 = u32::MAX as u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeError {
    /// Not a simloom tape at all.
    Foreign(String),
    /// Written by a newer simloom.
    NewerVersion { found: u64, supported: u64 },
    /// Structurally a tape, but its content is invalid.
    Corrupt(String),
    /// The bytes end before the tape does.
    Truncated(String),
}

impl fmt::Display for TapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TapeError::Foreign(why) => write!(f, "not a simloom tape: {why}"),
            TapeError::NewerVersion { found, supported } => write!(
                f,
                "tape format version {found} is newer than this simloom supports (version {supported}); upgrade simloom to replay it"
            ),
            TapeError::Corrupt(why) => write!(f, "corrupt simloom tape: {why}"),
            TapeError::Truncated(why) => write!(f, "truncated simloom tape: {why}"),
        }
    }
}

impl std::error::Error for TapeError {}

/// One recorded deviation: at decision `index` the choice was `value` (never 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deviation {
    pub index: u64,
    pub value: u64,
}

/// Deviations between two checkpoints of [`Tape`]'s random-access index.
const CHECKPOINT_EVERY: usize = 64;

/// The deviations, stored compactly: per deviation the LEB128 varints of its gap
/// (decisions skipped since the previous deviation) and its value, so a random walk's
/// deviation (gap 0-2, value below 128) costs two bytes instead of sixteen. A tape of
/// millions of deviations stays a few megabytes, and copying it (to Python, into a
/// replay) is one `memcpy`. Every [`CHECKPOINT_EVERY`]-th deviation's byte offset is
/// kept, so the `i`-th deviation is found without decoding the whole tape.
///
/// The encoding of a deviation list is unique (minimal varints), so equal tapes have
/// equal fields and the derived `Eq` and `Hash` compare deviations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Tape {
    encoded: Vec<u8>,
    len: usize,
    /// The decision after the last deviation (where the next gap counts from).
    next_index: u64,
    /// Where deviation `k * CHECKPOINT_EVERY` starts: (byte offset, gap base).
    checkpoints: Vec<Position>,
}

/// A place in a tape between two deviations: where the next one is encoded, the
/// decision its gap counts from, and how many deviations lie before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Position {
    offset: usize,
    next_index: u64,
    ordinal: usize,
}

impl Position {
    /// How many deviations lie before this position.
    pub fn ordinal(&self) -> usize {
        self.ordinal
    }
}

#[derive(Serialize, Deserialize)]
struct JsonTape<P> {
    format: String,
    version: u64,
    deviations: P,
}

/// Serialises a tape's deviations as a sequence of `[index, value]` pairs straight
/// from the compact storage (no intermediate list).
struct Pairs<'a>(&'a Tape);

impl Serialize for Pairs<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|d| (d.index, d.value)))
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Decode the varint at `*offset`; the bytes are the tape's own, so always valid.
#[inline]
fn read_varint(bytes: &[u8], offset: &mut usize) -> u64 {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[*offset];
        *offset += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return value;
        }
        shift += 7;
    }
}

/// The deviations of a tape in decision order, decoded as they are read.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    tape: &'a Tape,
    at: Position,
}

impl Iterator for Iter<'_> {
    type Item = Deviation;

    #[inline]
    fn next(&mut self) -> Option<Deviation> {
        let (deviation, after) = self.tape.read(&self.at)?;
        self.at = after;
        Some(deviation)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.tape.len - self.at.ordinal;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Tape {
    pub fn new() -> Self {
        Tape::default()
    }

    /// Build a tape from deviations; indexes must strictly increase and values be ≥ 1.
    pub fn from_deviations(pairs: impl IntoIterator<Item = (u64, u64)>) -> Result<Tape, TapeError> {
        let mut tape = Tape::new();
        for (index, value) in pairs {
            tape.check_next(index, value)?;
            tape.push(index, value);
        }
        Ok(tape)
    }

    fn check_next(&self, index: u64, value: u64) -> Result<(), TapeError> {
        if value == 0 {
            return Err(TapeError::Corrupt(format!(
                "deviation at decision {index} has value 0 (the canonical choice is never recorded)"
            )));
        }
        if index == u64::MAX {
            // No engine counts that many decisions; refusing it keeps `index + 1`
            // (the next gap's base) in range.
            return Err(TapeError::Corrupt(format!(
                "deviation index {index} is out of range (the largest is {})",
                u64::MAX - 1
            )));
        }
        if self.len > 0 && index < self.next_index {
            return Err(TapeError::Corrupt(format!(
                "deviation indexes must increase, got {index} after {}",
                self.next_index - 1
            )));
        }
        Ok(())
    }

    /// Append a checked deviation.
    #[inline]
    fn push(&mut self, index: u64, value: u64) {
        if self.len.is_multiple_of(CHECKPOINT_EVERY) {
            self.checkpoints.push(self.end());
        }
        push_varint(&mut self.encoded, index - self.next_index);
        push_varint(&mut self.encoded, value);
        self.next_index = index + 1;
        self.len += 1;
    }

    /// Record a decision's outcome; zeros are not stored.
    #[inline]
    pub fn record(&mut self, index: u64, value: u64) {
        if value != 0 {
            debug_assert!(self.len == 0 || index >= self.next_index);
            self.push(index, value);
        }
    }

    /// The position before the first deviation.
    pub fn start(&self) -> Position {
        Position::default()
    }

    /// The position after the last deviation.
    pub fn end(&self) -> Position {
        Position {
            offset: self.encoded.len(),
            next_index: self.next_index,
            ordinal: self.len,
        }
    }

    /// The deviation at `at` and the position after it (`None` at the end).
    #[inline]
    pub fn read(&self, at: &Position) -> Option<(Deviation, Position)> {
        if at.ordinal >= self.len {
            return None;
        }
        let mut offset = at.offset;
        let index = at.next_index + read_varint(&self.encoded, &mut offset);
        let value = read_varint(&self.encoded, &mut offset);
        let after = Position {
            offset,
            next_index: index + 1,
            ordinal: at.ordinal + 1,
        };
        Some((Deviation { index, value }, after))
    }

    /// The position before deviation number `ordinal` (at most [`CHECKPOINT_EVERY`]
    /// deviations are decoded to find it); `None` past the end.
    pub fn position(&self, ordinal: usize) -> Option<Position> {
        if ordinal > self.len {
            return None;
        }
        if ordinal == self.len {
            return Some(self.end());
        }
        let mut at = self.checkpoints[ordinal / CHECKPOINT_EVERY];
        while at.ordinal < ordinal {
            at = self.read(&at)?.1;
        }
        Some(at)
    }

    /// Deviation number `ordinal` (0 = the first), if there is one.
    pub fn get(&self, ordinal: usize) -> Option<Deviation> {
        self.read(&self.position(ordinal)?)
            .map(|(deviation, _)| deviation)
    }

    /// The deviations in decision order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(self.start())
    }

    /// The deviations from `at` on.
    pub fn iter_from(&self, at: Position) -> Iter<'_> {
        Iter { tape: self, at }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of memory the tape holds (its buffers' capacities), for `sys.getsizeof`.
    pub fn heap_bytes(&self) -> usize {
        self.encoded.capacity() + self.checkpoints.capacity() * std::mem::size_of::<Position>()
    }

    /// Give back the spare capacity of the growing buffers (a finished universe's
    /// tape is read, not appended to).
    pub fn shrink_to_fit(&mut self) {
        self.encoded.shrink_to_fit();
        self.checkpoints.shrink_to_fit();
    }

    /// The sparse draw sequence Hypothesis records for this tape.
    pub fn to_draws(&self) -> Vec<u64> {
        let mut draws = Vec::with_capacity(1 + 3 * self.len);
        let mut next_index = 0u64;
        for deviation in self.iter() {
            draws.push(1);
            draws.push(deviation.index - next_index);
            draws.push(deviation.value);
            next_index = deviation.index + 1;
        }
        draws.push(0);
        draws
    }

    /// Inverse of [`Tape::to_draws`].
    pub fn from_draws(draws: &[u64]) -> Result<Tape, TapeError> {
        let mut tape = Tape::new();
        let mut next_index = 0u64;
        let mut cursor = draws.iter();
        loop {
            match cursor.next() {
                Some(0) => break,
                Some(1) => {}
                Some(other) => {
                    return Err(TapeError::Corrupt(format!(
                        "`more?` draw must be 0 or 1, got {other}"
                    )))
                }
                None => {
                    return Err(TapeError::Truncated(
                        "draw sequence ends without a final `more? = 0`".into(),
                    ))
                }
            }
            let (Some(&gap), Some(&value)) = (cursor.next(), cursor.next()) else {
                return Err(TapeError::Truncated(
                    "a deviation is missing its gap or value".into(),
                ));
            };
            let index = next_index
                .checked_add(gap)
                .ok_or_else(|| TapeError::Corrupt("decision index overflows".into()))?;
            tape.check_next(index, value)?;
            tape.push(index, value);
            next_index = index + 1;
        }
        if cursor.next().is_some() {
            return Err(TapeError::Corrupt(
                "draws continue after the final `more? = 0`".into(),
            ));
        }
        Ok(tape)
    }

    pub fn to_json(&self) -> String {
        let doc = JsonTape {
            format: TAPE_FORMAT.to_string(),
            version: TAPE_VERSION,
            deviations: Pairs(self),
        };
        serde_json::to_string(&doc).expect("a tape always serialises")
    }

    pub fn from_json(text: &str) -> Result<Tape, TapeError> {
        Tape::from_json_document(text).map(|(tape, _)| tape)
    }

    /// Decode a JSON tape and return the document's other top-level fields too
    /// (an artifact's test id, seed, digest...), so that a reader parses it once.
    pub fn from_json_document(
        text: &str,
    ) -> Result<(Tape, serde_json::Map<String, serde_json::Value>), TapeError> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                TapeError::Truncated(format!("JSON ends early ({e})"))
            } else {
                TapeError::Foreign(format!("not valid JSON ({e})"))
            }
        })?;
        let serde_json::Value::Object(mut object) = value else {
            return Err(TapeError::Foreign(
                "the JSON document is not an object".into(),
            ));
        };
        match object.get("format").and_then(|f| f.as_str()) {
            Some(TAPE_FORMAT) => {}
            Some(other) => {
                return Err(TapeError::Foreign(format!(
                    "format is {other:?}, expected {TAPE_FORMAT:?}"
                )))
            }
            None => {
                return Err(TapeError::Foreign(format!(
                    "no \"format\": {TAPE_FORMAT:?} field"
                )))
            }
        }
        let version = object
            .get("version")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| TapeError::Corrupt("missing or non-integer \"version\"".into()))?;
        check_version(version)?;
        let Some(serde_json::Value::Array(list)) = object.remove("deviations") else {
            return Err(TapeError::Corrupt("missing \"deviations\" list".into()));
        };
        let mut pairs = Vec::with_capacity(list.len());
        for item in &list {
            let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                TapeError::Corrupt(format!("each deviation must be [index, value], got {item}"))
            })?;
            match (pair[0].as_u64(), pair[1].as_u64()) {
                (Some(i), Some(v)) => pairs.push((i, v)),
                _ => {
                    return Err(TapeError::Corrupt(format!(
                        "deviation {item} is not two non-negative integers"
                    )))
                }
            }
        }
        Ok((Tape::from_deviations(pairs)?, object))
    }

    pub fn to_cbor(&self) -> Vec<u8> {
        let doc = (TAPE_CBOR_MAGIC, TAPE_VERSION, Pairs(self));
        let mut out = Vec::new();
        ciborium::ser::into_writer(&doc, &mut out).expect("a tape always serialises");
        out
    }

    pub fn from_cbor(bytes: &[u8]) -> Result<Tape, TapeError> {
        use ciborium::value::Value;
        // Every CBOR tape starts with these bytes: an array of 3, then the marker.
        // Data that ends inside them is a truncated tape; data that differs from
        // them is not a tape at all (even if it happens to look like CBOR).
        // (The array length itself is checked after decoding: a wrong count is a
        // corrupt tape, not a foreign file.)
        let mut header = vec![0x83, 0x60 | TAPE_CBOR_MAGIC.len() as u8];
        header.extend_from_slice(TAPE_CBOR_MAGIC.as_bytes());
        let shared = bytes.len().min(header.len());
        let is_array = |byte: u8| byte >> 5 == 4;
        if !is_array(bytes[0]) || bytes[1..shared] != header[1..shared] {
            return Err(TapeError::Foreign(format!(
                "neither a JSON tape (which starts with '{{') nor a CBOR tape (which starts with the {TAPE_CBOR_MAGIC:?} marker)"
            )));
        }
        if bytes.len() < header.len() {
            return Err(TapeError::Truncated(
                "CBOR data ends inside the tape marker".into(),
            ));
        }
        let mut rest = bytes;
        let value: Value = ciborium::de::from_reader(&mut rest).map_err(|e| match e {
            ciborium::de::Error::Io(_) => TapeError::Truncated("CBOR data ends early".into()),
            ciborium::de::Error::Syntax(at) => {
                TapeError::Foreign(format!("not CBOR (syntax error at byte {at})"))
            }
            other => TapeError::Foreign(format!("not a CBOR tape ({other})")),
        })?;
        if !rest.is_empty() {
            // A tape is exactly one CBOR item: bytes after it are a damaged or
            // concatenated file, never silently ignored.
            return Err(TapeError::Corrupt(format!(
                "{} trailing bytes after the CBOR tape",
                rest.len()
            )));
        }
        let items = value
            .as_array()
            .ok_or_else(|| TapeError::Foreign("the CBOR item is not an array".into()))?;
        if items.first().and_then(|m| m.as_text()) != Some(TAPE_CBOR_MAGIC) {
            return Err(TapeError::Foreign(format!(
                "missing the {TAPE_CBOR_MAGIC:?} marker"
            )));
        }
        let version = items
            .get(1)
            .and_then(|v| v.as_integer())
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| TapeError::Corrupt("missing or invalid version".into()))?;
        check_version(version)?;
        let list = items
            .get(2)
            .and_then(|d| d.as_array())
            .ok_or_else(|| TapeError::Corrupt("missing deviations array".into()))?;
        if items.len() != 3 {
            return Err(TapeError::Corrupt(format!(
                "expected 3 fields, found {}",
                items.len()
            )));
        }
        let mut pairs = Vec::with_capacity(list.len());
        for item in list {
            let pair = item.as_array().filter(|p| p.len() == 2).ok_or_else(|| {
                TapeError::Corrupt("each deviation must be [index, value]".into())
            })?;
            let as_u64 = |v: &Value| v.as_integer().and_then(|i| u64::try_from(i).ok());
            match (as_u64(&pair[0]), as_u64(&pair[1])) {
                (Some(i), Some(v)) => pairs.push((i, v)),
                _ => {
                    return Err(TapeError::Corrupt(
                        "a deviation is not two non-negative integers".into(),
                    ))
                }
            }
        }
        Tape::from_deviations(pairs)
    }

    /// Decode either serialised form, telling them apart by the first byte.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tape, TapeError> {
        Tape::from_bytes_document(bytes).map(|(tape, _)| tape)
    }

    /// [`Tape::from_bytes`], plus a JSON document's other top-level fields (none
    /// for CBOR).
    pub fn from_bytes_document(
        bytes: &[u8],
    ) -> Result<(Tape, serde_json::Map<String, serde_json::Value>), TapeError> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        match first {
            None => Err(TapeError::Truncated("the tape file is empty".into())),
            Some(b'{') => {
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| TapeError::Foreign("JSON tape is not valid UTF-8".into()))?;
                Tape::from_json_document(text)
            }
            Some(_) => Ok((Tape::from_cbor(bytes)?, serde_json::Map::new())),
        }
    }
}

fn check_version(version: u64) -> Result<(), TapeError> {
    if version > TAPE_VERSION {
        return Err(TapeError::NewerVersion {
            found: version,
            supported: TAPE_VERSION,
        });
    }
    if version == 0 {
        return Err(TapeError::Corrupt("version 0 does not exist".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Tape {
        Tape::from_deviations([(0, 1), (7, 3), (8, 2), (1_000_000, 41)]).unwrap()
    }

    #[test]
    fn fifo_tape_is_a_single_draw_and_tiny_in_cbor() {
        let tape = Tape::new();
        assert_eq!(tape.to_draws(), vec![0]);
        assert!(tape.to_cbor().len() <= 16, "{} bytes", tape.to_cbor().len());
    }

    /// A random walk's deviations: most decisions deviate, by small values.
    fn random_walk(deviations: usize) -> Tape {
        let mut tape = Tape::new();
        let mut state = 7u64;
        let mut index = 0u64;
        while tape.len() < deviations {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            tape.record(index, (state >> 61) % 4);
            index += 1;
        }
        tape
    }

    #[test]
    fn a_random_walk_tape_costs_about_two_bytes_per_deviation() {
        let mut tape = random_walk(1_000_000);
        tape.shrink_to_fit();
        let per_deviation = tape.heap_bytes() as f64 / tape.len() as f64;
        assert!(
            per_deviation <= 3.0,
            "{per_deviation:.2} bytes per deviation"
        );
        // Far from the sixteen bytes of an (index, value) pair of u64s.
        assert!(tape.clone().heap_bytes() <= tape.heap_bytes());
    }

    #[test]
    fn random_access_and_iteration_agree() {
        let tape = random_walk(1_000);
        let all: Vec<Deviation> = tape.iter().collect();
        assert_eq!(all.len(), tape.len());
        assert_eq!(tape.iter().len(), tape.len());
        for (ordinal, deviation) in all.iter().enumerate() {
            assert_eq!(tape.get(ordinal), Some(*deviation));
            let at = tape.position(ordinal).unwrap();
            assert_eq!(at.ordinal(), ordinal);
            assert_eq!(tape.iter_from(at).next(), Some(*deviation));
        }
        assert_eq!(tape.get(tape.len()), None);
        assert_eq!(tape.position(tape.len()), Some(tape.end()));
        assert_eq!(tape.position(tape.len() + 1), None);
        assert!(all
            .windows(2)
            .all(|w| w[0].index < w[1].index && w[0].value != 0));
    }

    #[test]
    fn the_same_deviations_make_equal_tapes_whichever_way_they_were_built() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let recorded = random_walk(500);
        let pairs: Vec<(u64, u64)> = recorded.iter().map(|d| (d.index, d.value)).collect();
        let rebuilt = Tape::from_deviations(pairs).unwrap();
        let mut grown = recorded.clone();
        grown.shrink_to_fit();
        for other in [
            rebuilt,
            Tape::from_draws(&recorded.to_draws()).unwrap(),
            Tape::from_cbor(&recorded.to_cbor()).unwrap(),
            grown,
        ] {
            assert_eq!(other, recorded);
            let hash = |tape: &Tape| {
                let mut hasher = DefaultHasher::new();
                tape.hash(&mut hasher);
                hasher.finish()
            };
            assert_eq!(hash(&other), hash(&recorded));
        }
        assert_ne!(
            Tape::from_deviations([(0, 1)]).unwrap(),
            Tape::from_deviations([(0, 2)]).unwrap()
        );
    }

    #[test]
    fn large_indexes_and_values_round_trip() {
        let pairs = [(0, u64::MAX), (1, 1), (u64::MAX - 1, 1 << 40)];
        let tape = Tape::from_deviations(pairs).unwrap();
        let back: Vec<(u64, u64)> = tape.iter().map(|d| (d.index, d.value)).collect();
        assert_eq!(back, pairs);
        assert!(matches!(
            Tape::from_deviations([(u64::MAX, 1)]),
            Err(TapeError::Corrupt(_))
        ));
    }

    #[test]
    fn the_file_forms_are_those_of_version_1() {
        // The in-memory storage changed; the files did not (same bytes as before).
        let tape = Tape::from_deviations([(0, 1), (7, 3)]).unwrap();
        assert_eq!(
            tape.to_json(),
            r#"{"format":"simloom.tape","version":1,"deviations":[[0,1],[7,3]]}"#
        );
        assert_eq!(
            tape.to_cbor(),
            [0x83, 0x64, b's', b'l', b't', b'p', 0x01, 0x82, 0x82, 0x00, 0x01, 0x82, 0x07, 0x03]
        );
    }

    #[test]
    fn draws_round_trip() {
        let tape = sample();
        assert_eq!(
            tape.to_draws(),
            vec![1, 0, 1, 1, 6, 3, 1, 0, 2, 1, 999_991, 41, 0]
        );
        assert_eq!(Tape::from_draws(&tape.to_draws()).unwrap(), tape);
    }

    #[test]
    fn a_json_document_keeps_its_other_fields_for_the_reader() {
        let text = r#"{"format": "simloom.tape", "version": 1, "deviations": [[3, 1]],
                       "test": "t.py::t", "seed": 4}"#;
        let (tape, fields) = Tape::from_bytes_document(text.as_bytes()).unwrap();
        assert_eq!(tape, Tape::from_deviations([(3, 1)]).unwrap());
        assert_eq!(fields["test"], "t.py::t");
        assert_eq!(fields["seed"], 4);
        assert!(!fields.contains_key("deviations"));
        let (_, none) = Tape::from_bytes_document(&tape.to_cbor()).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn json_and_cbor_round_trip() {
        let tape = sample();
        assert_eq!(Tape::from_json(&tape.to_json()).unwrap(), tape);
        assert_eq!(Tape::from_cbor(&tape.to_cbor()).unwrap(), tape);
        assert_eq!(Tape::from_bytes(tape.to_json().as_bytes()).unwrap(), tape);
        assert_eq!(Tape::from_bytes(&tape.to_cbor()).unwrap(), tape);
    }

    #[test]
    fn cbor_with_trailing_bytes_is_corrupt() {
        let mut cbor = sample().to_cbor();
        cbor.push(0x00);
        assert!(matches!(
            Tape::from_cbor(&cbor),
            Err(TapeError::Corrupt(message)) if message.contains("1 trailing byte")
        ));
        let mut twice = sample().to_cbor();
        twice.extend(sample().to_cbor());
        assert!(matches!(
            Tape::from_bytes(&twice),
            Err(TapeError::Corrupt(_))
        ));
    }

    #[test]
    fn json_with_trailing_text_is_rejected() {
        let mut json = sample().to_json();
        json.push_str(" {}");
        assert!(Tape::from_json(&json).is_err());
    }

    #[test]
    fn bad_input_gives_named_errors() {
        let cbor = sample().to_cbor();
        assert!(matches!(
            Tape::from_cbor(&cbor[..cbor.len() - 2]),
            Err(TapeError::Truncated(_))
        ));
        let json = sample().to_json();
        assert!(matches!(
            Tape::from_json(&json[..json.len() - 3]),
            Err(TapeError::Truncated(_))
        ));
        assert!(matches!(
            Tape::from_bytes(b""),
            Err(TapeError::Truncated(_))
        ));
        assert!(matches!(
            Tape::from_json("{\"format\": \"other\"}"),
            Err(TapeError::Foreign(_))
        ));
        assert!(matches!(
            Tape::from_json("[1, 2]"),
            Err(TapeError::Foreign(_))
        ));
        for foreign in [
            &b"\x89PNG\r\n"[..],
            b"[1, 2]",
            b"null",
            b"GIF89a",
            b"\x83\x01\x02",
        ] {
            assert!(
                matches!(Tape::from_bytes(foreign), Err(TapeError::Foreign(_))),
                "{foreign:?}"
            );
        }
        assert!(matches!(
            Tape::from_bytes(&cbor[..3]),
            Err(TapeError::Truncated(_))
        ));
        assert!(matches!(
            Tape::from_json("{\"format\": \"simloom.tape\", \"version\": 9, \"deviations\": []}"),
            Err(TapeError::NewerVersion {
                found: 9,
                supported: 1
            })
        ));
        assert!(matches!(
            Tape::from_json(
                "{\"format\": \"simloom.tape\", \"version\": 1, \"deviations\": [[3, 1], [2, 1]]}"
            ),
            Err(TapeError::Corrupt(_))
        ));
        assert!(matches!(
            Tape::from_json(
                "{\"format\": \"simloom.tape\", \"version\": 1, \"deviations\": [[3, 0]]}"
            ),
            Err(TapeError::Corrupt(_))
        ));
        assert!(matches!(
            Tape::from_draws(&[1, 2]),
            Err(TapeError::Truncated(_))
        ));
        assert!(matches!(
            Tape::from_draws(&[0, 5]),
            Err(TapeError::Corrupt(_))
        ));
    }
}
