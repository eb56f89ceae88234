//! `status` and `state get | set | validate | next | history | unlock`:
//! reading the record, and changing it by hand when an operator must.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde_json::json;

use super::{
    Failure, Format, SettableStatus, StateCommand, StatusArgs, StoreArgs, component, environment,
    json, load, open_store, usage,
};
use crate::config::{CloudName, Config, EnvName};
use crate::exec::engine::{self, Observation};
use crate::fingerprint::Fingerprinter;
use crate::graph::Walk;
use crate::state::{
    ComponentRecord, HistoryEntry, RecordAction, RunInfo, Status, Timestamp, lock, publish, store,
};

/// The configuration, environment and clouds a state command is about.
fn target(file: &Path, at: &StatusArgs) -> Result<(Config, EnvName, Vec<CloudName>), Failure> {
    let config = load(file)?;
    let (env, clouds) = environment(&config, &at.env, at.cloud.as_deref())?;
    Ok((config, env, clouds))
}

/// As [`target`], with each cloud's state read and every component fingerprinted.
fn observe(
    file: &Path,
    at: &StatusArgs,
) -> Result<(Config, crate::config::EnvName, Vec<Observation>), Failure> {
    let (config, env, clouds) = target(file, at)?;
    super::refresh_quietly(&config, &env, &clouds, crate::github::token(None));
    let observations = engine::observe(&config, &Fingerprinter::new(&config), &env, &clouds)?;
    Ok((config, env, observations))
}

/// One document for one cloud, an array of them for several.
fn per_cloud(mut docs: Vec<serde_json::Value>) -> serde_json::Value {
    if docs.len() == 1 {
        docs.remove(0)
    } else {
        docs.into()
    }
}

pub(super) fn status(file: &Path, args: &StatusArgs, out: &mut dyn Write) -> Result<(), Failure> {
    let (config, env, observations) = observe(file, args)?;
    let mut docs = Vec::new();
    let mut text = String::new();
    for o in &observations {
        let state = o.state.as_ref();
        let mut rows = Vec::new();
        let mut components = serde_json::Map::new();
        // The config's components, then those recorded as possibly
        // deployed that it no longer defines.
        let defined = config.components.iter().enumerate().map(|(i, c)| {
            let record = state.and_then(|s| s.components.get(&c.name));
            (&c.name, record, o.observed[i].is_current(), true)
        });
        let lost = engine::orphans(&config, state)
            .into_iter()
            .map(|(name, record)| (name, Some(record), false, false));
        for (name, record, current, is_defined) in defined.chain(lost) {
            let error = if is_defined {
                record.and_then(|r| r.error.clone()).unwrap_or_default()
            } else {
                format!("not in {}", file.display())
            };
            rows.push(vec![
                name.to_string(),
                record.map_or("-".to_string(), |r| r.status.to_string()),
                record.map_or("-".to_string(), |r| r.action.as_str().to_string()),
                record
                    .and_then(|r| r.finished_at)
                    .map_or("-".to_string(), |t| t.to_string()),
                if current { "yes" } else { "no" }.to_string(),
                error,
            ]);
            components.insert(
                name.to_string(),
                json!({ "status": record.map(|r| r.status.as_str()), "current": current, "defined": is_defined, "record": record }),
            );
        }
        let serial = state.map_or(0, |s| s.serial);
        text.push_str(&format!(
            "{env} / {} (serial {serial}, {})\n\n",
            o.cloud,
            o.state_path.display()
        ));
        text.push_str(&crate::report::table(
            &[
                "COMPONENT",
                "STATUS",
                "ACTION",
                "FINISHED",
                "CURRENT",
                "ERROR",
            ],
            &rows,
        ));
        text.push('\n');
        docs.push(json!({ "environment": env, "cloud": o.cloud, "serial": serial, "components": components }));
    }
    match args.format {
        Format::Json => out.write_all(json(&per_cloud(docs)).as_bytes())?,
        Format::Text => out
            .write_all(text.trim_end_matches('\n').as_bytes())
            .and_then(|()| out.write_all(b"\n"))?,
    }
    Ok(())
}

