//! The state file format: what one environment and cloud holds, component by
//! component, and the short history of how it got there.
//!
//! Field names here are a contract with users and their tooling (`jq`,
//! dashboards, the git history of the state branch), so they never change
//! without a new [`SCHEMA_VERSION`]. Unknown fields are refused rather than
//! dropped: a file that carries something this version does not know about
//! must not lose it on the next write. A field that may be null may also be
//! left out, and reads as null.
//!
//! The model is pure: no files, no clock. Timestamps and run details are
//! passed in; [`super::store`] reads and writes the file.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::lock::Lock;
use crate::config::{CloudName, ComponentName, EnvName};

/// The version of the format this orchestrator reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// How many history entries the file keeps; git keeps the rest.
pub const HISTORY_LIMIT: usize = 50;

/// The recorded state of one environment and cloud.
///
/// Fields here and in the records are declared in alphabetical order, so
/// the file is written with sorted keys straight from the structs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// The cloud this file records.
    pub cloud: CloudName,
    /// The latest record of every component that has one.
    pub components: BTreeMap<ComponentName, ComponentRecord>,
    /// The environment this file records.
    pub environment: EnvName,
    /// The last [`HISTORY_LIMIT`] batches of changes, oldest first.
    pub history: Vec<HistoryEntry>,
    /// A random id set when the file is created and never changed: two files
    /// with different lineages are different records, not versions of one.
    pub lineage: String,
    /// Who holds the environment and cloud (or some of its components)
    /// right now; `null` when nobody does.
    pub lock: Option<Lock>,
    /// The format version; always [`SCHEMA_VERSION`] once read or created.
    pub schema_version: u32,
    /// Bumped by one for every recorded batch of changes; the copy with the
    /// higher serial (and the same lineage) is the newer one.
    pub serial: u64,
}

/// What is known about one component from the last run that touched it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentRecord {
    /// The action that was run.
    pub action: RecordAction,
    /// How many attempts the action took, retries included.
    pub attempts: u32,
    /// The git commit the action deployed.
    pub commit: Option<String>,
    /// Why the component failed, was skipped or was cancelled.
    pub error: Option<String>,
    /// What change detection compares: the inputs the action ran with.
    pub fingerprint: Option<String>,
    /// When the action ended, whatever the outcome.
    pub finished_at: Option<Timestamp>,
    /// The component's outputs, as it reported them.
    #[serde(serialize_with = "sorted_map")]
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// The CI run that did it, when there was one.
    pub run: Option<RunInfo>,
    /// When the action started.
    pub started_at: Option<Timestamp>,
    /// Where the component's last action got to.
    pub status: Status,
}

/// Where a component's last action got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Selected for a run that has not started it yet.
    Pending,
    /// Started and not finished (or the run died while it was running).
    Running,
    /// The action completed.
    Succeeded,
    /// The action failed.
    Failed,
    /// Not run, because of the failure policy.
    Skipped,
    /// Stopped by a cancellation before it finished.
    Cancelled,
    /// Removed by a destroy.
    Destroyed,
}

impl Status {
    /// Every status, in the order a component may go through them.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Running,
        Status::Succeeded,
        Status::Failed,
        Status::Skipped,
        Status::Cancelled,
        Status::Destroyed,
    ];

    /// The status as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Cancelled => "cancelled",
            Status::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The action a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordAction {
    /// Create or update the component.
    Apply,
    /// Remove the component.
    Destroy,
}

impl RecordAction {
    /// The action as the file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordAction::Apply => "apply",
            RecordAction::Destroy => "destroy",
        }
    }
}

/// The CI run behind a record, so a reader can find its logs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunInfo {
    /// Who started it.
    pub actor: Option<String>,
    /// Which attempt of the run (`GITHUB_RUN_ATTEMPT`).
    pub attempt: u32,
    /// The run's id (GitHub's `GITHUB_RUN_ID`).
    pub id: u64,
    /// A link to the run.
    pub url: Option<String>,
}

/// One recorded batch of changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    /// When it was recorded.
    pub at: Timestamp,
    /// Each changed component's new status.
    pub changes: BTreeMap<ComponentName, Status>,
    /// What else happened: a lock taken over or forced open, and why.
    #[serde(default)]
    pub note: Option<String>,
    /// The CI run that recorded it.
    pub run: Option<RunInfo>,
    /// The serial the batch produced.
    pub serial: u64,
}

