//! The live report of a run for people: one line per component event with
//! the time since the start, each component's own output prefixed with its
//! name, and, in a terminal, a progress line with counts by status.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufWriter, IsTerminal, Stderr, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::events::{Event, Status, Stream, Target};

/// Prints a run's events to stderr.
///
/// Without a terminal (in CI, or redirected to a file) lines are buffered
/// and written when no more events are waiting: a component printing
/// thousands of lines costs a few writes, not one each.
pub struct Terminal {
    start: Instant,
    multi_cloud: bool,
    width: usize,
    total: usize,
    running: usize,
    done: Vec<Status>,
    progress: Option<ProgressBar>,
    /// Whether statuses are coloured: in a terminal, unless `NO_COLOR`.
    colour: bool,
    out: BufWriter<Stderr>,
}

impl Terminal {
    /// A report on stderr; the progress line appears only in a terminal.
    pub fn new() -> Terminal {
        Terminal {
            start: Instant::now(),
            multi_cloud: false,
            width: 0,
            total: 0,
            running: 0,
            done: Vec::new(),
            progress: None,
            colour: false,
            out: BufWriter::new(std::io::stderr()),
        }
    }

    fn label<'a>(&self, target: &'a Target) -> Cow<'a, str> {
        if self.multi_cloud {
            Cow::Owned(format!("{}/{}", target.cloud, target.component))
        } else {
            Cow::Borrowed(target.component.as_str())
        }
    }

    fn say(&mut self, line: fmt::Arguments<'_>) {
        match &self.progress {
            Some(p) => p.println(line.to_string()),
            None => {
                let _ = self.out.write_fmt(line);
                let _ = self.out.write_all(b"\n");
            }
        }
    }

    fn stamp(&self) -> String {
        format!("[{:>7}]", seconds(self.start.elapsed()))
    }

    /// Output lines are indented by the stamp's width, so a component's
    /// lines and its events line up under the same name column.
    const STAMP_WIDTH: usize = "[1234.5s] ".len();

    fn update_progress(&self) {
        if let Some(p) = &self.progress {
            let count = |s: Status| self.done.iter().filter(|d| **d == s).count();
            let mut parts = vec![
                format!("{}/{} done", self.done.len(), self.total),
                format!("{} running", self.running),
            ];
            for s in [Status::Failed, Status::Skipped, Status::Cancelled] {
                let n = count(s);
                if n > 0 {
                    parts.push(format!("{n} {s}"));
                }
            }
            p.set_message(parts.join(" · "));
        }
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal::new()
    }
}

/// A duration as `1.2s` or `3m04s`.
pub fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

impl crate::events::Subscriber for Terminal {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::RunStarted {
                run_id,
                environment,
                targets,
            } => {
                self.start = Instant::now();
                self.total = targets.len();
                self.multi_cloud = crate::events::several_clouds(targets);
                self.width = targets
                    .iter()
                    .map(|(t, _)| self.label(t).len())
                    .max()
                    .unwrap_or(0);
                self.colour = super::colour_on_stderr();
                if std::io::stderr().is_terminal() {
                    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.progress = Some(bar);
                }
                let line = format!(
                    "Run {run_id}: {} in {environment}",
                    super::counted(self.total, "component")
                );
                self.say(format_args!("{line}"));
                self.update_progress();
            }
            Event::Started { target, action, .. } => {
                self.running += 1;
                let line = format!(
                    "{} {:<w$}  started ({})",
                    self.stamp(),
                    self.label(target),
                    action.as_str(),
                    w = self.width
                );
                self.say(format_args!("{line}"));
                self.update_progress();
            }
            Event::Step { target, command } => {
                let label = self.label(target);
                let w = self.width + Self::STAMP_WIDTH;
                self.say(format_args!("{label:<w$} | $ {command}"));
            }
            Event::Line {
                target,
                stream,
                text,
            } => {
                let bar = if *stream == Stream::Stderr { "!" } else { "|" };
                let label = self.label(target);
                let w = self.width + Self::STAMP_WIDTH;
                self.say(format_args!("{label:<w$} {bar} {text}"));
            }
            Event::Retrying {
                target,
                attempt,
                delay,
                pattern,
            } => {
                let line = format!(
                    "{} {:<w$}  attempt {attempt} failed with a transient error (matched `{pattern}`); retrying in {}",
                    self.stamp(),
                    self.label(target),
                    seconds(*delay),
                    w = self.width
                );
                self.say(format_args!("{line}"));
            }
            Event::Finished(f) => {
                if f.started_at.is_some() {
                    self.running = self.running.saturating_sub(1);
                }
                self.done.push(f.status);
                let status = super::paint(
                    self.colour,
                    super::status_style(f.status),
                    &f.status.to_string(),
                );
                let mut line = format!(
                    "{} {:<w$}  {status}",
                    self.stamp(),
                    self.label(&f.target),
                    w = self.width
                );
                if f.started_at.is_some() {
                    line.push_str(&format!(" in {}", seconds(f.duration())));
                }
                if f.attempts > 1 {
                    line.push_str(&format!(" after {} attempts", f.attempts));
                }
                if let Some(e) = &f.error {
                    line.push_str(&format!(": {e}"));
                }
                self.say(format_args!("{line}"));
                self.update_progress();
            }
            Event::RunFinished { .. } => {
                if let Some(p) = self.progress.take() {
                    p.finish_and_clear();
                }
            }
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
    }
}
