//! Reading and writing state files on disk.
//!
//! Writes are atomic: the new content goes to a temporary file in the same
//! directory, is flushed to disk, and is renamed over the old file, so a
//! reader (or a run killed mid-write) sees the old file or the new one, never
//! a mix. The output is pretty-printed with keys sorted at every level, so the
//! same state always gives the same bytes and its git diffs read well.
//!
//! [`write`] trusts its caller: it replaces whatever is there. Read first
//! (or use [`update`], which does), so a corrupt file or one from a newer
//! orchestrator is refused and left for a person to look at instead of being
//! overwritten. Processes that write one file take turns under its
//! [`FileLock`]; a write returns the [`Stamp`] of the file it put in place,
//! so its writer can tell later whether someone else has written since.

use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::model::{SCHEMA_VERSION, StateFile};
use crate::config::{CloudName, EnvName};

/// The mode of a written state file: anyone may read it, its owner writes it.
const FILE_MODE: u32 = 0o644;

/// Where the state of `env` and `cloud` lives: `<root>/<dir>/<env>-<cloud>.json`,
/// with `dir` the configured `state.dir`.
pub fn path(root: &Path, dir: &Path, env: &EnvName, cloud: &CloudName) -> PathBuf {
    root.join(dir).join(format!("{env}-{cloud}.json"))
}

/// Reads the state file at `path`, which must record `env` and `cloud`;
/// `Ok(None)` when there is no file yet.
pub fn read(
    path: &Path,
    env: &EnvName,
    cloud: &CloudName,
) -> Result<Option<StateFile>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StateError::io(path, "read", e)),
    };
    let state = parse(path, &bytes)?;
    if state.environment != *env || state.cloud != *cloud {
        return Err(StateError::Mismatch {
            path: path.to_path_buf(),
            expected_environment: env.clone(),
            expected_cloud: cloud.clone(),
            environment: state.environment,
            cloud: state.cloud,
        });
    }
    Ok(Some(state))
}

/// Writes `state` to `path` atomically, creating the directory if needed,
/// and returns the new file's stamp. Replaces whatever is there: read the
/// old file first (see [`update`]).
pub fn write(path: &Path, state: &StateFile) -> Result<Stamp, StateError> {
    let bytes = render(state).map_err(|e| StateError::io(path, "serialize", e.into()))?;
    write_rendered(path, &bytes, Durability::Full)
}

/// How much of a write is on disk when it returns. Either way the file is
/// replaced whole, and a reader (or a crash of this process) sees the old
/// version or the new one, never a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// The new contents and the replacement: after a power cut the file is
    /// the new version.
    Full,
    /// The new contents, but not yet the replacement: after a power cut
    /// the file may be an earlier version (as old as the file system's
    /// last journal commit), whole. For the writes in the middle of a run,
    /// which a later one makes [`Durability::Full`]; syncing the directory
    /// each time would cost a journal commit a write.
    Contents,
}

/// Writes `bytes`, a state as [`render`] gives it, to `path` as [`write`]
/// does, as durably as asked, and returns the new file's stamp.
pub fn write_rendered(
    path: &Path,
    bytes: &[u8],
    durability: Durability,
) -> Result<Stamp, StateError> {
    let dir = parent(path);
    fs::create_dir_all(dir).map_err(|e| StateError::io(path, "create the directory of", e))?;

    // A name tied to the state file makes a leftover from a killed run easy
    // to recognise (`.dev-aws.json.XXXXXX.tmp`); the leading dot keeps it
    // out of globs such as `*.json`.
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".");
    let mut temp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| StateError::io(path, "create a temporary file next to", e))?;
    // The temporary file is created 0600; set the final mode explicitly so
    // it does not depend on the umask either.
    let written = temp
        .as_file()
        .set_permissions(Permissions::from_mode(FILE_MODE))
        .and_then(|()| temp.write_all(bytes))
        .and_then(|()| temp.as_file().sync_all());
    written.map_err(|e| StateError::io(path, "write", e))?;
    // On failure the temporary file is dropped, which deletes it.
    let file = temp
        .persist(path)
        .map_err(|e| StateError::io(path, "replace", e.error))?;
    // Taken from the file itself after the rename (which may change its
    // change time), so nothing written by others in between can slip in.
    let stamp = file
        .metadata()
        .map(|m| Stamp::of(&m))
        .map_err(|e| StateError::io(path, "inspect", e))?;
    if durability == Durability::Full {
        sync_directory(path)?;
    }
    Ok(stamp)
}

