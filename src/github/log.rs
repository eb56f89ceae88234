//! A run's events as a GitHub Actions log: one line when a component
//! starts, and its whole output as one collapsed group when it finishes, so
//! the output of components running side by side never interleaves. A
//! failure is also an error annotation on the run page (the first
//! [`MAX_ERRORS`]; the page drops the rest silently, so one warning counts
//! them instead).
//!
//! Component output is the components' text, not ours: each group's body is
//! printed inside `::stop-commands::`, so a line such as `::add-mask::` or
//! `::endgroup::` in it is shown and never obeyed.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use super::commands::{self, Level, MAX_ERRORS};
use crate::events::{Event, Finished, Subscriber, Target};
use crate::report::terminal::seconds;

/// How much of one component's output is kept for its group; the rest is
/// counted, and is whole in the component's log file.
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;

/// How many of a failed component's last lines go into its annotation.
const ANNOTATION_LINES: usize = 10;

/// Prints a run's events as log groups and annotations.
pub struct ActionsLog {
    out: Box<dyn Write + Send>,
    start: Instant,
    environment: String,
    multi_cloud: bool,
    buffers: HashMap<Target, Buffer>,
    errors: usize,
}

#[derive(Default)]
struct Buffer {
    text: String,
    dropped: usize,
}

impl ActionsLog {
    /// A log on stderr, where the runner reads commands as it does on stdout.
    pub fn new() -> ActionsLog {
        ActionsLog::to(Box::new(std::io::stderr()))
    }

    /// A log written to `out`.
    pub fn to(out: Box<dyn Write + Send>) -> ActionsLog {
        ActionsLog {
            out,
            start: Instant::now(),
            environment: String::new(),
            multi_cloud: false,
            buffers: HashMap::new(),
            errors: 0,
        }
    }

    /// How a component is named in the log and in the step summary's links.
    pub fn label(target: &Target, multi_cloud: bool) -> String {
        if multi_cloud {
            format!("{} ({})", target.component, target.cloud)
        } else {
            target.component.to_string()
        }
    }

