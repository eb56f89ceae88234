//! Promotion: copying the values under `promotion.keys` (versions, image
//! tags) from one environment to the next, leaving everything else, which is
//! specific to each environment, as it is.
//!
//! Pure: texts in, texts out. [`component`] plans one component: it diffs
//! the target's values against the source's, keeps the promotable changes,
//! and makes each one in the target's text with [`edit`], so comments, key
//! order, quoting and blank lines stay byte for byte. The result is checked
//! by diffing again: nothing promotable may be left, and nothing else may
//! have changed. [`gate`] says whether the source is ready to be promoted.

pub mod edit;
pub mod gate;

use crate::diff::{self, Change, Kind, Options, Path};
use crate::yaml::{self, Pos};
use edit::{Edit, EditError};

/// What promotion does to one component's values in the target.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// The component.
    pub component: String,
    /// The target file's new text, when it changes.
    pub text: Option<String>,
    /// What changes in the target: its values before against after.
    pub changes: Vec<Change>,
    /// How many differences from the source remain: environment-specific.
    pub stays: usize,
}

/// Plans the promotion of one component from `source` to `target` (the
/// texts of their values files; `None` when a file does not exist, in which
/// case nothing is promoted: promotion edits values, it creates no files).
pub fn component(
    name: &str,
    source: Option<&str>,
    target: Option<&str>,
    options: &Options,
) -> Result<Promotion, EditError> {
    let (Some(source), Some(target)) = (source, target) else {
        let stays = usize::from(source.is_some() || target.is_some());
        return Ok(Promotion {
            component: name.to_string(),
            text: None,
            changes: Vec::new(),
            stays,
        });
    };
    let (source_tree, target_tree) = (parse(source)?, parse(target)?);
    // As the component's values, so sensitive patterns that name it apply.
    let compare = |a: &yaml::Node<'_>, b: &yaml::Node<'_>| {
        diff::component(name, Some(a), Some(b), options).changes
    };
    // Seen from the target: what it lacks is added, what only it has is removed.
    let before = compare(&target_tree, &source_tree);
    let promotable: Vec<&Change> = before.iter().filter(|c| c.promotable).collect();
    if promotable.is_empty() {
        return Ok(Promotion {
            component: name.to_string(),
            text: None,
            changes: Vec::new(),
            stays: before.len(),
        });
    }
    let mut text = target.to_string();
    for edit in edits(&promotable, &source_tree)? {
        text = edit::apply(&text, source, &edit)?;
    }
    let after = parse(&text)?;
    let changes = compare(&target_tree, &after);
    let left = compare(&after, &source_tree);
    // The edits must have done exactly what the diff asked: everything
    // promotable copied, nothing else touched.
    let wrong = changes
        .iter()
        .find(|c| !c.promotable)
        .or_else(|| left.iter().find(|c| c.promotable));
    if let Some(c) = wrong {
        return Err(EditError {
            key: c.path.dotted(),
            pos: edit::locate(&target_tree, &c.path.0).map_or(Pos::default(), |n| n.pos),
            message:
                "this value cannot be edited in place (it may come from an anchor or a merge key)"
                    .into(),
        });
    }
    Ok(Promotion {
        component: name.to_string(),
        text: Some(text),
        changes,
        stays: left.len(),
    })
}

fn parse(text: &str) -> Result<yaml::Node<'_>, EditError> {
    yaml::parse(text).map_err(|e| EditError {
        key: String::new(),
        pos: e.pos,
        message: e.message,
    })
}

/// The edits that make the promotable changes, in an order that keeps
/// paths valid: values set first, then entries removed (later positions
/// first, so earlier ones do not move), then new ones added in order.
fn edits<'c, 's>(
    changes: &[&'c Change],
    source: &'s yaml::Node<'s>,
) -> Result<Vec<Edit<'c, 's>>, EditError> {
    let from_source = |path: &Path| {
        edit::locate(source, &path.0).ok_or_else(|| EditError {
            key: path.dotted(),
            pos: source.pos,
            message: "not found in the source".into(),
        })
    };
    let (mut sets, mut removes, mut adds) = (Vec::new(), Vec::new(), Vec::new());
    for change in changes {
        let path = &change.path;
        match change.kind {
            Kind::Modified | Kind::TypeChanged => sets.push(Edit::Set {
                path,
                to: from_source(path)?,
            }),
            Kind::Removed => removes.push(Edit::Remove { path }),
            Kind::Added => adds.push(Edit::Add {
                path,
                value: from_source(path)?,
            }),
            Kind::OrderChanged => {}
        }
    }
    removes.reverse();
    Ok(sets.into_iter().chain(removes).chain(adds).collect())
}

#[cfg(test)]
mod tests;
