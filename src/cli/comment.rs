//! `comment`: keeps one comment of ours on a pull request up to date, found
//! by its key. On a `pull_request` event the comment is the config diff of
//! what the pull request changes ([`super::config_diff`]); with
//! `--body-file` it is the text of a file or of standard input.
//!
//! A config diff that finds nothing to say creates no comment, and turns an
//! earlier one into "nothing changes". A token that may only read (a pull
//! request from a fork) is a warning, not a failure.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use super::issue::connect;
use super::{CommentArgs, Failure, Format, config_diff, json, usage};
use crate::config::DEFAULT_SECRET_KEYS;
use crate::github::comments::{Upserted, update, upsert};
use crate::github::{self, RunContext};
use crate::redact::Redactor;

/// The key of the config-diff comment when --key is not given.
const CONFIG_DIFF_KEY: &str = "config-diff";

/// The key of a --body-file comment when --key is not given.
const DEFAULT_KEY: &str = "orchestrator";

pub(super) fn run(file: &Path, args: &CommentArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let run = RunContext::from_env();
    let Some(number) = args.pr.or_else(|| run.pull_request()) else {
        return Err(usage(
            "no pull request to comment on",
            Some("pass --pr NUMBER, or run from a pull_request workflow".into()),
        ));
    };
    let token = github::token(args.github.github_token.as_deref());
    let (text, redactor, key, create, invalid) = match &args.body_file {
        Some(path) => (
            read_body(path)?,
            file_redactor(file),
            DEFAULT_KEY,
            true,
            None,
        ),
        None => {
            let built = config_diff::build(file, &run, token.clone())?;
            (
                built.body,
                built.redactor,
                CONFIG_DIFF_KEY,
                built.changes,
                built.invalid,
            )
        }
    };
    let key = args.key.as_deref().unwrap_or(key);
    let root = file.parent().unwrap_or(Path::new("."));
    let result = connect(root, &run, token, redactor).and_then(|(runtime, client)| {
        runtime.block_on(async {
            if create {
                upsert(&client, number, key, &text).await
            } else {
                update(&client, number, key, &text).await
            }
        })
    });
    let done = match result {
        Ok(done) => done,
        Err(e) if e.is_not_permitted() && run.is_fork_pull_request() => {
            eprintln!("warning: {e}");
            eprintln!(
                "  = note: this is a pull request from a fork, whose token can only read; no comment was written"
            );
            return Ok(0);
        }
        Err(e) => return Err(Failure::GitHub(e)),
    };
    let (what, id) = match done {
        Upserted::Created(id) => ("created", Some(id)),
        Upserted::Updated(id) => ("updated", Some(id)),
        Upserted::Unchanged(id) => ("unchanged", Some(id)),
        Upserted::Absent => ("skipped", None),
    };
    match (args.format, id) {
        (Format::Json, _) => out.write_all(
            json(&json!({"pull_request": number, "comment": id, "result": what})).as_bytes(),
        )?,
        (Format::Text, Some(id)) => eprintln!("Comment {id} on #{number} {what}."),
        (Format::Text, None) => {
            eprintln!("No comment on #{number}: it changes no configuration, and none was there.")
        }
    }
    match invalid {
        Some(report) => Err(Failure::Config(report)),
        None => Ok(0),
    }
}

/// The redactor for a comment's text from a file. The comment is about the
/// pull request, whose config may well be invalid: its secret key words
/// are used when it loads, else the defaults.
fn file_redactor(file: &Path) -> Redactor {
    match crate::config::load(file) {
        Ok(config) => Redactor::new(&config.secrets.keys),
        Err(_) => Redactor::new(&DEFAULT_SECRET_KEYS),
    }
}

fn read_body(path: &Path) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    read.map_err(|e| {
        usage(
            format!("cannot read {}: {e}", path.display()),
            Some("--body-file takes a UTF-8 text file, or - for standard input".into()),
        )
    })?;
    Ok(text)
}