pub(super) fn command(
    file: &Path,
    command: StateCommand,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    match command {
        StateCommand::Get {
            at,
            component: name,
        } => {
            let (config, env, clouds) = target(file, &at)?;
            let name = name.map(|n| component(&config, &n)).transpose()?;
            super::refresh_quietly(&config, &env, &clouds, crate::github::token(None));
            let mut docs = Vec::new();
            for cloud in &clouds {
                let state = store::read(&engine::state_path(&config, &env, cloud), &env, cloud)?;
                let doc = match &name {
                    None => serde_json::to_value(&state),
                    Some(n) => serde_json::to_value(state.and_then(|mut s| s.components.remove(n))),
                };
                docs.push(doc.unwrap_or_default());
            }
            out.write_all(json(&per_cloud(docs)).as_bytes())?;
        }
        StateCommand::Validate { at } => {
            let (config, env, clouds) = target(file, &at)?;
            let mut docs = Vec::new();
            for cloud in &clouds {
                let path = engine::state_path(&config, &env, cloud);
                let state = store::read(&path, &env, cloud)?;
                if at.format == Format::Text {
                    let what = match &state {
                        Some(s) => format!(
                            "valid: serial {}, {} component records",
                            s.serial,
                            s.components.len()
                        ),
                        None => "absent (nothing deployed yet)".to_string(),
                    };
                    writeln!(out, "{env} / {cloud}: {} is {what}", path.display())?;
                }
                docs.push(json!({
                    "environment": env,
                    "cloud": cloud,
                    "path": path,
                    "exists": state.is_some(),
                    "serial": state.as_ref().map(|s| s.serial),
                }));
            }
            if at.format == Format::Json {
                out.write_all(json(&per_cloud(docs)).as_bytes())?;
            }
        }
        StateCommand::Next { at } => {
            let (config, env, observations) = observe(file, &at)?;
            let mut docs = Vec::new();
            for o in &observations {
                let graph = &config.graph;
                let next: Vec<String> = (0..graph.len())
                    .filter(|&i| !o.observed[i].is_current())
                    .filter(|&i| {
                        graph
                            .neighbours(i, Walk::Dependencies)
                            .into_iter()
                            .all(|d| o.observed[d].is_current())
                    })
                    .map(|i| graph.name(i).to_string())
                    .collect();
                if at.format == Format::Text {
                    writeln!(
                        out,
                        "{env} / {}: {}",
                        o.cloud,
                        if next.is_empty() {
                            "nothing".to_string()
                        } else {
                            next.join(" ")
                        }
                    )?;
                }
                docs.push(json!({ "environment": env, "cloud": o.cloud, "next": next }));
            }
            if at.format == Format::Json {
                out.write_all(json(&per_cloud(docs)).as_bytes())?;
            }
        }
        StateCommand::Set {
            at,
            component: name,
            status,
            reason,
            store: store_args,
        } => {
            let config = load(file)?;
            let (env, mut clouds) = environment(&config, &at.env, at.cloud.as_deref())?;
            // A component no longer in the config may still be recorded:
            // an operator can say it is gone (or failed, or pending), but
            // not that it succeeded, which takes a definition to fingerprint.
            let (name, c) = match component(&config, &name) {
                Ok(name) => {
                    let c = config.component(name.as_str());
                    (name, c)
                }
                Err(unknown) => {
                    let Ok(name) = crate::config::ComponentName::parse(name.trim()) else {
                        return Err(unknown);
                    };
                    super::refresh_quietly(&config, &env, &clouds, crate::github::token(None));
                    // Only where it is recorded: the other clouds have
                    // nothing to change.
                    clouds.retain(|cloud| {
                        store::read(&engine::state_path(&config, &env, cloud), &env, cloud)
                            .ok()
                            .flatten()
                            .is_some_and(|s| s.components.contains_key(&name))
                    });
                    if clouds.is_empty() {
                        return Err(unknown);
                    }
                    if status == SettableStatus::Succeeded {
                        return Err(usage(
                            format!(
                                "cannot mark `{name}` succeeded: it is no longer in {}, so there \
                                 is no definition to fingerprint",
                                file.display()
                            ),
                            Some("mark it `destroyed` once its resources are gone".into()),
                        ));
                    }
                    (name, None)
                }
            };
            let fingerprinter = Fingerprinter::new(&config);
            let store = open_store(&config, &store_args)?;
            let run = hand_run();
            for cloud in &clouds {
                let fingerprint = c.map(|c| fingerprinter.fingerprint(&config, &env, cloud, c));
                let target = store.target(&env, cloud);
                let written = store.transact(&target, true, |state| {
                    if c.is_none() && !state.components.contains_key(&name) {
                        return Err(crate::state::sync::Refusal::Other(format!(
                            "unknown component `{name}`: it is neither in {} nor recorded in \
                             the state of {env} / {cloud}",
                            file.display()
                        )));
                    }
                    let now = Timestamp::from(SystemTime::now());
                    let (new_status, action) = match status {
                        SettableStatus::Succeeded => (Status::Succeeded, RecordAction::Apply),
                        SettableStatus::Failed => (Status::Failed, RecordAction::Apply),
                        SettableStatus::Pending => (Status::Pending, RecordAction::Apply),
                        SettableStatus::Destroyed => (Status::Destroyed, RecordAction::Destroy),
                    };
                    let mut record = state
                        .components
                        .get(&name)
                        .cloned()
                        .unwrap_or_else(|| ComponentRecord::new(new_status, action));
                    record.status = new_status;
                    record.action = action;
                    record.finished_at = Some(now);
                    record.error = Some(format!("set by hand: {reason}"));
                    record.run = Some(run.clone());
                    if let (Status::Succeeded, Some(fingerprint)) = (new_status, &fingerprint) {
                        // Marking a component done means "deployed as it is now".
                        record.fingerprint = Some(fingerprint.clone());
                    }
                    state.record([(name.clone(), record)], Some(run.clone()), now);
                    let changes = BTreeMap::from([(name.clone(), new_status)]);
                    Ok(Some(publish::message(
                        &target.label(),
                        &changes,
                        &[format!("set by hand: {reason}")],
                    )))
                })?;
                super::warn_if_stale(&written);
                writeln!(
                    out,
                    "{env} / {}: {name} is now {}",
                    cloud,
                    status_name(status)
                )?;
            }
        }
        StateCommand::Unlock {
            at,
            force,
            reason,
            store: store_args,
        } => unlock(file, &at, force, reason, &store_args, out)?,
        StateCommand::History { at, all } => history(file, &at, all, out)?,
    }
    Ok(())
}

