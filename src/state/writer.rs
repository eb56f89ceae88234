//! Writes one run's changes into a local state file that other processes
//! may write at the same time: other runs of the environment on other
//! components, `state set` and `state unlock` from another terminal.
//!
//! Every write takes the file's [`FileLock`], as the store's local
//! transactions do (unless the state is kept in git, see
//! [`Writer::unlocked`]), and first checks that the file is still the one
//! this writer left (by its [`Stamp`]). When someone else wrote it since,
//! their file becomes the base: this run's own records are carried over
//! into it (per component the later event wins, this run on a tie; see
//! [`super::merge`]), the serial continues from the higher of the two, and
//! only then are the new changes applied. So neither side loses records.
//! A file of another lineage, a corrupt one, or one from a newer
//! orchestrator is never overwritten: the write fails and the changes wait
//! in memory for the next one. Only the records that changed are
//! serialized again ([`super::render`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::SystemTime;

use super::merge::{self, Ties};
use super::model::{RunInfo, StateFile, Timestamp};
use super::render::Renderer;
use super::store::{self, Durability, FileLock, Stamp, StateError};
use crate::config::ComponentName;

/// One run's writer of one local state file.
pub struct Writer {
    path: PathBuf,
    /// The file as this writer last wrote or read it, with the changes
    /// applied since.
    state: StateFile,
    /// The run that writes, recorded with a merge.
    run: Option<RunInfo>,
    /// The components whose records this run has set.
    ours: BTreeSet<ComponentName>,
    /// The file as this writer left it; `None` before its first write.
    written: Option<Stamp>,
    /// Whether `state` holds something the file lacks.
    dirty: bool,
    /// Whether writes take the file lock.
    locking: bool,
    renderer: Renderer,
    /// The components whose records changed since the last render;
    /// `None` when every record is to be rendered again.
    unrendered: Option<BTreeSet<ComponentName>>,
    /// Whether the last write left its replacement of the file off disk
    /// ([`Durability::Contents`]).
    unsynced: bool,
}

impl Writer {
    /// A writer of the file at `path`, which held `state` when the run
    /// read it (or does not exist yet, for a new `state`).
    pub fn new(path: PathBuf, state: StateFile, run: Option<RunInfo>) -> Writer {
        Writer {
            path,
            state,
            run,
            ours: BTreeSet::new(),
            written: None,
            dirty: false,
            locking: true,
            renderer: Renderer::new(),
            unrendered: None,
            unsynced: false,
        }
    }

    /// The same writer, writing without the file lock: for the local copy
    /// of a state kept in git, which the store writes without it, where
    /// the lock would only leave a lock file in the checkout. The stamp
    /// check and the merge keep what others wrote before this writer
    /// looks; a write landing between its look and its rename is lost
    /// from the local copy (the branch keeps it).
    pub fn unlocked(mut self) -> Writer {
        self.locking = false;
        self
    }

    /// Makes the last write as durable as [`Durability::Full`] when it was
    /// written with less.
    pub fn sync(&mut self) -> Result<(), StateError> {
        if self.unsynced {
            store::sync_directory(&self.path)?;
            self.unsynced = false;
        }
        Ok(())
    }

    /// The state as this writer knows it.
    pub fn state(&self) -> &StateFile {
        &self.state
    }

    /// The state, with the changes applied since the last write that
    /// landed (if one did not).
    pub fn into_state(self) -> StateFile {
        self.state
    }

    /// Applies `change` to the newest state of the file and writes the
    /// result, unless nothing changed. `change` must count what it records
    /// with a new serial ([`StateFile::record`] or [`StateFile::bump`]) and
    /// returns the components whose records it set: this run's own from
    /// then on. When the file cannot be read or written, the change is kept
    /// here and goes out with the next write that succeeds.
    pub fn write(
        &mut self,
        change: impl FnOnce(&mut StateFile) -> Vec<ComponentName>,
    ) -> Result<(), StateError> {
        self.write_with(Durability::Full, change)
    }

