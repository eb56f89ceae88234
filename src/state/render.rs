//! Rendering a state file again after a few records changed, reusing the
//! text of the others.
//!
//! A run of many quick components writes its state file every few
//! milliseconds, and between two writes only a handful of its records
//! change. [`Renderer`] keeps each record's text from the last render and
//! serializes again only the records its caller names as changed. The
//! document around them (history, lock, serial) is serialized as usual,
//! with each record's text dropped in as a raw JSON fragment already
//! indented to its depth, so the bytes are exactly those of
//! [`super::store::render`].
//!
//! The caller names the changes rather than the renderer finding them: a
//! comparison of every record with the one its text was made from walks
//! all of both, which between two writes have left the cache, and costs
//! about as much as serializing them again.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;

use super::lock::Lock;
use super::model::{ComponentRecord, HistoryEntry, StateFile};
use crate::config::{CloudName, ComponentName, EnvName};

/// What starts each new line of a record's text in the file: it sits
/// inside the document and inside `components`, two levels of two spaces.
const RECORD_INDENT: &str = "\n    ";

/// Renders one state file again and again, serializing only the records
/// that changed since the last time.
#[derive(Default)]
pub struct Renderer {
    /// The text of each record of the last state rendered.
    texts: BTreeMap<ComponentName, Box<RawValue>>,
    /// The last bytes rendered; its room is reused.
    bytes: Vec<u8>,
}

impl Renderer {
    /// A renderer that has rendered nothing yet.
    pub fn new() -> Renderer {
        Renderer::default()
    }

    /// The file's bytes for `state`, every record serialized afresh.
    pub fn render_all(&mut self, state: &StateFile) -> Result<&[u8], serde_json::Error> {
        self.texts = state
            .components
            .iter()
            .map(|(name, record)| Ok((name.clone(), text(record)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        self.assemble(state)
    }

    /// The file's bytes for `state`, exactly as [`super::store::render`]
    /// gives them, when its records other than `changed` are those of the
    /// last render (a name in `changed` may also be new, or removed).
    pub fn render<'a>(
        &mut self,
        state: &StateFile,
        changed: impl IntoIterator<Item = &'a ComponentName>,
    ) -> Result<&[u8], serde_json::Error> {
        for name in changed {
            match state.components.get(name) {
                Some(record) => {
                    self.texts.insert(name.clone(), text(record)?);
                }
                None => {
                    self.texts.remove(name);
                }
            }
        }
        if !self.texts.keys().eq(state.components.keys()) {
            // Records the caller did not name came or went. Comparing the
            // names is cheap next to rendering, and keeps a text from
            // ever going out under another record's name.
            return self.render_all(state);
        }
        self.assemble(state)
    }

    fn assemble(&mut self, state: &StateFile) -> Result<&[u8], serde_json::Error> {
        let StateFile {
            cloud,
            components,
            environment,
            history,
            lineage,
            lock,
            schema_version,
            serial,
        } = state;
        let document = Document {
            cloud,
            components: Texts {
                names: components,
                texts: &self.texts,
            },
            environment,
            history,
            lineage,
            lock,
            schema_version: *schema_version,
            serial: *serial,
        };
        self.bytes.clear();
        serde_json::to_writer_pretty(&mut self.bytes, &document)?;
        self.bytes.push(b'\n');
        Ok(&self.bytes)
    }
}

/// A record's text in the file.
fn text(record: &ComponentRecord) -> Result<Box<RawValue>, serde_json::Error> {
    // Pretty JSON has raw newlines only between tokens (a newline in a
    // string is written `\n`), so each one starts a line to indent.
    let text = serde_json::to_string_pretty(record)?.replace('\n', RECORD_INDENT);
    RawValue::from_string(text)
}

/// [`StateFile`] as it serializes, with the records' texts for its
/// records: the same fields in the same order, so the same bytes.
#[derive(Serialize)]
struct Document<'a> {
    cloud: &'a CloudName,
    components: Texts<'a>,
    environment: &'a EnvName,
    history: &'a [HistoryEntry],
    lineage: &'a str,
    lock: &'a Option<Lock>,
    schema_version: u32,
    serial: u64,
}

/// The `components` map, each record as its text. Both maps have the
/// same names, so they go in step.
struct Texts<'a> {
    names: &'a BTreeMap<ComponentName, ComponentRecord>,
    texts: &'a BTreeMap<ComponentName, Box<RawValue>>,
}

