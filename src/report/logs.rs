//! One log file per component and run:
//! `.orchestrator/logs/<run-id>/<cloud>/<component>.log` (git-ignored), so a
//! failure can be read whole after the terminal has scrolled past it.
//!
//! A log file is created when its component first prints, and holds the
//! component's start, the commands it ran, every line it printed and how it
//! ended. A component that prints nothing gets no file: creating thousands
//! of files nobody reads would cost more than the components themselves,
//! and the result and error of each component are in the state file anyway.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::CloudName;
use crate::events::{Event, Stream, Subscriber, Target};
use crate::plan::Action;

/// Where the logs of all runs go, relative to the repository root.
pub const LOGS_DIR: &str = ".orchestrator/logs";

/// How many runs' logs [`prune`] keeps, as the state keeps 50 history
/// entries.
pub const KEEP_RUNS: usize = 50;

/// [`prune`] leaves a run's logs alone in its first day: it may still be
/// running (in another terminal, on the same working tree).
const KEEP_YOUNGER_THAN: Duration = Duration::from_secs(24 * 60 * 60);

/// Writes each component's output to its log file.
pub struct Logs {
    dir: PathBuf,
    running: foldhash::HashMap<Target, Log>,
    /// Cloud directories already created in this run.
    made: HashSet<CloudName>,
    warned: bool,
}

/// The log of one running component: what comes before it first prints is
/// held back until it does, or dropped when it ends silent.
enum Log {
    /// Nothing printed yet: the start, kept as it came (most components
    /// never print, and their start is never formatted), and the lines
    /// written since.
    Pending {
        started: Option<(Action, SystemTime)>,
        held: String,
    },
    Open(BufWriter<File>),
    /// The file could not be created; the warning was given.
    Failed,
}

impl Logs {
    /// Logs for the run with this id, under `root`.
    pub fn new(root: &Path, run_id: u64) -> Logs {
        Logs {
            dir: root.join(LOGS_DIR).join(run_id.to_string()),
            running: Default::default(),
            made: HashSet::new(),
            warned: false,
        }
    }

    /// The directory of this run's logs, once a component printed
    /// something; until then there is none.
    pub fn dir(&self) -> Option<&Path> {
        (!self.made.is_empty()).then_some(self.dir.as_path())
    }

    /// Adds a line to the log of `target`. A line the component `printed`
    /// creates the file, with what was held back before it.
    fn write(&mut self, target: &Target, line: fmt::Arguments<'_>, printed: bool) {
        if !self.running.contains_key(target) {
            self.running.insert(
                target.clone(),
                Log::Pending {
                    started: None,
                    held: String::new(),
                },
            );
        }
        let Some(log) = self.running.get_mut(target) else {
            return;
        };
        if let Log::Pending { started, held } = log {
            if !printed {
                let _ = held.write_fmt(line);
                held.push('\n');
                return;
            }
            let (started, held) = (started.take(), std::mem::take(held));
            *log = match create(&self.dir, &mut self.made, target) {
                Ok(file) => {
                    let mut f = BufWriter::new(file);
                    if let Some((action, at)) = started {
                        let _ = writeln!(
                            f,
                            "# {} {} on {}, started {}",
                            action.as_str(),
                            target.component,
                            target.cloud,
                            humantime::format_rfc3339_seconds(at)
                        );
                    }
                    let _ = f.write_all(held.as_bytes());
                    Log::Open(f)
                }
                Err(e) => {
                    if !self.warned {
                        eprintln!(
                            "warning: cannot write logs under {}: {e}",
                            self.dir.display()
                        );
                        self.warned = true;
                    }
                    Log::Failed
                }
            };
        }
        if let Log::Open(f) = log {
            let _ = f.write_fmt(line);
            let _ = f.write_all(b"\n");
        }
    }
}

