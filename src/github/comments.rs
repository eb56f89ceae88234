//! Sticky comments: one comment per key on an issue or pull request, kept up
//! to date in place.
//!
//! A comment is ours when its body holds the hidden marker
//! `<!-- orchestrator:comment key=KEY -->` and its author is the token's
//! identity, so a person quoting the marker does not get their comment
//! overwritten. Updates use PATCH, as GitHub documents (octocrab's
//! `update_comment` sends POST). A comment that would be over GitHub's limit
//! is cut, with a note (see [`super::body`]).

use serde_json::json;

use super::body::marker;
use super::issues::Comment;
use super::{Client, Error};

/// What an upsert did, and to which comment (its id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    /// Created comment n.
    Created(u64),
    /// Updated comment n in place.
    Updated(u64),
    /// Comment n already said exactly this.
    Unchanged(u64),
    /// There was no comment to update, and none was created.
    Absent,
}

/// Whether `key` can be part of a marker: letters, digits, `.`, `_`, `-`.
pub fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 100
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Creates or updates our comment `key` on issue or pull request `number`
/// so that it says `text`.
pub async fn upsert(
    client: &Client,
    number: u64,
    key: &str,
    text: &str,
) -> Result<Upserted, Error> {
    write(client, number, key, text, true).await
}

/// Updates our comment `key` on issue or pull request `number` so that it
/// says `text`, if there is one; creates none.
pub async fn update(
    client: &Client,
    number: u64,
    key: &str,
    text: &str,
) -> Result<Upserted, Error> {
    write(client, number, key, text, false).await
}

async fn write(
    client: &Client,
    number: u64,
    key: &str,
    text: &str,
    create: bool,
) -> Result<Upserted, Error> {
    if !valid_key(key) {
        return Err(Error::setup(
            format!("`{key}` cannot name a comment"),
            "use letters, digits, `.`, `_` and `-`",
        ));
    }
    let marker = marker("comment", &[("key", key)]);
    let body = client.prepare_text(&format!("{marker}\n{text}"));
    let me = client.identity().await?;
    let route = client.repo_route(&format!("/issues/{number}/comments"));
    let look = || async {
        let comments: Vec<Comment> = client.get_all(&route, &[]).await?;
        Ok(comments.into_iter().find(|c| {
            c.body.as_deref().is_some_and(|b| b.contains(&marker))
                && c.user
                    .as_ref()
                    .is_some_and(|u| u.login.eq_ignore_ascii_case(&me))
        }))
    };
    let existing = match look().await? {
        Some(c) => c,
        None if !create => return Ok(Upserted::Absent),
        None => {
            let (comment, created) = client
                .create_once(look, || {
                    client.post::<Comment>(&route, json!({ "body": body }))
                })
                .await?;
            if created {
                return Ok(Upserted::Created(comment.id));
            }
            comment
        }
    };
    if existing.body.as_deref() == Some(body.as_str()) {
        return Ok(Upserted::Unchanged(existing.id));
    }
    let route = client.repo_route(&format!("/issues/comments/{}", existing.id));
    let updated: Comment = client.patch(&route, json!({ "body": body })).await?;
    Ok(Upserted::Updated(updated.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_keys_are_safe_inside_a_marker() {
        assert!(valid_key("config-diff.dev_staging"));
        assert!(!valid_key("a -->"));
        assert!(!valid_key(""));
    }
}
