//! Names of components, environments and clouds.
//!
//! Names end up in file paths, git branch names, issue titles and shell
//! environments, so they are restricted to `[a-z0-9][a-z0-9_-]*` and at most
//! 63 characters. Once a value is one of these types it is known to be safe
//! in all of those places.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest name accepted (a DNS label, which also keeps branch names short).
pub const MAX_NAME_LEN: usize = 63;

/// The pattern every name matches, for the JSON Schema.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_-]{0,62}$";

/// Why a string is not a valid name, with a corrected spelling when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameError {
    /// What was wrong.
    pub message: String,
    /// A valid spelling close to the input, if one exists.
    pub suggestion: Option<String>,
}

fn check(kind: &str, s: &str) -> Result<(), NameError> {
    let bytes = s.as_bytes();
    let valid_char =
        |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_';
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(valid_char);
    if ok {
        return Ok(());
    }
    let message = if s.is_empty() {
        format!("a {kind} name cannot be empty")
    } else if bytes.len() > MAX_NAME_LEN {
        format!("{kind} name `{s}` is longer than {MAX_NAME_LEN} characters")
    } else {
        format!(
            "`{s}` is not a valid {kind} name: use lowercase letters, digits, `-` and `_`, \
             starting with a letter or digit"
        )
    };
    // Suggest a spelling only for slips of case or spacing, never for
    // characters that change meaning (`/`, `.`, `$`).
    let suggestion = s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .then(|| s.to_ascii_lowercase().replace(' ', "-"))
        .filter(|fixed| fixed != s && check(kind, fixed).is_ok());
    Err(NameError {
        message,
        suggestion,
    })
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        // Shared: names are cloned into every event and record of a run,
        // and a clone of an `Arc` allocates nothing.
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $ty(std::sync::Arc<str>);

        impl $ty {
            /// What this kind of name is called in messages.
            pub const KIND: &'static str = $kind;

            /// Parses a name, refusing anything outside `[a-z0-9][a-z0-9_-]*`.
            pub fn parse(s: &str) -> Result<Self, NameError> {
                check($kind, s).map(|()| $ty(s.into()))
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                $ty::parse(&text).map_err(|e| serde::de::Error::custom(e.message))
            }
        }

        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                stringify!($ty).into()
            }

            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({
                    "type": "string",
                    "pattern": NAME_PATTERN,
                    "description": concat!("A ", $kind, " name: lowercase letters, digits, `-` and `_`.")
                })
            }
        }
    };
}

name_type!(
    /// The name of a component, such as `network`.
    ComponentName,
    "component"
);
name_type!(
    /// The name of an environment, such as `prod`.
    EnvName,
    "environment"
);
name_type!(
    /// The name of a cloud an environment spans, such as `aws`.
    CloudName,
    "cloud"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lowercase_digits_dash_and_underscore() {
        for ok in [
            "network",
            "eks-1",
            "a",
            "0",
            "dns_zone",
            "x".repeat(63).as_str(),
        ] {
            assert!(ComponentName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_would_be_unsafe_in_paths_branches_or_shells() {
        for bad in [
            "",
            "Network",
            "-x",
            "_x",
            "a b",
            "../etc",
            "a/b",
            "a;rm",
            "$(x)",
            "é",
            &"x".repeat(64),
        ] {
            assert!(ComponentName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn suggests_a_valid_spelling() {
        let err = EnvName::parse("Prod").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("prod"));
        assert!(err.message.contains("environment"));
        let err = ComponentName::parse("my cluster").unwrap_err();
        assert_eq!(err.suggestion.as_deref(), Some("my-cluster"));
        assert_eq!(ComponentName::parse("../x").unwrap_err().suggestion, None);
    }
}