/// The run recorded for a change made by hand.
fn hand_run() -> RunInfo {
    RunInfo {
        id: 0,
        attempt: 0,
        url: None,
        actor: std::env::var("GITHUB_ACTOR")
            .or_else(|_| std::env::var("USER"))
            .ok(),
    }
}

/// `state unlock`: removes every claim on the lock, recording who did it
/// and why.
fn unlock(
    file: &Path,
    at: &StatusArgs,
    force: bool,
    reason: Option<String>,
    store_args: &StoreArgs,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let (config, env, clouds) = target(file, at)?;
    let reason = match (force, reason.as_deref().map(str::trim)) {
        (true, Some(r)) if !r.is_empty() => r.to_string(),
        _ => {
            return Err(usage(
                "state unlock needs --force and --reason",
                Some(
                    "releasing the lock of a run that is still going lets two runs change the \
                     same components at once; check the holder first with `orchestrator state \
                     get`, then: state unlock --env E --force --reason \"...\""
                        .into(),
                ),
            ));
        }
    };
    let store = open_store(&config, store_args)?;
    let run = hand_run();
    let actor = run.actor.clone().unwrap_or_else(|| "unknown".into());
    let mut docs = Vec::new();
    for cloud in &clouds {
        let target = store.target(&env, cloud);
        let mut released = Vec::new();
        let written = store.transact(&target, true, |state| {
            released = lock::clear(&mut state.lock);
            if released.is_empty() {
                return Ok(None);
            }
            let runs: Vec<String> = released.iter().map(|h| h.run.to_string()).collect();
            let note = format!(
                "lock of run {} released by {actor}: {reason}",
                runs.join(", ")
            );
            let now = Timestamp::from(SystemTime::now());
            state.bump(BTreeMap::new(), Some(run.clone()), now, Some(note.clone()));
            Ok(Some(publish::message(
                &target.label(),
                &BTreeMap::new(),
                &[note],
            )))
        })?;
        super::warn_if_stale(&written);
        if at.format == Format::Text {
            if released.is_empty() {
                writeln!(out, "{env} / {cloud}: not locked")?;
            }
            for h in &released {
                writeln!(
                    out,
                    "{env} / {cloud}: released the lock of {}",
                    h.describe()
                )?;
            }
        }
        docs.push(json!({ "environment": env, "cloud": cloud, "released": released }));
    }
    if at.format == Format::Json {
        out.write_all(json(&per_cloud(docs)).as_bytes())?;
    }
    Ok(())
}

