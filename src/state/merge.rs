//! Merging component records from one copy of a state into another, for
//! when several runs write the same environment at once.
//!
//! Records are per component, and a run only speaks for the components it
//! touched. When two copies disagree about a component, the record of the
//! later event wins: its `finished_at`, or its `started_at` while it is
//! still running. That is what makes a merge safe to repeat and independent
//! of the order in which the writers land. Pure: no files, no clock.

use std::collections::BTreeMap;

use super::model::{ComponentRecord, StateFile, Status, Timestamp};
use crate::config::ComponentName;

/// Which record wins when both copies are from the same second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ties {
    /// Ours: the writer saw the other copy's record and replaced it.
    Ours,
    /// Theirs: ours may be a stale copy of the same record.
    Theirs,
}

/// When the event a record describes happened.
fn when(record: &ComponentRecord) -> Option<Timestamp> {
    record.finished_at.or(record.started_at)
}

/// Whether `ours` should replace `theirs`.
fn wins(ours: &ComponentRecord, theirs: Option<&ComponentRecord>, ties: Ties) -> bool {
    let Some(theirs) = theirs else {
        return true;
    };
    if ours == theirs {
        return false;
    }
    match when(ours).cmp(&when(theirs)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => ties == Ties::Ours,
    }
}

/// Copies into `into` each of `names` whose record in `ours` is newer than
/// the one `into` holds; returns the new status of each copied record. The
/// serial and history are left alone: the caller records the merge as one
/// write.
pub fn records<'a>(
    into: &mut StateFile,
    ours: &StateFile,
    names: impl IntoIterator<Item = &'a ComponentName>,
    ties: Ties,
) -> BTreeMap<ComponentName, Status> {
    let mut changed = BTreeMap::new();
    for name in names {
        let Some(record) = ours.components.get(name) else {
            continue;
        };
        if wins(record, into.components.get(name), ties) {
            into.components.insert(name.clone(), record.clone());
            changed.insert(name.clone(), record.status);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CloudName, EnvName};
    use crate::state::model::RecordAction;
    use std::time::{Duration, UNIX_EPOCH};

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn state() -> StateFile {
        StateFile::new(
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        )
    }

    fn record(status: Status, started: u64, finished: Option<u64>) -> ComponentRecord {
        let at = |s: u64| Timestamp::from(UNIX_EPOCH + Duration::from_secs(s));
        let mut r = ComponentRecord::new(status, RecordAction::Apply);
        r.started_at = Some(at(started));
        r.finished_at = finished.map(at);
        r
    }

    /// Two copies of a state, each with its own record of `dns`.
    fn dns(theirs: ComponentRecord, ours: ComponentRecord) -> (StateFile, StateFile) {
        let (mut a, mut b) = (state(), state());
        a.components.insert(name("dns"), theirs);
        b.components.insert(name("dns"), ours);
        (a, b)
    }

    #[test]
    fn records_only_one_side_has_are_copied() {
        let mut theirs = state();
        theirs
            .components
            .insert(name("dns"), record(Status::Succeeded, 1, Some(2)));
        let mut ours = state();
        ours.components
            .insert(name("registry"), record(Status::Failed, 1, Some(3)));
        let changed = records(&mut theirs, &ours, [&name("registry")], Ties::Ours);
        assert_eq!(
            changed,
            BTreeMap::from([(name("registry"), Status::Failed)])
        );
        assert_eq!(theirs.components.len(), 2);
    }

    #[test]
    fn the_later_event_wins_whichever_side_has_it() {
        let (mut theirs, mut ours) = dns(
            record(Status::Succeeded, 1, Some(20)),
            record(Status::Failed, 1, Some(10)),
        );
        assert!(records(&mut theirs, &ours, [&name("dns")], Ties::Ours).is_empty());
        assert_eq!(theirs.components[&name("dns")].status, Status::Succeeded);

        ours.components
            .insert(name("dns"), record(Status::Failed, 25, Some(30)));
        records(&mut theirs, &ours, [&name("dns")], Ties::Ours);
        assert_eq!(theirs.components[&name("dns")].status, Status::Failed);
    }

    #[test]
    fn a_start_after_the_last_finish_wins_while_it_runs() {
        let (mut theirs, ours) = dns(
            record(Status::Succeeded, 1, Some(20)),
            record(Status::Running, 30, None),
        );
        records(&mut theirs, &ours, [&name("dns")], Ties::Theirs);
        assert_eq!(theirs.components[&name("dns")].status, Status::Running);
    }

    #[test]
    fn ties_go_to_the_side_asked_for_and_equal_records_change_nothing() {
        let (mut theirs, ours) = dns(
            record(Status::Succeeded, 1, Some(5)),
            record(Status::Failed, 1, Some(5)),
        );
        assert!(records(&mut theirs.clone(), &ours, [&name("dns")], Ties::Theirs).is_empty());
        assert_eq!(
            records(&mut theirs, &ours, [&name("dns")], Ties::Ours).len(),
            1
        );
        assert!(records(&mut theirs, &ours, [&name("dns")], Ties::Ours).is_empty());
    }

    #[test]
    fn merging_twice_is_the_same_as_merging_once() {
        let mut theirs = state();
        let mut ours = state();
        ours.components
            .insert(name("dns"), record(Status::Succeeded, 1, Some(2)));
        records(&mut theirs, &ours, [&name("dns")], Ties::Ours);
        let once = theirs.clone();
        records(&mut theirs, &ours, [&name("dns")], Ties::Ours);
        assert_eq!(theirs, once);
    }
}
