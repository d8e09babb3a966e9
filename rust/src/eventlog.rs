//! The event log: a canonical, address-free record of what a universe did.
//!
//! Binary format v1 (documented in docs/event-log.md): the header `SLEV` + version
//! byte, then events, each a tag byte followed by LEB128 varints:
//!
//! | tag | event    | fields                                   |
//! |-----|----------|------------------------------------------|
//! | 1   | label    | byte length, UTF-8 bytes (id = order of definition) |
//! | 2   | step     | label id of the callback that ran        |
//! | 3   | clock    | nanoseconds the virtual clock advanced   |
//! | 4   | decision | label id of the choice, bound, value     |
//! | 5   | mark     | label id (a `reached` point, a teardown phase) |
//! | 6   | end      | label id of the outcome                  |
//! | 7   | misalign | decision index whose replayed value did not fit |
//!
//! Labels are names (task names, function qualnames, choice labels), never memory
//! addresses, so the same universe gives the same bytes in any process. The SHA-256
//! of the bytes is the universe's digest.

use crate::sha256::{hex, Sha256};
use std::collections::HashMap;

pub const LOG_MAGIC: &[u8; 4] = b"SLEV";
pub const LOG_VERSION: u8 = 1;

pub const TAG_LABEL: u8 = 1;
pub const TAG_STEP: u8 = 2;
pub const TAG_CLOCK: u8 = 3;
pub const TAG_DECISION: u8 = 4;
pub const TAG_MARK: u8 = 5;
pub const TAG_END: u8 = 6;
pub const TAG_MISALIGN: u8 = 7;

/// A decoded event, for display and JSON export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Label { id: u64, text: String },
    Step { label: u64 },
    Clock { advanced_ns: u64 },
    Decision { label: u64, bound: u64, value: u64 },
    Mark { label: u64 },
    End { label: u64 },
    Misalign { index: u64 },
}

#[derive(Debug, Clone)]
pub struct EventLog {
    bytes: Vec<u8>,
    labels: HashMap<String, u32>,
    label_texts: Vec<String>,
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

fn push_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn read_varint(bytes: &[u8], cursor: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *bytes.get(*cursor).ok_or("event log ends inside a number")?;
        *cursor += 1;
        if shift >= 64 {
            return Err("varint too long".into());
        }
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

impl EventLog {
    pub fn new() -> Self {
        let mut bytes = Vec::with_capacity(1024);
        bytes.extend_from_slice(LOG_MAGIC);
        bytes.push(LOG_VERSION);
        EventLog {
            bytes,
            labels: HashMap::new(),
            label_texts: Vec::new(),
        }
    }

    /// Intern a label, defining it in the log the first time it is seen.
    pub fn label(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.labels.get(text) {
            return id;
        }
        let id = self.label_texts.len() as u32;
        self.bytes.push(TAG_LABEL);
        push_varint(&mut self.bytes, text.len() as u64);
        self.bytes.extend_from_slice(text.as_bytes());
        self.labels.insert(text.to_string(), id);
        self.label_texts.push(text.to_string());
        id
    }

    pub fn label_text(&self, id: u32) -> &str {
        &self.label_texts[id as usize]
    }

    #[inline]
    pub fn step(&mut self, label: u32) {
        self.bytes.push(TAG_STEP);
        push_varint(&mut self.bytes, label as u64);
    }

    pub fn clock(&mut self, advanced_ns: u64) {
        self.bytes.push(TAG_CLOCK);
        push_varint(&mut self.bytes, advanced_ns);
    }

    pub fn decision(&mut self, label: u32, bound: u64, value: u64) {
        self.bytes.push(TAG_DECISION);
        push_varint(&mut self.bytes, label as u64);
        push_varint(&mut self.bytes, bound);
        push_varint(&mut self.bytes, value);
    }

    pub fn mark(&mut self, label: u32) {
        self.bytes.push(TAG_MARK);
        push_varint(&mut self.bytes, label as u64);
    }

    pub fn end(&mut self, label: u32) {
        self.bytes.push(TAG_END);
        push_varint(&mut self.bytes, label as u64);
    }

    pub fn misalign(&mut self, index: u64) {
        self.bytes.push(TAG_MISALIGN);
        push_varint(&mut self.bytes, index);
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn digest_hex(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(&self.bytes);
        hex(&hasher.finish())
    }

    /// Decode a log produced by [`EventLog`] (any process, same version).
    pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
        if bytes.len() < 5 || &bytes[..4] != LOG_MAGIC {
            return Err("not a simloom event log".into());
        }
        if bytes[4] != LOG_VERSION {
            return Err(format!("event log version {} is not supported", bytes[4]));
        }
        let mut cursor = 5usize;
        let mut events = Vec::new();
        let mut next_label = 0u64;
        while cursor < bytes.len() {
            let tag = bytes[cursor];
            cursor += 1;
            let event = match tag {
                TAG_LABEL => {
                    let length = read_varint(bytes, &mut cursor)? as usize;
                    let end = cursor
                        .checked_add(length)
                        .filter(|&e| e <= bytes.len())
                        .ok_or("label runs past the end")?;
                    let text = std::str::from_utf8(&bytes[cursor..end])
                        .map_err(|_| "label is not UTF-8")?
                        .to_string();
                    cursor = end;
                    next_label += 1;
                    Event::Label {
                        id: next_label - 1,
                        text,
                    }
                }
                TAG_STEP => Event::Step {
                    label: read_varint(bytes, &mut cursor)?,
                },
                TAG_CLOCK => Event::Clock {
                    advanced_ns: read_varint(bytes, &mut cursor)?,
                },
                TAG_DECISION => Event::Decision {
                    label: read_varint(bytes, &mut cursor)?,
                    bound: read_varint(bytes, &mut cursor)?,
                    value: read_varint(bytes, &mut cursor)?,
                },
                TAG_MARK => Event::Mark {
                    label: read_varint(bytes, &mut cursor)?,
                },
                TAG_END => Event::End {
                    label: read_varint(bytes, &mut cursor)?,
                },
                TAG_MISALIGN => Event::Misalign {
                    index: read_varint(bytes, &mut cursor)?,
                },
                other => return Err(format!("unknown event tag {other} at byte {}", cursor - 1)),
            };
            events.push(event);
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_round_trips_and_labels_are_defined_once() {
        let mut log = EventLog::new();
        let a = log.label("Task-1");
        let b = log.label("sched.pick");
        assert_eq!(log.label("Task-1"), a);
        log.step(a);
        log.decision(b, 3, 2);
        log.clock(1_000_000_000);
        log.mark(a);
        log.misalign(7);
        log.end(b);
        let events = EventLog::decode(log.bytes()).unwrap();
        assert_eq!(
            events,
            vec![
                Event::Label {
                    id: 0,
                    text: "Task-1".into()
                },
                Event::Label {
                    id: 1,
                    text: "sched.pick".into()
                },
                Event::Step { label: 0 },
                Event::Decision {
                    label: 1,
                    bound: 3,
                    value: 2
                },
                Event::Clock {
                    advanced_ns: 1_000_000_000
                },
                Event::Mark { label: 0 },
                Event::Misalign { index: 7 },
                Event::End { label: 1 },
            ]
        );
        assert_eq!(log.digest_hex().len(), 64);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(EventLog::decode(b"nope").is_err());
        assert!(EventLog::decode(b"SLEV\x01\x02").is_err());
        assert!(EventLog::decode(b"SLEV\x01\x63").is_err());
    }
}
