//! The JSON Schema of `orchestrator.yaml`, generated from the same types the
//! loader fills, for editors (yaml-language-server) and other tools.

use super::model::ConfigFile;

/// Where the committed copy of the schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/orchestrator.schema.json";

/// The schema as pretty-printed JSON, ending with a newline.
pub fn json() -> String {
    let schema = schemars::schema_for!(ConfigFile);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::super::model::{
        Commands, ComponentSpec, EnvironmentSpec, IssuesSpec, PromotionSpec, SecretsSpec, Settings,
        StateSpec,
    };
    use super::*;

    fn properties(schema: &serde_json::Value, def: Option<&str>) -> Vec<String> {
        let node = match def {
            None => schema,
            Some(name) => &schema["$defs"][name],
        };
        node["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// What the loader leaves alone at the top level, editors must not flag.
    #[test]
    fn the_schema_takes_extension_keys_at_the_top_level_only() {
        let schema: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let config = |extra: serde_json::Value| {
            let mut c = serde_json::json!({
                "version": 1,
                "components": {"net": {"path": "c/net", "runner": "tofu"}},
                "environments": {"dev": {"clouds": ["aws"]}}
            });
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            c
        };
        assert!(validator.is_valid(&config(serde_json::json!({}))));
        assert!(validator.is_valid(&config(
            serde_json::json!({"x-tofu": {"runner": "tofu", "timeout": "5m"}})
        )));
        assert!(!validator.is_valid(&config(serde_json::json!({"xtofu": {}}))));
        assert!(!validator.is_valid(&config(serde_json::json!({
            "components": {"net": {"path": "c/net", "x-owner": "team-a"}}
        }))));
    }

    /// The loader's key lists and the schema come from different code; they
    /// must name the same keys.
    #[test]
    fn schema_properties_match_the_keys_the_loader_accepts() {
        let schema: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let component_keys = [ComponentSpec::OWN_KEYS, Settings::KEYS].concat();
        let cases: [(Option<&str>, &[&str]); 9] = [
            (None, ConfigFile::KEYS),
            (Some("Settings"), Settings::KEYS),
            (Some("ComponentSpec"), &component_keys),
            (Some("Commands"), Commands::KEYS),
            (Some("EnvironmentSpec"), EnvironmentSpec::KEYS),
            (Some("PromotionSpec"), PromotionSpec::KEYS),
            (Some("StateSpec"), StateSpec::KEYS),
            (Some("SecretsSpec"), SecretsSpec::KEYS),
            (Some("IssuesSpec"), IssuesSpec::KEYS),
        ];
        for (def, keys) in cases {
            let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let mut actual = properties(&schema, def);
            expected.sort();
            actual.sort();
            assert_eq!(actual, expected, "{def:?}");
        }
    }

    #[test]
    fn committed_schema_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SCHEMA_PATH);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == json(),
            "{SCHEMA_PATH} is stale: regenerate it with `cargo run -- schema > {SCHEMA_PATH}`"
        );
    }
}
