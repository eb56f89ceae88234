//! The config-diff comment of a pull request, built from the workflow's
//! `pull_request` event: the base and head commits named in the payload,
//! read from git objects (not the working tree, which may be either, or a
//! merge of both), compared by [`crate::impact`], rendered by
//! [`crate::report::impact`].
//!
//! A shallow checkout (actions/checkout's default `fetch-depth: 1`) lacks
//! the base commit: it is fetched from `origin` by its id, through the
//! git store's remote and token handling. When the history is there, the
//! comparison starts where the branch forked from the base (the merge
//! base), as GitHub's "Files changed" does; otherwise from the base commit.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use git2::{ErrorCode, Oid, Repository};

use super::{Failure, usage};
use crate::config::{self, Config, DEFAULT_SECRET_KEYS, Report};
use crate::github::RunContext;
use crate::impact::{self, Snapshot};
use crate::redact::Redactor;
use crate::report::impact::{Compared, markdown};
use crate::state::git::{self, Token};
use crate::state::sync;

/// The comment, ready to send.
pub(super) struct Built {
    /// Its text.
    pub body: String,
    /// A redactor that knows every secret value of both commits.
    pub redactor: Redactor,
    /// Whether the pull request changes anything deployed.
    pub changes: bool,
    /// The problems of a configuration that does not load in the pull
    /// request; the comment says so, and the command fails.
    pub invalid: Option<Report>,
}

/// The repository's configuration and values at one commit, as read.
struct Side {
    config: Option<Config>,
    problems: Option<Report>,
    config_text: Option<String>,
    values: BTreeMap<String, String>,
    dirs: BTreeMap<String, String>,
}

impl Side {
    fn snapshot(&self) -> Snapshot<'_> {
        Snapshot {
            config: self.config.as_ref(),
            config_text: self.config_text.as_deref(),
            values: &self.values,
            dirs: &self.dirs,
        }
    }
}

/// Builds the config-diff comment for the pull request the run is for;
/// `file` is the configuration as the command was given it.
pub(super) fn build(
    file: &Path,
    run: &RunContext,
    token: Option<String>,
) -> Result<Built, Failure> {
    let (base, head) = commits(run)?;
    let root = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut repo = open(&root)?;
    let missing: Vec<(Oid, &str)> = [(base, "base"), (head, "head")]
        .into_iter()
        .filter(|(id, _)| repo.find_commit(*id).is_err())
        .collect();
    if !missing.is_empty() {
        fetch(&root, &missing, token.clone())?;
        repo = open(&root)?;
    }
    let from = repo.merge_base(base, head).unwrap_or(base);
    let workdir = repo
        .workdir()
        .and_then(|w| w.canonicalize().ok())
        .unwrap_or_default();
    let dir = root
        .canonicalize()
        .ok()
        .and_then(|r| r.strip_prefix(&workdir).ok().map(Path::to_path_buf))
        .unwrap_or_default();
    let name = file
        .file_name()
        .map_or_else(|| PathBuf::from("orchestrator.yaml"), PathBuf::from);
    let read = |commit| read_side(&repo, commit, &dir, &name);
    let (mut before, mut after) = (read(from)?, read(head)?);
    let paths: BTreeSet<String> = [&before, &after]
        .into_iter()
        .filter_map(|s| s.config.as_ref())
        .flat_map(component_dirs)
        .collect();
    for (side, commit) in [(&mut before, from), (&mut after, head)] {
        for path in &paths {
            if let Some(id) = git::entry_id(&repo, commit, &dir.join(path)).map_err(git_error)? {
                side.dirs.insert(path.clone(), id.to_string());
            }
        }
    }
    let redactor = redactor(&before, &after, token.as_deref());
    let compared = Compared {
        base: &git::short_id(from),
        head: &git::short_id(head),
    };
    let values_dir = dir.join(config::values::VALUES_DIR);
    let options = impact::options(before.config.as_ref(), after.config.as_ref());
    let result = match after.problems.take() {
        Some(problems) => Err(problems),
        None => impact::compare(&before.snapshot(), &after.snapshot(), &values_dir, &options),
    };
    Ok(match result {
        Ok(found) => Built {
            body: markdown(&found, after.config.as_ref(), compared),
            redactor,
            changes: !found.is_empty(),
            invalid: None,
        },
        Err(problems) => Built {
            body: crate::report::impact::invalid(&problems.render(false), compared),
            redactor,
            changes: true,
            invalid: Some(problems),
        },
    })
}