/// Removes the logs of all but the [`KEEP_RUNS`] most recent runs under
/// `root`, but for those of runs started less than a day before `now`, and
/// returns the ids of the runs whose logs it removed. A run id starts with
/// the second the run started, so ids sort by age; anything not named like
/// one is left alone. The first directory that cannot be removed is
/// reported, and ends the pruning.
pub fn prune(root: &Path, now: SystemTime) -> Vec<u64> {
    let dir = root.join(LOGS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut runs: Vec<u64> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    if runs.len() <= KEEP_RUNS {
        return Vec::new();
    }
    runs.sort_unstable_by(|a, b| b.cmp(a));
    let young = now
        .checked_sub(KEEP_YOUNGER_THAN)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let mut removed = Vec::new();
    for id in runs.split_off(KEEP_RUNS) {
        if id / 1_000_000 >= young {
            continue;
        }
        if let Err(e) = std::fs::remove_dir_all(dir.join(id.to_string())) {
            eprintln!(
                "warning: cannot remove old logs under {}: {e}",
                dir.display()
            );
            break;
        }
        removed.push(id);
    }
    removed
}

/// Creates the log file of `target` under `dir`, and its cloud's directory
/// the first time.
fn create(dir: &Path, made: &mut HashSet<CloudName>, target: &Target) -> std::io::Result<File> {
    let dir = dir.join(target.cloud.as_str());
    if !made.contains(&target.cloud) {
        std::fs::create_dir_all(&dir)?;
        made.insert(target.cloud.clone());
    }
    File::create(dir.join(format!("{}.log", target.component)))
}

impl Subscriber for Logs {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Started { target, action, at } => {
                self.running.insert(
                    target.clone(),
                    Log::Pending {
                        started: Some((*action, *at)),
                        held: String::new(),
                    },
                );
            }
            Event::Step { target, command } => {
                self.write(target, format_args!("$ {command}"), false);
            }
            Event::Line {
                target,
                stream,
                text,
            } => {
                let bang = if *stream == Stream::Stderr { "! " } else { "" };
                self.write(target, format_args!("{bang}{text}"), true);
            }
            Event::Retrying {
                target,
                attempt,
                delay,
                pattern,
            } => {
                self.write(
                    target,
                    format_args!(
                        "# attempt {attempt} failed transiently (`{pattern}`); retrying in {delay:?}"
                    ),
                    false,
                );
            }
            Event::Finished(fin) => {
                if let Some(Log::Open(mut f)) = self.running.remove(&fin.target) {
                    let _ = writeln!(
                        f,
                        "# {}{}",
                        fin.status,
                        fin.error
                            .as_ref()
                            .map(|e| format!(": {e}"))
                            .unwrap_or_default()
                    );
                    let _ = f.flush();
                }
            }
            Event::RunStarted { .. } | Event::RunFinished { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ComponentName;
    use crate::events::{Finished, Status};

    #[test]
    fn pruning_keeps_the_latest_runs_and_any_started_within_a_day() {
        let root = tempfile::tempdir().unwrap();
        let logs = root.path().join(LOGS_DIR);
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let started = |secs_ago: u64| (1_800_000_000 - secs_ago) * 1_000_000 + 123_456;
        // 53 runs a week or more old, one an hour old, and what is not a run.
        let week = 7 * 24 * 3600;
        let mut old: Vec<u64> = (0..53).map(|i| started(week + i * 60)).collect();
        let recent = started(3600);
        for id in old.iter().chain([&recent]) {
            std::fs::create_dir_all(logs.join(id.to_string()).join("aws")).unwrap();
            std::fs::write(logs.join(id.to_string()).join("aws/net.log"), "x").unwrap();
        }
        std::fs::create_dir_all(logs.join("notes")).unwrap();
        std::fs::write(logs.join("123"), "a file, not a run").unwrap();

        let mut removed = prune(root.path(), now);
        removed.sort_unstable();
        // 54 runs: the 4 oldest go, the recent one and 49 old ones stay.
        old.sort_unstable();
        assert_eq!(removed, old[..4]);
        let mut left: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), KEEP_RUNS + 2, "{left:?}");
        assert!(left.contains(&recent.to_string()));
        assert!(left.contains(&"notes".to_string()) && left.contains(&"123".to_string()));
        assert!(prune(root.path(), now).is_empty(), "nothing more to do");

        // Runs of the last day stay even beyond the 50.
        for i in 0..10 {
            std::fs::create_dir_all(logs.join(started(60 + i).to_string())).unwrap();
        }
        assert_eq!(prune(root.path(), now).len(), 10, "10 more old ones go");
        let runs = std::fs::read_dir(&logs).unwrap().count() - 2;
        assert_eq!(runs, KEEP_RUNS);
        for i in 0..60 {
            std::fs::create_dir_all(logs.join(started(600 + i).to_string())).unwrap();
        }
        let removed = prune(root.path(), now);
        assert_eq!(
            removed.len(),
            KEEP_RUNS - 11,
            "every old one goes, no young one"
        );
        assert!(
            removed
                .iter()
                .all(|id| id / 1_000_000 < 1_800_000_000 - 24 * 3600)
        );
    }

    fn target(name: &str) -> Target {
        Target {
            cloud: CloudName::parse("aws").unwrap(),
            component: ComponentName::parse(name).unwrap(),
        }
    }

    fn started(name: &str) -> Event {
        Event::Started {
            target: target(name),
            action: Action::Create,
            at: SystemTime::UNIX_EPOCH,
        }
    }

    fn step(name: &str) -> Event {
        Event::Step {
            target: target(name),
            command: "sh ./apply.sh".to_string(),
        }
    }

    fn line(name: &str, stream: Stream, text: &str) -> Event {
        Event::Line {
            target: target(name),
            stream,
            text: text.to_string(),
        }
    }

    fn finished(name: &str, status: Status, error: Option<&str>) -> Event {
        Event::Finished(Box::new(Finished {
            target: target(name),
            action: Action::Create,
            status,
            attempts: 1,
            started_at: Some(SystemTime::UNIX_EPOCH),
            finished_at: SystemTime::UNIX_EPOCH,
            error: error.map(str::to_string),
            fingerprint: String::new(),
            outputs: Default::default(),
            tail: Vec::new(),
        }))
    }

    /// Feeds `events` to the logs of a run in a fresh directory; returns
    /// the directory and the run's log directory.
    fn replay(events: Vec<Event>) -> (tempfile::TempDir, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let mut logs = Logs::new(root.path(), 7);
        for event in &events {
            logs.on_event(event);
        }
        let dir = root.path().join(LOGS_DIR).join("7");
        (root, dir)
    }

    #[test]
    fn a_component_that_prints_gets_every_line_with_its_start_steps_and_end() {
        let (_root, dir) = replay(vec![
            started("net"),
            step("net"),
            line("net", Stream::Stdout, "creating vpc"),
            line("net", Stream::Stderr, "warning: slow"),
            line("net", Stream::Stdout, "done"),
            finished(
                "net",
                Status::Failed,
                Some("`sh ./apply.sh` exited with code 1"),
            ),
        ]);
        let text = std::fs::read_to_string(dir.join("aws/net.log")).unwrap();
        assert_eq!(
            text,
            "# create net on aws, started 1970-01-01T00:00:00Z\n\
             $ sh ./apply.sh\n\
             creating vpc\n\
             ! warning: slow\n\
             done\n\
             # failed: `sh ./apply.sh` exited with code 1\n"
        );
    }

    #[test]
    fn a_component_that_prints_nothing_gets_no_log_file() {
        let (_root, dir) = replay(vec![
            started("quiet"),
            step("quiet"),
            started("loud"),
            step("loud"),
            finished("quiet", Status::Failed, Some("exited with code 1")),
            line("loud", Stream::Stdout, "hello"),
            finished("loud", Status::Succeeded, None),
        ]);
        assert!(!dir.join("aws/quiet.log").exists());
        let text = std::fs::read_to_string(dir.join("aws/loud.log")).unwrap();
        assert!(
            text.ends_with("$ sh ./apply.sh\nhello\n# succeeded\n"),
            "{text}"
        );
    }

    #[test]
    fn a_run_where_nothing_prints_creates_no_log_directory() {
        let (root, _dir) = replay(
            ["a", "b"]
                .into_iter()
                .flat_map(|n| [started(n), step(n), finished(n, Status::Succeeded, None)])
                .collect(),
        );
        assert!(!root.path().join(LOGS_DIR).exists());
    }
}