/// Puts the directory entry of the state file at `path` on disk: a rename
/// is only durable once it is.
pub fn sync_directory(path: &Path) -> Result<(), StateError> {
    File::open(parent(path))
        .and_then(|d| d.sync_all())
        .map_err(|e| StateError::io(path, "sync the directory of", e))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// One version of a state file on disk, as the file system tells it apart:
/// which file (device and inode), its size, and when its content and its
/// metadata last changed. Any write, rename or edit by anyone changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

impl Stamp {
    fn of(meta: &fs::Metadata) -> Stamp {
        Stamp {
            device: meta.dev(),
            inode: meta.ino(),
            size: meta.size(),
            modified: (meta.mtime(), meta.mtime_nsec()),
            changed: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The stamp of the file at `path` now; `None` when there is no file.
pub fn stamp(path: &Path) -> Result<Option<Stamp>, StateError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(Some(Stamp::of(&meta))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StateError::io(path, "inspect", e)),
    }
}

/// An advisory lock on a state file's sibling `.<name>.lock` file, so the
/// processes that change one state file (runs, `state` commands) do it one
/// at a time. Released when dropped.
pub struct FileLock(#[allow(dead_code)] nix::fcntl::Flock<File>);

/// How long [`FileLock::take`] waits. Holders keep the lock for one read
/// and write of the file, milliseconds; one that keeps it this long is
/// stuck (stopped, or blocked on a dead network file system), and a run
/// says so rather than hanging with it.
pub const FILE_LOCK_WAIT: Duration = Duration::from_secs(60);

impl FileLock {
    /// Waits for the lock of the state file at `path`, at most
    /// [`FILE_LOCK_WAIT`], and takes it.
    pub fn take(path: &Path) -> Result<FileLock, StateError> {
        FileLock::take_within(path, FILE_LOCK_WAIT)
    }

    /// Waits for the lock of the state file at `path`, at most `wait`, and
    /// takes it. The lock is taken at once when it is free; otherwise a
    /// thread blocks on it, so the lock is had the moment it is given
    /// back. If the wait runs out, that thread gives the lock back as soon
    /// as it gets it.
    pub fn take_within(path: &Path, wait: Duration) -> Result<FileLock, StateError> {
        use nix::fcntl::{Flock, FlockArg};
        let (file, lock_path) = FileLock::open(path)?;
        let io = |action, e| StateError::io(&lock_path, action, e);
        let file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => return Ok(FileLock(locked)),
            Err((file, nix::errno::Errno::EWOULDBLOCK)) => file,
            Err((_, errno)) => return Err(io("lock", errno.into())),
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("state-lock".into())
            .spawn(move || {
                // Dropped, and so released, if nobody waits for it any more.
                let _ = tx.send(Flock::lock(file, FlockArg::LockExclusive));
            })
            .map_err(|e| io("wait for the lock of", e))?;
        match rx.recv_timeout(wait) {
            Ok(Ok(locked)) => Ok(FileLock(locked)),
            Ok(Err((_, errno))) => Err(io("lock", errno.into())),
            Err(_) => Err(StateError::io(
                path,
                "lock",
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another process has held its lock file for over {}; \
                         `fuser {}` names it",
                        humantime::format_duration(wait),
                        lock_path.display()
                    ),
                ),
            )),
        }
    }

    /// Opens (creating it and its directory) the lock file of the state
    /// file at `path`.
    fn open(path: &Path) -> Result<(File, PathBuf), StateError> {
        let dir = parent(path);
        let mut name = OsString::from(".");
        name.push(path.file_name().unwrap_or_default());
        name.push(".lock");
        let lock_path = dir.join(name);
        let io = |action, e| StateError::io(&lock_path, action, e);
        fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("open", e))?;
        Ok((file, lock_path))
    }
}

