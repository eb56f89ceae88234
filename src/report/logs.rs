//! One log file per component and run:
//! `.orchestrator/logs/<run-id>/<cloud>/<component>.log` (git-ignored), so a
//! failure can be read whole after the terminal has scrolled past it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use crate::events::{Event, Stream, Subscriber, Target};

/// Where the logs of all runs go, relative to the repository root.
pub const LOGS_DIR: &str = ".orchestrator/logs";

/// Writes each component's output to its log file.
pub struct Logs {
    dir: PathBuf,
    open: HashMap<Target, BufWriter<File>>,
    warned: bool,
}

impl Logs {
    /// Logs for the run with this id, under `root`.
    pub fn new(root: &std::path::Path, run_id: u64) -> Logs {
        Logs {
            dir: root.join(LOGS_DIR).join(run_id.to_string()),
            open: HashMap::new(),
            warned: false,
        }
    }

    /// The directory of this run's logs.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    fn file(&mut self, target: &Target) -> Option<&mut BufWriter<File>> {
        if !self.open.contains_key(target) {
            let dir = self.dir.join(target.cloud.as_str());
            let opened = std::fs::create_dir_all(&dir)
                .and_then(|()| File::create(dir.join(format!("{}.log", target.component))));
            match opened {
                Ok(f) => {
                    self.open.insert(target.clone(), BufWriter::new(f));
                }
                Err(e) => {
                    if !self.warned {
                        eprintln!(
                            "warning: cannot write logs under {}: {e}",
                            self.dir.display()
                        );
                        self.warned = true;
                    }
                    return None;
                }
            }
        }
        self.open.get_mut(target)
    }
}

impl Subscriber for Logs {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::Started { target, action, at } => {
                let at = humantime::format_rfc3339_seconds(*at);
                if let Some(f) = self.file(target) {
                    let _ = writeln!(
                        f,
                        "# {} {} on {}, started {at}",
                        action.as_str(),
                        target.component,
                        target.cloud
                    );
                }
            }
            Event::Line {
                target,
                stream,
                text,
            } => {
                if let Some(f) = self.file(target) {
                    let _ = writeln!(
                        f,
                        "{}{text}",
                        if *stream == Stream::Stderr { "! " } else { "" }
                    );
                }
            }
            Event::Retrying {
                target,
                attempt,
                delay,
                pattern,
            } => {
                if let Some(f) = self.file(target) {
                    let _ = writeln!(
                        f,
                        "# attempt {attempt} failed transiently (`{pattern}`); retrying in {delay:?}"
                    );
                }
            }
            Event::Finished(fin) => {
                if fin.started_at.is_none() {
                    return;
                }
                if let Some(mut f) = self.open.remove(&fin.target) {
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
            _ => {}
        }
    }
}