/// The pull request's base and head commits, from the event payload.
fn commits(run: &RunContext) -> Result<(Oid, Oid), Failure> {
    if let Some(name) = run
        .event_name
        .as_deref()
        .filter(|n| !n.starts_with("pull_request"))
    {
        return Err(usage(
            format!(
                "the `{name}` event is not a pull request, so there is no config diff to comment"
            ),
            Some("run `comment` on `pull_request` events, or pass --body-file FILE".into()),
        ));
    }
    let Some(event) = &run.event else {
        return Err(usage(
            "comment builds the config diff from a pull_request event, and there is none \
             (GITHUB_EVENT_PATH is not set or not readable)",
            Some("run it in a pull_request workflow, or pass --body-file FILE".into()),
        ));
    };
    let sha =
        |end: &str| {
            let text = event["pull_request"][end]["sha"]
                .as_str()
                .unwrap_or_default();
            Oid::from_str(text).ok().filter(|_| text.len() == 40).ok_or_else(|| {
            usage(
                format!("the event at GITHUB_EVENT_PATH has no commit at `pull_request.{end}.sha`"),
                Some("run `comment` on pull_request events, or pass --body-file FILE".into()),
            )
        })
        };
    Ok((sha("base")?, sha("head")?))
}

fn open(root: &Path) -> Result<Repository, Failure> {
    Repository::discover(root).map_err(|e| {
        let hint = if e.code() == ErrorCode::Owner {
            format!(
                "the working tree belongs to another user; if you trust it, run \
                 `git config --global --add safe.directory {}`",
                root.display()
            )
        } else {
            "run it in a clone of the repository (actions/checkout)".to_string()
        };
        usage(
            format!(
                "cannot open the git repository at {}: {}",
                root.display(),
                e.message()
            ),
            Some(hint),
        )
    })
}

/// Fetches the commits a shallow checkout lacks from `origin`.
fn fetch(root: &Path, missing: &[(Oid, &str)], token: Option<String>) -> Result<(), Failure> {
    let options = sync::Options {
        token: token.and_then(Token::new),
        no_commit: false,
        identity: None,
    };
    let origin = sync::origin(root, options, "fetch the pull request's commits")?;
    for &(id, what) in missing {
        origin.fetch_commit(id).map_err(|e| {
            usage(
                format!(
                    "cannot fetch the pull request's {what} commit {id} from origin ({}): {e}",
                    origin.display_url()
                ),
                Some(
                    "give the job `permissions: contents: read` and the token, or check out \
                     with `fetch-depth: 0`"
                        .into(),
                ),
            )
        })?;
    }
    Ok(())
}

/// The configuration and values at `commit`: `orchestrator.yaml` as `name`
/// in `dir`, and the files under `dir/environments`.
fn read_side(repo: &Repository, commit: Oid, dir: &Path, name: &Path) -> Result<Side, Failure> {
    let file = dir.join(name);
    let config_text = git::read_at(repo, commit, &file)
        .map_err(git_error)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let (config, problems) = match config_text.as_deref().map(|t| config::from_text(&file, t)) {
        Some(Ok(c)) => (Some(c), None),
        Some(Err(r)) => (None, Some(r)),
        None => (None, None),
    };
    let values = git::files_under(repo, commit, &dir.join(config::values::VALUES_DIR))
        .map_err(git_error)?
        .into_iter()
        .map(|(path, bytes)| (path, String::from_utf8_lossy(&bytes).into_owned()))
        .collect();
    Ok(Side {
        config,
        problems,
        config_text,
        values,
        dirs: BTreeMap::new(),
    })
}

/// Every component directory a configuration names, and every path they
/// watch, in every environment and cloud.
fn component_dirs(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for env in config.environments.values() {
        for cloud in &env.clouds {
            for c in &config.components {
                for path in c.paths() {
                    out.push(path.expand(&env.name, cloud));
                }
            }
        }
    }
    out
}

/// A redactor that knows the secret-looking words of both configurations
/// and the secret values of every values file of both commits.
fn redactor(before: &Side, after: &Side, token: Option<&str>) -> Redactor {
    let configs: Vec<&Config> = [&before.config, &after.config]
        .into_iter()
        .flatten()
        .collect();
    let mut words: Vec<String> = configs
        .iter()
        .flat_map(|c| c.secrets.keys.iter().cloned())
        .collect();
    if words.is_empty() {
        words = DEFAULT_SECRET_KEYS.iter().map(|w| w.to_string()).collect();
    }
    let sensitive: Vec<_> = configs
        .iter()
        .flat_map(|c| c.secrets.sensitive.iter().cloned())
        .collect();
    let mut redactor = Redactor::new(&words);
    let parsed: Vec<(String, serde_json::Value)> = [before, after]
        .into_iter()
        .flat_map(|s| &s.values)
        .filter_map(|(path, text)| {
            let component = Path::new(path).file_stem()?.to_str()?.to_string();
            let node = crate::yaml::parse(text).ok()?;
            Some((component, node.to_json()))
        })
        .collect();
    redactor.add_values(parsed.iter().map(|(c, v)| (c.as_str(), v)), &sensitive);
    redactor.add_secrets(token.map(String::from));
    redactor
}

fn git_error(e: git2::Error) -> Failure {
    usage(format!("cannot read the repository: {}", e.message()), None)
}