/// Reads the state at `path` (or starts a new one), applies `change`, writes
/// the result atomically and returns it. Fails without writing when the file
/// is unreadable, corrupt, from a newer orchestrator or for another
/// environment or cloud. `change` must not alter the environment or cloud.
pub fn update(
    path: &Path,
    env: &EnvName,
    cloud: &CloudName,
    change: impl FnOnce(&mut StateFile),
) -> Result<StateFile, StateError> {
    let mut state =
        read(path, env, cloud)?.unwrap_or_else(|| StateFile::new(env.clone(), cloud.clone()));
    change(&mut state);
    write(path, &state)?;
    Ok(state)
}

/// Why a state file could not be read or written.
#[derive(Debug)]
pub enum StateError {
    /// Reading or writing the file (or its directory) failed.
    Io {
        /// The state file.
        path: PathBuf,
        /// What was being done, as in "cannot {action} {path}".
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The file is not JSON, or not shaped like a state file.
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// The line of the problem, from 1.
        line: usize,
        /// The column of the problem, from 1.
        column: usize,
        /// What is wrong there.
        reason: String,
    },
    /// The file's `schema_version` is not the one this orchestrator reads.
    UnsupportedVersion {
        /// The state file.
        path: PathBuf,
        /// The version the file declares.
        found: u64,
    },
    /// The file records another environment or cloud than the one asked for.
    Mismatch {
        /// The state file.
        path: PathBuf,
        /// The environment asked for.
        expected_environment: EnvName,
        /// The cloud asked for.
        expected_cloud: CloudName,
        /// The environment the file records.
        environment: EnvName,
        /// The cloud the file records.
        cloud: CloudName,
    },
    /// The file holds another record than the one being written: it was
    /// replaced (copied over, or created anew) while a run was writing it.
    Lineage {
        /// The state file.
        path: PathBuf,
        /// The lineage of the record being written.
        expected: String,
        /// The lineage the file holds now.
        found: String,
    },
}