/// A point in time, to the second, written as RFC 3339 in UTC
/// (`2026-11-22T10:03:12Z`).
///
/// Whole seconds keep the file's bytes a function of what happened, not of
/// the clock's resolution, and make a written timestamp read back equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The last second RFC 3339 can write with a four-digit year
    /// (`9999-12-31T23:59:59Z`).
    const MAX_SECS: u64 = 253_402_300_799;

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    /// Truncates to the second; clamps to 1970..=9999, the range RFC 3339
    /// with a four-digit year can write, so formatting never fails.
    fn from(time: SystemTime) -> Self {
        let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Timestamp(secs.min(Self::MAX_SECS))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        humantime::format_rfc3339_seconds(self.to_system_time()).fmt(f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text)
            .map(Timestamp::from)
            .map_err(|e| {
                serde::de::Error::custom(format_args!(
                    "`{text}` is not an RFC 3339 time in UTC like 2026-11-22T10:03:12Z: {e}"
                ))
            })
    }
}

impl ComponentRecord {
    /// A record with the given status and action and nothing else known yet.
    pub fn new(status: Status, action: RecordAction) -> Self {
        ComponentRecord {
            status,
            action,
            fingerprint: None,
            commit: None,
            started_at: None,
            finished_at: None,
            attempts: 0,
            run: None,
            outputs: serde_json::Map::new(),
            error: None,
        }
    }
}

impl StateFile {
    /// An empty record for `environment` and `cloud`, with a fresh lineage.
    pub fn new(environment: EnvName, cloud: CloudName) -> Self {
        StateFile {
            schema_version: SCHEMA_VERSION,
            environment,
            cloud,
            serial: 0,
            lineage: uuid::Uuid::new_v4().to_string(),
            lock: None,
            components: BTreeMap::new(),
            history: Vec::new(),
        }
    }

    /// Records a batch of component records as one new serial, with one
    /// history entry naming each component's new status, and returns that
    /// serial. A later record for the same component in the batch wins.
    ///
    /// Every non-empty batch bumps the serial, even when no status changes
    /// (a retry count, outputs or an error message may have): the serial
    /// counts recorded batches, so any two different files of one lineage
    /// have different serials and the git store can always tell which is
    /// newer. An empty batch records nothing and keeps the serial.
    pub fn record(
        &mut self,
        changes: impl IntoIterator<Item = (ComponentName, ComponentRecord)>,
        run: Option<RunInfo>,
        at: Timestamp,
    ) -> u64 {
        self.record_with_note(changes, run, at, None)
    }

    /// As [`StateFile::record`], with a note saying what else happened
    /// (a lock taken over or forced open). A batch with a note is recorded
    /// even when no component changed.
    pub fn record_with_note(
        &mut self,
        changes: impl IntoIterator<Item = (ComponentName, ComponentRecord)>,
        run: Option<RunInfo>,
        at: Timestamp,
        note: Option<String>,
    ) -> u64 {
        let mut statuses = BTreeMap::new();
        for (name, record) in changes {
            statuses.insert(name.clone(), record.status);
            self.components.insert(name, record);
        }
        if statuses.is_empty() && note.is_none() {
            return self.serial;
        }
        self.bump(statuses, run, at, note)
    }

    /// Counts one write: a new serial and its history entry. Every write of
    /// a shared state (a lock taken or released too) goes through here, so
    /// the serial counts them all and the history lists them all.
    pub fn bump(
        &mut self,
        changes: BTreeMap<ComponentName, Status>,
        run: Option<RunInfo>,
        at: Timestamp,
        note: Option<String>,
    ) -> u64 {
        // Only a hand-edited file can get near the top; saturating keeps
        // that from panicking.
        self.serial = self.serial.saturating_add(1);
        self.history.push(HistoryEntry {
            serial: self.serial,
            at,
            run,
            changes,
            note,
        });
        let excess = self.history.len().saturating_sub(HISTORY_LIMIT);
        self.history.drain(..excess);
        self.serial
    }
}

/// Free-form JSON (outputs, the lock) written with its object keys sorted,
/// without copying it.
struct Sorted<'a>(&'a serde_json::Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0 {
            serde_json::Value::Object(map) => sorted_map(map, s),
            serde_json::Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Sorted(item))?;
                }
                seq.end()
            }
            other => other.serialize(s),
        }
    }
}