    /// [`Writer::write`], as durably as asked.
    pub fn write_with(
        &mut self,
        durability: Durability,
        change: impl FnOnce(&mut StateFile) -> Vec<ComponentName>,
    ) -> Result<(), StateError> {
        let locked = self
            .locking
            .then(|| FileLock::take(&self.path))
            .transpose()
            .and_then(|lock| {
                self.catch_up()?;
                Ok(lock)
            });
        let serial = self.state.serial;
        let changed = change(&mut self.state);
        self.dirty |= self.state.serial != serial;
        self.ours.extend(changed.iter().cloned());
        if let Some(unrendered) = &mut self.unrendered {
            unrendered.extend(changed);
        }
        let _lock = locked?;
        if !self.dirty {
            return Ok(());
        }
        let rendered = match self.unrendered.take() {
            Some(changed) => self.renderer.render(&self.state, &changed),
            None => self.renderer.render_all(&self.state),
        };
        let bytes = rendered.map_err(|e| StateError::Io {
            path: self.path.clone(),
            action: "serialize",
            source: e.into(),
        })?;
        // The renderer holds the text of every record now.
        self.unrendered = Some(BTreeSet::new());
        self.written = Some(store::write_rendered(&self.path, bytes, durability)?);
        self.unsynced = durability == Durability::Contents;
        self.dirty = false;
        Ok(())
    }

    /// Takes the file as the base when someone else wrote it since this
    /// writer last did, carrying this run's records over into it.
    fn catch_up(&mut self) -> Result<(), StateError> {
        let now = store::stamp(&self.path)?;
        if now.is_some() && now == self.written {
            return Ok(());
        }
        let theirs = store::read(&self.path, &self.state.environment, &self.state.cloud)?;
        let Some(theirs) = theirs else {
            // No file (any more): this writer's state is all there is, and
            // the next change writes it whole.
            return Ok(());
        };
        if theirs.lineage != self.state.lineage {
            return Err(StateError::Lineage {
                path: self.path.clone(),
                expected: self.state.lineage.clone(),
                found: theirs.lineage,
            });
        }
        let ours = std::mem::replace(&mut self.state, theirs);
        self.unrendered = None;
        let their_serial = self.state.serial;
        self.state.serial = their_serial.max(ours.serial);
        let kept = merge::records(&mut self.state, &ours, &self.ours, Ties::Ours);
        // Unchanged, the file is the state: nothing to write for it.
        self.dirty = !kept.is_empty() || their_serial < ours.serial;
        if self.dirty {
            let note = format!("merged into the copy another writer left at serial {their_serial}");
            let now = Timestamp::from(SystemTime::now());
            self.state.bump(kept, self.run.clone(), now, Some(note));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::config::{CloudName, EnvName};
    use crate::state::model::{ComponentRecord, RecordAction, Status};

    fn new_state() -> StateFile {
        StateFile::new(
            EnvName::parse("dev").unwrap(),
            CloudName::parse("aws").unwrap(),
        )
    }

    fn name(s: &str) -> ComponentName {
        ComponentName::parse(s).unwrap()
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs))
    }

    fn run(id: u64) -> Option<RunInfo> {
        Some(RunInfo {
            id,
            attempt: 1,
            url: None,
            actor: None,
        })
    }

    /// A change recording `component` as succeeded at `secs`, as a
    /// recorder's write does.
    fn succeeded(
        component: &str,
        secs: u64,
        id: u64,
    ) -> impl FnOnce(&mut StateFile) -> Vec<ComponentName> {
        let component = name(component);
        move |state| {
            let mut record = ComponentRecord::new(Status::Succeeded, RecordAction::Apply);
            record.started_at = Some(at(secs));
            record.finished_at = Some(at(secs));
            state.record([(component.clone(), record)], run(id), at(secs));
            vec![component]
        }
    }

    fn read(path: &Path) -> StateFile {
        store::parse(path, &fs::read(path).unwrap()).unwrap()
    }