impl Serialize for Texts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.names.len()))?;
        for (name, text) in self.names.keys().zip(self.texts.values()) {
            map.serialize_entry(name, text)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Map, Value};

    use super::*;
    use crate::state::lock::Holder;
    use crate::state::model::{HISTORY_LIMIT, RecordAction, RunInfo, Status, Timestamp};
    use crate::state::store;

    /// Text that JSON has to escape or that is not ASCII.
    const AWKWARD: [&str; 10] = [
        "plain",
        "",
        "quote \" and backslash \\",
        "two\nlines\r\n",
        "tab\tand\u{1}control",
        "café",
        "日本語",
        "🚀 launch",
        "line\u{2028}separator",
        "</script>",
    ];

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn awkward(rng: &mut fastrand::Rng) -> String {
        let mut s = AWKWARD[rng.usize(..AWKWARD.len())].to_string();
        if rng.bool() {
            s.push_str(&rng.u32(..1000).to_string());
        }
        s
    }

    fn value(rng: &mut fastrand::Rng, depth: u32) -> Value {
        match rng.u8(..if depth == 0 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => Value::from(rng.i64(..)),
            3 => Value::from(rng.f64() * 1e6 - 5e5),
            4 => Value::String(awkward(rng)),
            5 => Value::Array((0..rng.usize(..4)).map(|_| value(rng, depth - 1)).collect()),
            _ => Value::Object(object(rng, depth - 1)),
        }
    }

    /// An object, often empty, with keys out of order.
    fn object(rng: &mut fastrand::Rng, depth: u32) -> Map<String, Value> {
        (0..rng.usize(..5))
            .map(|_| (awkward(rng), value(rng, depth)))
            .collect()
    }

    fn maybe<T>(rng: &mut fastrand::Rng, make: impl FnOnce(&mut fastrand::Rng) -> T) -> Option<T> {
        rng.bool().then(|| make(rng))
    }

    fn run_info(rng: &mut fastrand::Rng) -> RunInfo {
        RunInfo {
            actor: maybe(rng, awkward),
            attempt: rng.u32(1..4),
            id: rng.u64(..),
            url: maybe(rng, awkward),
        }
    }

    fn record(rng: &mut fastrand::Rng) -> ComponentRecord {
        let action = if rng.bool() {
            RecordAction::Apply
        } else {
            RecordAction::Destroy
        };
        let mut record = ComponentRecord::new(Status::ALL[rng.usize(..Status::ALL.len())], action);
        record.attempts = rng.u32(..5);
        record.commit = maybe(rng, |r| format!("{:040x}", r.u128(..)));
        record.error = maybe(rng, awkward);
        record.fingerprint = maybe(rng, |r| format!("sha256:{:064x}", r.u128(..)));
        record.started_at = maybe(rng, |r| at(r.u64(..4_000_000_000)));
        record.finished_at = maybe(rng, |r| at(r.u64(..4_000_000_000)));
        record.outputs = object(rng, 3);
        record.run = maybe(rng, run_info);
        record
    }

    fn name(rng: &mut fastrand::Rng) -> ComponentName {
        ComponentName::parse(&format!("c{}", rng.usize(..40))).unwrap()
    }

    fn holder(rng: &mut fastrand::Rng) -> Holder {
        Holder {
            actor: maybe(rng, awkward),
            attempt: 1,
            components: maybe(rng, |r| (0..r.usize(..3)).map(|_| name(r)).collect()),
            expires_at: at(rng.u64(..4_000_000_000)),
            host: maybe(rng, awkward),
            pid: maybe(rng, |r| r.u32(..)),
            run: rng.u64(..),
            started_at: at(rng.u64(..4_000_000_000)),
            url: maybe(rng, awkward),
        }
    }

    /// One change a writer might make between two writes; returns the
    /// components whose records it changed.
    fn change(rng: &mut fastrand::Rng, state: &mut StateFile) -> Vec<ComponentName> {
        match rng.u8(..10) {
            // A batch of records, new or replacing others.
            0..=5 => {
                let batch: Vec<_> = (0..rng.usize(1..6))
                    .map(|_| (name(rng), record(rng)))
                    .collect();
                let names = batch.iter().map(|(n, _)| n.clone()).collect();
                let run = maybe(rng, run_info);
                state.record(batch, run, at(rng.u64(..4_000_000_000)));
                names
            }
            // A record changed in place, in its outputs only.
            6 => {
                let changed = name(rng);
                if let Some(record) = state.components.get_mut(&changed) {
                    record.outputs.insert(awkward(rng), value(rng, 2));
                }
                vec![changed]
            }
            // A record removed.
            7 => {
                let gone = name(rng);
                state.components.remove(&gone);
                vec![gone]
            }
            // The lock taken, changed or released.
            8 => {
                state.lock = maybe(rng, |r| Lock {
                    holders: (0..r.usize(1..3)).map(|_| holder(r)).collect(),
                });
                Vec::new()
            }
            // A note with no record.
            _ => {
                let note = maybe(rng, awkward);
                state.bump(BTreeMap::new(), None, at(rng.u64(..4_000_000_000)), note);
                Vec::new()
            }
        }
    }

    #[test]
    fn rendering_again_gives_the_bytes_of_a_full_render_after_any_changes() {
        for seed in 0..16 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut state = StateFile::new(
                EnvName::parse("dev").unwrap(),
                CloudName::parse("aws").unwrap(),
            );
            let mut renderer = Renderer::new();
            let mut changed = Vec::new();
            for step in 0..120 {
                // Now and then everything, as after another writer's file.
                let ours = if step == 0 || rng.u8(..20) == 0 {
                    renderer.render_all(&state).unwrap()
                } else {
                    renderer.render(&state, &changed).unwrap()
                };
                let full = store::render(&state).unwrap();
                assert!(
                    ours == full,
                    "seed {seed}, step {step}: the renders differ\n--- full\n{}\n--- ours\n{}",
                    String::from_utf8_lossy(&full),
                    String::from_utf8_lossy(ours)
                );
                // Several changes between two writes, or none.
                changed.clear();
                for _ in 0..rng.usize(..4) {
                    changed.extend(change(&mut rng, &mut state));
                }
            }
            assert_eq!(state.history.len(), HISTORY_LIMIT, "seed {seed}");
        }
    }

    #[test]
    fn an_empty_state_renders_as_a_full_render_does() {
        let state = StateFile::new(
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        );
        let mut renderer = Renderer::new();
        let bytes = renderer.render(&state, []).unwrap();
        assert_eq!(bytes, store::render(&state).unwrap());
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.contains("\"components\": {},\n"), "{text}");
    }
}