/// `state history`: the writes the file remembers, or with `all` every
/// version of the file on the state branch.
fn history(file: &Path, at: &StatusArgs, all: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let (config, env, clouds) = target(file, at)?;
    let store = if all {
        let store = open_store(&config, &StoreArgs::default())?;
        if !store.is_shared() {
            return Err(usage(
                "--all reads the state branch, and this repository keeps its state locally",
                Some(format!("the state is {}", store.describe())),
            ));
        }
        Some(store)
    } else {
        super::refresh_quietly(&config, &env, &clouds, crate::github::token(None));
        None
    };
    let mut docs = Vec::new();
    let mut rows = Vec::new();
    for cloud in &clouds {
        let mut entries: Vec<(Option<String>, HistoryEntry)> = Vec::new();
        match &store {
            Some(store) => {
                let target = store.target(&env, cloud);
                let mut seen = std::collections::BTreeSet::new();
                for (commit, state) in store.versions(&target)? {
                    // Each version adds the entry of its own serial; older
                    // entries it carries are listed with their own version.
                    if let Some(entry) = state
                        .history
                        .iter()
                        .rev()
                        .find(|h| h.serial == state.serial)
                    {
                        if seen.insert(entry.serial) {
                            entries.push((Some(commit), entry.clone()));
                        }
                    }
                }
                entries.reverse();
            }
            None => {
                let path = engine::state_path(&config, &env, cloud);
                if let Some(state) = store::read(&path, &env, cloud)? {
                    entries = state.history.into_iter().map(|h| (None, h)).collect();
                }
            }
        }
        for (commit, entry) in &entries {
            let changes: Vec<String> = entry
                .changes
                .iter()
                .map(|(n, s)| format!("{n} {s}"))
                .collect();
            let mut what = changes.join(", ");
            if let Some(note) = &entry.note {
                if !what.is_empty() {
                    what.push_str("; ");
                }
                what.push_str(note);
            }
            let run = entry.run.as_ref();
            rows.push(vec![
                cloud.to_string(),
                entry.serial.to_string(),
                entry.at.to_string(),
                run.map_or("-".into(), |r| r.id.to_string()),
                run.and_then(|r| r.actor.clone())
                    .unwrap_or_else(|| "-".into()),
                what,
            ]);
            docs.push(json!({
                "environment": env,
                "cloud": cloud,
                "serial": entry.serial,
                "at": entry.at,
                "run": entry.run,
                "changes": entry.changes,
                "note": entry.note,
                "commit": commit,
            }));
        }
    }
    match at.format {
        Format::Json => out.write_all(json(&docs).as_bytes())?,
        Format::Text => out.write_all(
            crate::report::table(&["CLOUD", "SERIAL", "AT", "RUN", "ACTOR", "WHAT"], &rows)
                .as_bytes(),
        )?,
    }
    Ok(())
}

fn status_name(s: SettableStatus) -> &'static str {
    match s {
        SettableStatus::Succeeded => "succeeded",
        SettableStatus::Failed => "failed",
        SettableStatus::Destroyed => "destroyed",
        SettableStatus::Pending => "pending",
    }
}