    /// A state file on disk, and a writer of it that read it.
    fn file(dir: &Path) -> (PathBuf, Writer) {
        let path = dir.join("dev-aws.json");
        store::write(&path, &new_state()).unwrap();
        let writer = Writer::new(path.clone(), read(&path), run(1));
        (path, writer)
    }

    /// A state file on disk and a writer of it that has recorded `network`
    /// in it, at second 1.
    fn written() -> (tempfile::TempDir, PathBuf, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut writer) = file(dir.path());
        writer.write(succeeded("network", 1, 1)).unwrap();
        (dir, path, writer)
    }

    /// Writes `change` and reads the file back.
    fn write_and_read(
        writer: &mut Writer,
        change: impl FnOnce(&mut StateFile) -> Vec<ComponentName>,
    ) -> StateFile {
        writer.write(change).unwrap();
        read(&writer.path)
    }

    /// Each component and its status, in order.
    fn listed(state: &StateFile) -> String {
        let listed: Vec<String> = state
            .components
            .iter()
            .map(|(n, r)| format!("{n} {}", r.status))
            .collect();
        listed.join(", ")
    }

    #[test]
    fn a_write_that_leaves_the_directory_unsynced_is_whole_and_sync_finishes_it() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut writer) = file(dir.path());
        writer
            .write_with(Durability::Contents, succeeded("network", 1, 1))
            .unwrap();
        assert!(writer.unsynced);
        assert_eq!(listed(&read(&path)), listed(writer.state()));
        writer.sync().unwrap();
        assert!(!writer.unsynced);
        writer.write(succeeded("dns", 2, 1)).unwrap();
        assert!(!writer.unsynced, "a full write leaves nothing to sync");
        assert_eq!(read(&path).components.len(), 2);
    }

    #[test]
    fn two_writers_on_different_components_both_keep_their_records() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut first) = file(dir.path());
        let mut second = Writer::new(path.clone(), read(&path), run(2));
        for i in 0..5 {
            first.write(succeeded(&format!("a{i}"), i, 1)).unwrap();
            second.write(succeeded(&format!("b{i}"), i, 2)).unwrap();
        }
        let state = read(&path);
        assert_eq!(state.components.len(), 10, "{}", listed(&state));
        // One serial per change, none for catching up: each writer found
        // its own records in what the other left.
        assert_eq!(state.serial, 10);
        let serials: Vec<u64> = state.history.iter().map(|h| h.serial).collect();
        assert_eq!(serials, (1..=10).collect::<Vec<_>>());
        assert!(state.history.iter().all(|h| h.note.is_none()));
        assert_eq!(&state, second.state());
    }

    #[test]
    fn a_change_made_by_another_writer_between_two_writes_is_kept() {
        let (_dir, path, mut writer) = written();
        {
            // What the store's local transactions do.
            let _lock = FileLock::take(&path).unwrap();
            let mut theirs = read(&path);
            succeeded("dns", 2, 9)(&mut theirs);
            store::write(&path, &theirs).unwrap();
        }
        let state = write_and_read(&mut writer, succeeded("clusters", 3, 1));
        assert_eq!(
            listed(&state),
            "clusters succeeded, dns succeeded, network succeeded"
        );
        assert_eq!(state.serial, 3);
        assert_eq!(state.history[1].run, run(9));
    }

    #[test]
    fn records_another_writer_dropped_are_put_back_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let (path, mut writer) = file(dir.path());
        let before = read(&path);
        writer.write(succeeded("network", 1, 1)).unwrap();
        writer.write(succeeded("dns", 2, 1)).unwrap();
        // A writer that did not read first puts back an older copy.
        store::write(&path, &before).unwrap();
        let state = write_and_read(&mut writer, succeeded("clusters", 3, 1));
        assert_eq!(
            listed(&state),
            "clusters succeeded, dns succeeded, network succeeded"
        );
        // The serial goes on from the newer of the two copies.
        assert_eq!(state.serial, 4);
        let merged = &state.history[0];
        assert_eq!(merged.serial, 3);
        assert_eq!(
            merged.note.as_deref(),
            Some("merged into the copy another writer left at serial 0")
        );
        assert_eq!(merged.changes.len(), 2);
    }

    #[test]
    fn this_runs_record_wins_a_tie_and_a_later_one_of_another_writer_wins() {
        let (_dir, path, mut writer) = written();
        writer.write(succeeded("dns", 5, 1)).unwrap();
        let mut theirs = read(&path);
        // Same second for network, a later event for dns; no serial bump,
        // as a writer that does not count its writes would leave it.
        for (component, secs) in [("network", 1), ("dns", 6)] {
            let record = theirs.components.get_mut(&name(component)).unwrap();
            record.status = Status::Failed;
            record.finished_at = Some(at(secs));
        }
        store::write(&path, &theirs).unwrap();
        let state = write_and_read(&mut writer, succeeded("clusters", 7, 1));
        assert_eq!(
            listed(&state),
            "clusters succeeded, dns failed, network succeeded"
        );
        assert_eq!(state.serial, 4);
    }

    #[test]
    fn a_file_of_another_lineage_is_left_alone_and_the_changes_wait() {
        let (_dir, path, mut writer) = written();
        let mut other = new_state();
        succeeded("dns", 2, 7)(&mut other);
        store::write(&path, &other).unwrap();
        let text = fs::read(&path).unwrap();

        let err = writer.write(succeeded("clusters", 3, 1)).unwrap_err();
        assert!(matches!(err, StateError::Lineage { .. }), "{err}");
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&other.lineage), "{message}");
        assert_eq!(fs::read(&path).unwrap(), text, "the file is untouched");
        assert_eq!(writer.state().components.len(), 2, "the change waits");
    }

    #[test]
    fn a_corrupt_or_newer_file_is_left_alone_and_a_repaired_one_gets_every_change() {
        let (_dir, path, mut writer) = written();
        let good = fs::read(&path).unwrap();
        for (bad, written) in [
            (b"{\"serial\": 3,".to_vec(), "corrupt"),
            (b"{\"schema_version\": 2}".to_vec(), "newer"),
        ] {
            fs::write(&path, &bad).unwrap();
            let err = writer.write(succeeded(written, 2, 1)).unwrap_err();
            assert!(
                matches!(
                    err,
                    StateError::Corrupt { .. } | StateError::UnsupportedVersion { .. }
                ),
                "{err}"
            );
            assert_eq!(fs::read(&path).unwrap(), bad);
        }
        fs::write(&path, &good).unwrap();
        let state = write_and_read(&mut writer, succeeded("clusters", 3, 1));
        assert_eq!(
            listed(&state),
            "clusters succeeded, corrupt succeeded, network succeeded, newer succeeded"
        );
        // Three changes, one merge into the repaired file, one change.
        assert_eq!(state.serial, 5);
    }

    #[test]
    fn a_deleted_file_is_written_again_whole() {
        let (_dir, path, mut writer) = written();
        fs::remove_file(&path).unwrap();
        let state = write_and_read(&mut writer, succeeded("dns", 2, 1));
        assert_eq!(state.components.len(), 2);
        assert_eq!(state.serial, 2);
    }

    #[test]
    fn a_change_that_records_nothing_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dev-aws.json");
        let mut writer = Writer::new(path.clone(), new_state(), run(1));
        writer.write(|_| Vec::new()).unwrap();
        assert!(!path.exists());
        writer.write(succeeded("network", 1, 1)).unwrap();
        let written = fs::read(&path).unwrap();
        writer.write(|_| Vec::new()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), written);
    }

    #[test]
    fn only_a_locking_writer_leaves_a_lock_file_beside_the_state() {
        for (locking, expected) in [
            (true, vec![".dev-aws.json.lock", "dev-aws.json"]),
            (false, vec!["dev-aws.json"]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("dev-aws.json");
            let writer = Writer::new(path.clone(), new_state(), run(1));
            let mut writer = if locking { writer } else { writer.unlocked() };
            writer.write(succeeded("network", 1, 1)).unwrap();
            let mut names: Vec<String> = fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, expected, "locking: {locking}");
        }
    }
}