impl StateError {
    fn io(path: &Path, action: &'static str, source: io::Error) -> Self {
        StateError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// What went wrong, naming the file.
    pub fn message(&self) -> String {
        match self {
            StateError::Io {
                path,
                action,
                source,
            } => format!("cannot {action} state file {}: {source}", path.display()),
            StateError::Corrupt {
                path,
                line,
                column,
                reason,
            } => format!(
                "{}:{line}:{column}: not a valid state file: {reason}",
                path.display()
            ),
            StateError::UnsupportedVersion { path, found }
                if *found > u64::from(SCHEMA_VERSION) =>
            {
                format!(
                    "state file {} was written by a newer orchestrator (schema_version {found}; \
                     this one reads {SCHEMA_VERSION})",
                    path.display()
                )
            }
            StateError::UnsupportedVersion { path, found } => format!(
                "state file {} has schema_version {found}, which no orchestrator writes \
                 (expected {SCHEMA_VERSION})",
                path.display()
            ),
            StateError::Mismatch {
                path,
                expected_environment,
                expected_cloud,
                environment,
                cloud,
            } => format!(
                "state file {} records {environment}-{cloud}, not \
                 {expected_environment}-{expected_cloud}",
                path.display()
            ),
            StateError::Lineage {
                path,
                expected,
                found,
            } => format!(
                "state file {} now holds another record (lineage {found}) than the one this \
                 run writes (lineage {expected})",
                path.display()
            ),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> String {
        let untouched = "the file was left untouched";
        match self {
            StateError::Io { path, .. } => format!(
                "{untouched}; check that this user may read and write in {} and that the \
                 disk has space, then run again",
                path.parent().unwrap_or(Path::new(".")).display()
            ),
            StateError::Corrupt { path, .. } => format!(
                "{untouched}; inspect it with `jq . {}`, then fix it by hand or restore \
                 the last good version from the state branch's git history",
                path.display()
            ),
            StateError::UnsupportedVersion { found, .. } if *found > u64::from(SCHEMA_VERSION) => {
                format!(
                    "{untouched}; upgrade the orchestrator (the action's `uses:` version or \
                     the binary) to one that reads schema_version {found}"
                )
            }
            StateError::UnsupportedVersion { .. } => format!(
                "{untouched}; set schema_version to {SCHEMA_VERSION} if the rest is right, \
                 or restore the last good version from the state branch's git history"
            ),
            StateError::Mismatch {
                environment, cloud, ..
            } => format!(
                "{untouched}; it was probably copied or renamed by hand: move it back to \
                 {environment}-{cloud}.json, or restore this file from the state branch's \
                 git history"
            ),
            StateError::Lineage { .. } => format!(
                "{untouched}; it was replaced while the run was going: keep whichever record \
                 is right (compare it with the state branch's git history), then apply \
                 again, which runs the components whose results it lacks"
            ),
        }
    }
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.message(), self.hint())
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Parses a state file's bytes, checking the version before the shape: a
/// file from a newer orchestrator may have fields this one does not know,
/// and the version is the useful thing to report about it.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<StateFile, StateError> {
    // An empty file is what a crash mid-write by some other tool, or a full
    // disk, leaves; say so instead of serde_json's "EOF at column 0".
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Corrupt {
            path: path.to_path_buf(),
            line: 1,
            column: 1,
            reason: "the file is empty".into(),
        });
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e))?;
    let version = value
        .get("schema_version")
        .and_then(serde_json::Value::as_u64);
    if let Some(found) = version.filter(|v| *v != u64::from(SCHEMA_VERSION)) {
        return Err(StateError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
        });
    }
    // Parsed again from the text, not from `value`, so shape errors keep
    // their line and column.
    serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e))
}

fn corrupt(path: &Path, error: &serde_json::Error) -> StateError {
    let (line, column) = (error.line(), error.column());
    // serde_json ends its message with the position, which the error
    // already shows in `path:line:column` form.
    let message = error.to_string();
    let suffix = format!(" at line {line} column {column}");
    let reason = message
        .strip_suffix(&suffix)
        .unwrap_or(&message)
        .to_string();
    StateError::Corrupt {
        path: path.to_path_buf(),
        line,
        column,
        reason,
    }
}