fn sorted_map<S: serde::Serializer>(
    map: &serde_json::Map<String, serde_json::Value>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    let mut out = s.serialize_map(Some(keys.len()))?;
    for k in keys {
        out.serialize_entry(k, &Sorted(&map[k]))?;
    }
    out.end()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn empty_state() -> StateFile {
        StateFile::new(
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        )
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn succeeded() -> ComponentRecord {
        ComponentRecord::new(Status::Succeeded, RecordAction::Apply)
    }

    #[test]
    fn a_new_state_is_empty_at_serial_zero() {
        let state = empty_state();
        assert_eq!(state.schema_version, SCHEMA_VERSION);
        assert_eq!(state.serial, 0);
        assert!(state.components.is_empty() && state.history.is_empty());
        assert!(uuid::Uuid::parse_str(&state.lineage).is_ok());
    }

    #[test]
    fn each_new_state_gets_its_own_lineage() {
        assert_ne!(empty_state().lineage, empty_state().lineage);
    }

    #[test]
    fn recording_a_batch_bumps_the_serial_once_and_logs_every_change() {
        let mut state = empty_state();
        let run = RunInfo {
            id: 7,
            attempt: 1,
            url: None,
            actor: Some("octocat".into()),
        };
        let serial = state.record(
            [
                (name("network"), succeeded()),
                (
                    name("dns"),
                    ComponentRecord::new(Status::Failed, RecordAction::Apply),
                ),
            ],
            Some(run.clone()),
            at(60),
        );
        assert_eq!(serial, 1);
        assert_eq!(state.serial, 1);
        assert_eq!(state.components[&name("dns")].status, Status::Failed);
        let entry = &state.history[0];
        assert_eq!(entry.serial, 1);
        assert_eq!(entry.at, at(60));
        assert_eq!(entry.run, Some(run));
        assert_eq!(
            entry.changes,
            BTreeMap::from([
                (name("dns"), Status::Failed),
                (name("network"), Status::Succeeded)
            ])
        );
    }

    #[test]
    fn recording_the_same_status_again_still_bumps_the_serial() {
        let mut state = empty_state();
        state.record([(name("network"), succeeded())], None, at(1));
        let mut again = succeeded();
        again.attempts = 2;
        assert_eq!(state.record([(name("network"), again)], None, at(2)), 2);
        assert_eq!(state.components[&name("network")].attempts, 2);
    }

    #[test]
    fn an_empty_batch_records_nothing() {
        let mut state = empty_state();
        state.record([(name("network"), succeeded())], None, at(1));
        let before = state.clone();
        assert_eq!(state.record([], None, at(2)), 1);
        assert_eq!(state, before);
    }

    #[test]
    fn history_keeps_only_the_newest_entries() {
        let mut state = empty_state();
        for i in 0..HISTORY_LIMIT as u64 + 20 {
            state.record([(name("network"), succeeded())], None, at(i));
        }
        assert_eq!(state.serial, HISTORY_LIMIT as u64 + 20);
        assert_eq!(state.history.len(), HISTORY_LIMIT);
        assert_eq!(state.history[0].serial, 21);
        assert_eq!(state.history.last().unwrap().serial, state.serial);
    }

    #[test]
    fn recording_never_changes_the_lineage() {
        let mut state = empty_state();
        let lineage = state.lineage.clone();
        for i in 0..5 {
            state.record([(name("network"), succeeded())], None, at(i));
        }
        assert_eq!(state.lineage, lineage);
    }

    #[test]
    fn timestamps_are_written_to_the_second_in_utc() {
        let t = Timestamp::from(UNIX_EPOCH + Duration::from_millis(1_795_860_192_999));
        assert_eq!(t.to_string(), "2026-11-28T10:03:12Z");
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn timestamps_outside_what_rfc3339_can_write_are_clamped() {
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(
            Timestamp::from(before_epoch).to_string(),
            "1970-01-01T00:00:00Z"
        );
        let far = UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
        assert_eq!(Timestamp::from(far).to_string(), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn a_timestamp_that_is_not_rfc3339_is_refused_with_an_example() {
        let err = serde_json::from_str::<Timestamp>("\"yesterday\"").unwrap_err();
        assert!(err.to_string().contains("2026-11-22T10:03:12Z"), "{err}");
    }

    #[test]
    fn statuses_are_spelled_in_lowercase_as_in_the_file() {
        for status in Status::ALL {
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        assert_eq!(
            serde_json::to_string(&RecordAction::Destroy).unwrap(),
            "\"destroy\""
        );
    }

    #[test]
    fn unknown_fields_are_refused_rather_than_dropped() {
        let text = r#"{"status":"failed","action":"apply","fingerprint":null,"commit":null,
            "started_at":null,"finished_at":null,"attempts":1,"run":null,"outputs":{},
            "error":null,"owner":"team-a"}"#;
        let err = serde_json::from_str::<ComponentRecord>(text).unwrap_err();
        assert!(err.to_string().contains("owner"), "{err}");
    }
}
