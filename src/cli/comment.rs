//! `comment`: keeps one comment of ours on a pull request up to date, found
//! by its key. The text comes from a file or standard input; the command
//! that renders the config diff into it builds on this.

use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use super::issue::connect;
use super::{CommentArgs, Failure, Format, json, usage};
use crate::config::DEFAULT_SECRET_KEYS;
use crate::github::comments::{Upserted, upsert};
use crate::github::{self, RunContext};
use crate::redact::Redactor;

pub(super) fn run(file: &Path, args: &CommentArgs, out: &mut dyn Write) -> Result<i32, Failure> {
    let run = RunContext::from_env();
    let Some(number) = args.pr.or_else(|| run.pull_request()) else {
        return Err(usage(
            "no pull request to comment on",
            Some("pass --pr NUMBER, or run from a pull_request workflow".into()),
        ));
    };
    let text = read_body(args)?;
    let token = github::token(args.github.github_token.as_deref());
    // The comment is about the pull request, whose config may well be
    // invalid: its secret key words are used when it loads, else the defaults.
    let redactor = match crate::config::load(file) {
        Ok(config) => Redactor::new(&config.secrets.keys),
        Err(_) => Redactor::new(&DEFAULT_SECRET_KEYS),
    };
    let root = file.parent().unwrap_or(Path::new("."));
    let result = connect(root, &run, token, redactor)
        .and_then(|(runtime, client)| runtime.block_on(upsert(&client, number, &args.key, &text)));
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
        Upserted::Created(id) => ("created", id),
        Upserted::Updated(id) => ("updated", id),
        Upserted::Unchanged(id) => ("unchanged", id),
    };
    match args.format {
        Format::Json => out.write_all(
            json(&json!({"pull_request": number, "comment": id, "result": what})).as_bytes(),
        )?,
        Format::Text => eprintln!("Comment {id} on #{number} {what}."),
    }
    Ok(0)
}

fn read_body(args: &CommentArgs) -> Result<String, Failure> {
    let mut text = String::new();
    let read = if args.body_file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(&args.body_file).map(|t| text = t)
    };
    read.map_err(|e| {
        usage(
            format!("cannot read {}: {e}", args.body_file.display()),
            Some("--body-file takes a UTF-8 text file, or - for standard input".into()),
        )
    })?;
    Ok(text)
}