    fn write(&mut self, text: &str) {
        // One write per event: nothing else can land inside a group.
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    fn stamp(&self) -> String {
        format!("[{:>7}]", seconds(self.start.elapsed()))
    }

    fn finished(&mut self, f: &Finished) {
        let label = Self::label(&f.target, self.multi_cloud);
        let mut text = String::new();
        if f.started_at.is_some() {
            let mut title = format!(
                "{label}: {} {} in {}",
                f.action.as_str(),
                f.status,
                seconds(f.duration())
            );
            if f.attempts > 1 {
                title.push_str(&format!(" after {} attempts", f.attempts));
            }
            let buffer = self.buffers.remove(&f.target).unwrap_or_default();
            let mut body = buffer.text;
            if buffer.dropped > 0 {
                body.push_str(&format!(
                    "── {} more lines are in the component's log file\n",
                    buffer.dropped
                ));
            }
            if let Some(e) = &f.error {
                body.push_str(&format!("── {}: {e}\n", f.status));
            }
            text.push_str(&format!("{} {label} {}\n", self.stamp(), f.status));
            text.push_str(&commands::group(&title, &body));
        } else {
            text.push_str(&format!(
                "{} {label} {}{}\n",
                self.stamp(),
                f.status,
                f.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        if f.status == crate::events::Status::Failed {
            self.errors += 1;
            if self.errors <= MAX_ERRORS {
                let mut message = f.error.clone().unwrap_or_else(|| "failed".into());
                let tail = &f.tail[f.tail.len().saturating_sub(ANNOTATION_LINES)..];
                if !tail.is_empty() {
                    message.push_str("\n\n");
                    message.push_str(&tail.join("\n"));
                }
                text.push_str(&commands::annotation(
                    Level::Error,
                    &format!(
                        "{} failed to {} on {}/{}",
                        f.target.component,
                        f.action.as_str(),
                        self.environment,
                        f.target.cloud
                    ),
                    None,
                    &message,
                ));
            }
        }
        self.write(&text);
    }
}

impl Default for ActionsLog {
    fn default() -> Self {
        ActionsLog::new()
    }
}

impl ActionsLog {
    /// Keeps a line for the component's group, up to the group's limit.
    fn buffer(&mut self, target: &Target, text: &str) {
        let buffer = self.buffers.entry(target.clone()).or_default();
        if buffer.text.len() + text.len() < MAX_GROUP_BYTES {
            buffer.text.push_str(text);
            buffer.text.push('\n');
        } else {
            buffer.dropped += 1;
        }
    }
}

impl Subscriber for ActionsLog {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                environment,
                targets,
            } => {
                self.start = Instant::now();
                self.environment = environment.to_string();
                self.multi_cloud = crate::events::several_clouds(targets);
                let n = targets.len();
                let text = format!(
                    "Run {run_id}: {} in {environment}\n",
                    crate::report::counted(n, "component")
                );
                self.write(&text);
            }
            Event::Started { target, action, .. } => {
                self.buffers.insert(target.clone(), Buffer::default());
                let text = format!(
                    "{} {} started ({})\n",
                    self.stamp(),
                    Self::label(target, self.multi_cloud),
                    action.as_str()
                );
                self.write(&text);
            }
            Event::Line { target, text, .. } => self.buffer(target, text),
            Event::Step { target, command } => self.buffer(target, &format!("$ {command}")),
            Event::Retrying {
                target,
                attempt,
                delay,
                pattern,
            } => {
                let text = format!(
                    "── attempt {attempt} failed with a transient error (matched `{pattern}`); retrying in {}",
                    seconds(*delay)
                );
                self.buffer(target, &text);
            }
            Event::Finished(f) => self.finished(f),
            Event::RunFinished { .. } if self.errors > MAX_ERRORS => {
                let text = commands::annotation(
                    Level::Warning,
                    "More failures",
                    None,
                    &format!(
                        "{} more components failed; only the first {MAX_ERRORS} are annotated",
                        self.errors - MAX_ERRORS
                    ),
                );
                self.write(&text);
            }
            // Nothing else (the end of a run with few failures, and events
            // other outputs show) goes into the log.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::config::{CloudName, ComponentName, EnvName};
    use crate::events::{RunResult, Status, Stream};
    use crate::plan::Action;

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn target(name: &str) -> Target {
        Target {
            cloud: CloudName::parse("aws").unwrap(),
            component: ComponentName::parse(name).unwrap(),
        }
    }

    fn finished(name: &str, status: Status, error: Option<&str>) -> Event {
        let now = SystemTime::now();
        Event::Finished(Box::new(Finished {
            target: target(name),
            action: Action::Create,
            status,
            attempts: 1,
            started_at: Some(now - Duration::from_millis(1200)),
            finished_at: now,
            error: error.map(String::from),
            fingerprint: String::new(),
            outputs: Default::default(),
            tail: vec!["Error: quota exceeded".into()],
        }))
    }

    fn line(name: &str, text: &str) -> Event {
        Event::Line {
            target: target(name),
            stream: Stream::Stdout,
            text: text.into(),
        }
    }

    fn started(name: &str) -> Event {
        Event::Started {
            target: target(name),
            action: Action::Create,
            at: SystemTime::now(),
        }
    }

    fn run(events: &[Event]) -> String {
        let sink = Sink::default();
        let mut log = ActionsLog::to(Box::new(sink.clone()));
        log.on_event(&Event::RunStarted {
            run_id: 7,
            environment: EnvName::parse("dev").unwrap(),
            targets: vec![(target("network"), Action::Create)],
        });
        for e in events {
            log.on_event(e);
        }
        log.on_event(&Event::RunFinished {
            result: RunResult::Failed,
        });
        String::from_utf8(sink.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn overlapping_components_print_whole_groups_in_the_order_they_finish() {
        let text = run(&[
            started("network"),
            started("registry"),
            line("network", "network 1"),
            line("registry", "registry 1"),
            line("network", "network 2"),
            finished("registry", Status::Succeeded, None),
            finished("network", Status::Succeeded, None),
        ]);
        let groups: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("::group::"))
            .collect();
        assert_eq!(groups.len(), 2, "{text}");
        assert!(groups[0].starts_with("::group::registry: create succeeded in 1.2s"));
        let network = &text[text.find("::group::network").unwrap()..];
        let body: Vec<&str> = network.lines().skip(2).take(2).collect();
        assert_eq!(body, ["network 1", "network 2"], "{text}");
        assert!(!text.contains("::error"));
    }

    #[test]
    fn a_failure_is_annotated_with_its_error_and_last_lines() {
        let text = run(&[
            started("network"),
            line("network", "::add-mask::hello"),
            finished("network", Status::Failed, Some("exited with code 1")),
        ]);
        assert!(
            text.contains(
                "::error title=network failed to create on dev/aws::exited with code 1%0A%0AError: quota exceeded\n"
            ),
            "{text}"
        );
        // The component's own command line sits between stop-commands markers.
        let at = text.find("::add-mask::hello").unwrap();
        assert!(
            text[..at].contains("::stop-commands::orchestrator-"),
            "{text}"
        );
    }

    #[test]
    fn only_ten_failures_are_annotated_and_the_rest_are_counted() {
        let mut events = Vec::new();
        for i in 0..13 {
            let name = format!("c{i:02}");
            events.push(started(&name));
            events.push(finished(&name, Status::Failed, Some("boom")));
        }
        let text = run(&events);
        assert_eq!(text.matches("::error ").count(), 10, "{text}");
        assert!(text.contains(
            "::warning title=More failures::3 more components failed; only the first 10 are annotated"
        ));
    }

    #[test]
    fn a_component_that_never_started_is_one_line() {
        let mut skipped = finished("platform", Status::Skipped, Some("addons failed"));
        if let Event::Finished(f) = &mut skipped {
            f.started_at = None;
            f.attempts = 0;
        }
        let text = run(&[skipped]);
        assert!(text.contains("platform skipped: addons failed\n"), "{text}");
        assert!(!text.contains("::group::platform"));
    }

    #[test]
    fn a_retry_is_a_line_of_its_components_group() {
        let text = run(&[
            started("network"),
            line("network", "timeout"),
            Event::Retrying {
                target: target("network"),
                attempt: 1,
                delay: Duration::from_secs(2),
                pattern: "timeout".into(),
            },
            line("network", "done"),
            finished("network", Status::Succeeded, None),
        ]);
        let network = &text[text.find("::group::network").unwrap()..];
        let body: Vec<&str> = network.lines().skip(2).take(3).collect();
        assert_eq!(
            body,
            [
                "timeout",
                "── attempt 1 failed with a transient error (matched `timeout`); retrying in 2.0s",
                "done"
            ],
            "{text}"
        );
    }
}