/// The file's bytes: pretty-printed, keys sorted at every level, ending in
/// a newline. `serde_json` keeps insertion order here (`preserve_order`),
/// so the keys are sorted explicitly.
pub fn render(state: &StateFile) -> Result<Vec<u8>, serde_json::Error> {
    // The model declares its fields in key order and sorts free-form JSON as
    // it serializes, so this is already the sorted form.
    let mut bytes = serde_json::to_vec_pretty(state)?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use serde_json::{Value, json};

    use super::*;
    use crate::config::ComponentName;
    use crate::state::model::{ComponentRecord, RecordAction, RunInfo, Status, Timestamp};

    fn dev() -> EnvName {
        EnvName::parse("dev").unwrap()
    }

    fn aws() -> CloudName {
        CloudName::parse("aws").unwrap()
    }

    /// A state with nested outputs whose keys are out of order.
    fn sample() -> StateFile {
        let mut state = StateFile::new(dev(), aws());
        let mut record = ComponentRecord::new(Status::Succeeded, RecordAction::Apply);
        record.fingerprint = Some("sha256:abc".into());
        record.started_at = Some(Timestamp::from(UNIX_EPOCH + Duration::from_secs(100)));
        record.finished_at = Some(Timestamp::from(UNIX_EPOCH + Duration::from_secs(160)));
        record.attempts = 1;
        record.outputs = json!({"zeta": 1, "alpha": {"y": [{"b": 1, "a": 2}], "x": null}})
            .as_object()
            .cloned()
            .unwrap();
        let run = RunInfo {
            id: 123,
            attempt: 1,
            url: Some("https://example.com/run/123".into()),
            actor: None,
        };
        let at = Timestamp::from(UNIX_EPOCH + Duration::from_secs(160));
        state.record(
            [(ComponentName::parse("network").unwrap(), record)],
            Some(run),
            at,
        );
        state
    }

    fn assert_keys_sorted(value: &Value) {
        match value {
            Value::Object(map) => {
                let keys: Vec<_> = map.keys().collect();
                let mut sorted = keys.clone();
                sorted.sort();
                assert_eq!(keys, sorted);
                map.values().for_each(assert_keys_sorted);
            }
            Value::Array(items) => items.iter().for_each(assert_keys_sorted),
            _ => {}
        }
    }

    #[test]
    fn the_path_is_the_state_dir_with_env_and_cloud_in_the_name() {
        let p = path(
            Path::new("/repo"),
            Path::new(".orchestrator/state"),
            &dev(),
            &aws(),
        );
        assert_eq!(p, Path::new("/repo/.orchestrator/state/dev-aws.json"));
    }

    #[test]
    fn a_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let got = read(&dir.path().join("dev-aws.json"), &dev(), &aws()).unwrap();
        assert!(got.is_none());
    }

    #[test]
    fn a_written_state_reads_back_equal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/dev-aws.json");
        let state = sample();
        write(&file, &state).unwrap();
        assert_eq!(read(&file, &dev(), &aws()).unwrap(), Some(state));
    }

    #[test]
    fn keys_are_sorted_at_every_level_and_the_file_is_pretty_printed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        write(&file, &sample()).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        assert_keys_sorted(&serde_json::from_str(&text).unwrap());
        assert!(text.starts_with("{\n  \"cloud\": \"aws\",\n  \"components\": {\n"));
        assert!(text.ends_with("}\n") && !text.ends_with("\n\n"));
    }

    #[test]
    fn the_same_state_always_writes_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("1.json"), dir.path().join("2.json"));
        let state = sample();
        write(&first, &state).unwrap();
        // Read back, the outputs keep the file's (sorted) order, not the
        // original insertion order: the bytes must not care.
        let reread = read(&first, &dev(), &aws()).unwrap().unwrap();
        write(&second, &reread).unwrap();
        assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
        assert_eq!(render(&state).unwrap(), fs::read(&first).unwrap());
    }

    #[test]
    fn a_write_returns_the_stamp_the_file_keeps_until_it_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        assert_eq!(stamp(&file).unwrap(), None);
        let written = write(&file, &sample()).unwrap();
        assert_eq!(stamp(&file).unwrap(), Some(written));
        // The same bytes again, as another writer would put them there.
        write(&file, &sample()).unwrap();
        assert_ne!(stamp(&file).unwrap(), Some(written));
    }

    #[test]
    fn the_file_is_readable_by_everyone_and_writable_by_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        write(&file, &sample()).unwrap();
        let mode = fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_file_from_a_newer_orchestrator_is_refused_before_its_shape_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        let mut value = serde_json::to_value(sample()).unwrap();
        value["schema_version"] = json!(2);
        value["drift"] = json!({"detected": true});
        fs::write(&file, value.to_string()).unwrap();
        let err = read(&file, &dev(), &aws()).unwrap_err();
        assert!(
            matches!(err, StateError::UnsupportedVersion { found: 2, .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.contains("newer orchestrator") && text.contains("upgrade"),
            "{text}"
        );
    }

    #[test]
    fn a_version_no_orchestrator_writes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        let mut value = serde_json::to_value(sample()).unwrap();
        value["schema_version"] = json!(0);
        fs::write(&file, value.to_string()).unwrap();
        let err = read(&file, &dev(), &aws()).unwrap_err();
        assert!(matches!(
            err,
            StateError::UnsupportedVersion { found: 0, .. }
        ));
        assert!(err.to_string().contains("no orchestrator writes"), "{err}");
    }

    #[test]
    fn invalid_json_is_refused_with_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        fs::write(&file, "{\n  \"schema_version\": 1,\n  \"serial\": 3,,\n}\n").unwrap();
        let err = read(&file, &dev(), &aws()).unwrap_err();
        let StateError::Corrupt { line, column, .. } = &err else {
            panic!("expected a corrupt-file error, got {err}");
        };
        assert_eq!((*line, *column), (3, 15));
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{}:3:15: not a valid state file: ",
                file.display()
            )),
            "{text}"
        );
        assert!(!text.contains("at line"), "{text}");
        assert!(
            text.contains("left untouched") && text.contains("jq ."),
            "{text}"
        );
    }

    #[test]
    fn an_empty_file_is_refused_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        fs::write(&file, "\n").unwrap();
        let err = read(&file, &dev(), &aws()).unwrap_err();
        assert!(
            err.to_string()
                .contains(":1:1: not a valid state file: the file is empty"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_shape_is_refused_with_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        write(&file, &sample()).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        fs::write(&file, text.replace("\"succeeded\"", "\"done\"")).unwrap();
        let err = read(&file, &dev(), &aws()).unwrap_err();
        let StateError::Corrupt { line, reason, .. } = &err else {
            panic!("expected a corrupt-file error, got {err}");
        };
        let expected_line = text
            .lines()
            .position(|l| l.contains("\"succeeded\""))
            .unwrap()
            + 1;
        assert_eq!(*line, expected_line);
        assert!(reason.contains("done"), "{reason}");
    }

    #[test]
    fn a_file_for_another_environment_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prod-aws.json");
        write(&file, &sample()).unwrap();
        let prod = EnvName::parse("prod").unwrap();
        let err = read(&file, &prod, &aws()).unwrap_err();
        assert!(matches!(err, StateError::Mismatch { .. }));
        let text = err.to_string();
        assert!(text.contains("records dev-aws, not prod-aws"), "{text}");
        assert!(text.contains("dev-aws.json"), "{text}");
    }

    #[test]
    fn a_file_lock_is_had_as_soon_as_it_is_given_back_and_a_stuck_holder_is_named() {
        let tmp = tempfile::TempDir::new().unwrap();
        let path = tmp.path().join("dev-aws.json");
        let held = FileLock::take(&path).unwrap();
        let err = FileLock::take_within(&path, Duration::from_millis(100))
            .err()
            .expect("the lock is held");
        let message = err.message();
        assert!(message.contains("dev-aws.json"), "{message}");
        assert!(
            message.contains(".dev-aws.json.lock` names it"),
            "{message}"
        );

        let giver = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(held);
        });
        let start = std::time::Instant::now();
        let taken = FileLock::take_within(&path, Duration::from_secs(30));
        assert!(taken.is_ok());
        assert!(start.elapsed() < Duration::from_secs(10));
        giver.join().unwrap();
        drop(taken);
        // The thread that waited past its time gave the lock back.
        assert!(FileLock::take_within(&path, Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn update_starts_a_new_state_when_there_is_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        let network = ComponentName::parse("network").unwrap();
        let record = ComponentRecord::new(Status::Running, RecordAction::Apply);
        let at = Timestamp::from(UNIX_EPOCH);
        let state = update(&file, &dev(), &aws(), |s| {
            s.record([(network.clone(), record)], None, at);
        })
        .unwrap();
        assert_eq!(state.serial, 1);
        assert_eq!(read(&file, &dev(), &aws()).unwrap(), Some(state));
    }

    #[test]
    fn update_refuses_a_newer_file_and_does_not_touch_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("dev-aws.json");
        let text = "{\"schema_version\": 9, \"anything\": []}";
        fs::write(&file, text).unwrap();
        let err = update(&file, &dev(), &aws(), |_| {}).unwrap_err();
        assert!(matches!(
            err,
            StateError::UnsupportedVersion { found: 9, .. }
        ));
        assert_eq!(fs::read_to_string(&file).unwrap(), text);
    }
}
