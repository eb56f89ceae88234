//! GitHub's own OpenAPI description (the extract in
//! `tests/fixtures/github-rest-api/`), turned into what the fake needs: the
//! operation a request names, its parameters, a JSON Schema validator for
//! its body, and the canned examples responses are built from.
//!
//! The description is OpenAPI 3.0: schemas say `nullable: true` where JSON
//! Schema says `"type": [T, "null"]`, and refer to shared parts with `$ref`.
//! Both are translated before compiling. Request bodies are checked strictly:
//! a key the description does not list is an error, so a misspelt field
//! fails the test instead of being silently ignored as GitHub would.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The extract, relative to the crate root.
const SPEC_PATH: &str = "tests/fixtures/github-rest-api/api.github.com.subset.json";

/// One operation of the description.
pub struct Operation {
    /// Its id, e.g. `issues/create`.
    pub id: String,
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path template, e.g. `/repos/{owner}/{repo}/issues`.
    pub template: String,
    /// Its parameters, `$ref`s resolved.
    pub parameters: Vec<Value>,
    /// Whether a body is required, and the validator of one.
    pub body: Option<(bool, jsonschema::Validator)>,
}

/// The whole description, loaded once per test binary.
pub struct Spec {
    raw: Value,
    operations: Vec<Operation>,
}

/// The description.
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(SPEC_PATH);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let raw: Value = serde_json::from_str(&text).expect("the OpenAPI extract is JSON");
        let mut operations = Vec::new();
        for (template, item) in raw["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let Some(id) = op["operationId"].as_str() else {
                    continue;
                };
                let parameters = op["parameters"]
                    .as_array()
                    .map(|ps| ps.iter().map(|p| resolve(&raw, p, 0)).collect())
                    .unwrap_or_default();
                let body = op.get("requestBody").map(|rb| {
                    let rb = resolve(&raw, rb, 0);
                    let schema = resolve(&raw, &rb["content"]["application/json"]["schema"], 0);
                    let schema = json_schema(&schema, true);
                    let validator = jsonschema::draft202012::new(&schema)
                        .unwrap_or_else(|e| panic!("schema of {id}: {e}"));
                    (rb["required"].as_bool().unwrap_or(false), validator)
                });
                operations.push(Operation {
                    id: id.to_string(),
                    method: method.to_uppercase(),
                    template: template.clone(),
                    parameters,
                    body,
                });
            }
        }
        Spec { raw, operations }
    })
}

impl Spec {
    /// The operation for a method and path, with the path's parameters;
    /// `None` when the description has no such route.
    pub fn route(
        &self,
        method: &str,
        path: &str,
    ) -> Option<(&Operation, BTreeMap<String, String>)> {
        let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|op| op.method == method)
            .find_map(|op| {
                let tparts: Vec<&str> = op.template.split('/').collect();
                if tparts.len() != parts.len() {
                    return None;
                }
                let mut params = BTreeMap::new();
                for (t, p) in tparts.iter().zip(&parts) {
                    if t.starts_with('{') && t.ends_with('}') && !t.contains("...") {
                        if p.is_empty() {
                            return None;
                        }
                        params.insert(t[1..t.len() - 1].to_string(), percent_decode(p));
                    } else if t != p {
                        return None;
                    }
                }
                Some((op, params))
            })
    }

    /// The value of a named example (`components.examples.NAME.value`).
    pub fn example(&self, name: &str) -> Value {
        let value = &self.raw["components"]["examples"][name]["value"];
        assert!(!value.is_null(), "no example `{name}` in the extract");
        value.clone()
    }
}

/// Checks one parameter value against its schema: integers, booleans and
/// enums. Returns what is wrong.
pub fn check_parameter(param: &Value, value: &str) -> Result<(), String> {
    let name = param["name"].as_str().unwrap_or_default();
    let schema = &param["schema"];
    match schema["type"].as_str() {
        Some("integer") => {
            let n: i64 = value
                .parse()
                .map_err(|_| format!("`{name}` must be an integer, got `{value}`"))?;
            if let Some(min) = schema["minimum"].as_i64() {
                if n < min {
                    return Err(format!("`{name}` must be at least {min}"));
                }
            }
            if let Some(max) = schema["maximum"].as_i64() {
                if n > max {
                    return Err(format!("`{name}` must be at most {max}"));
                }
            }
        }
        Some("boolean") if value != "true" && value != "false" => {
            return Err(format!("`{name}` must be true or false, got `{value}`"));
        }
        _ => {}
    }
    if let Some(options) = schema["enum"].as_array() {
        if !options.iter().any(|o| o.as_str() == Some(value)) {
            return Err(format!(
                "`{name}` must be one of {options:?}, got `{value}`"
            ));
        }
    }
    Ok(())
}

/// Follows `$ref`s into `#/components/...`, recursively.
fn resolve(raw: &Value, value: &Value, depth: usize) -> Value {
    assert!(depth < 64, "$ref nesting too deep");
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let pointer = r.trim_start_matches('#');
                let target = raw
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling $ref {r}"));
                return resolve(raw, target, depth + 1);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolve(raw, v, depth + 1)))
                    .collect(),
            )
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(raw, v, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

/// An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a `null` type,
/// and (with `strict`) objects that list their properties accept no others.
fn json_schema(schema: &Value, strict: bool) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "nullable" | "example" | "discriminator"))
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        // Maps of named subschemas, and lists of them.
                        "properties" | "patternProperties" => Value::Object(
                            v.as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(n, s)| (n.clone(), json_schema(s, strict)))
                                        .collect()
                                })
                                .unwrap_or_default(),
                        ),
                        "items" | "additionalProperties" | "not" => json_schema(v, strict),
                        "oneOf" | "anyOf" | "allOf" => Value::Array(
                            v.as_array()
                                .map(|a| a.iter().map(|s| json_schema(s, strict)).collect())
                                .unwrap_or_default(),
                        ),
                        _ => v.clone(),
                    };
                    (k.clone(), v)
                })
                .collect();
            if strict && out.contains_key("properties") && !out.contains_key("additionalProperties")
            {
                out.insert("additionalProperties".into(), Value::Bool(false));
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                if let Some(Value::String(t)) = out.get("type").cloned() {
                    out.insert("type".into(), serde_json::json!([t, "null"]));
                    if let Some(Value::Array(options)) = out.get_mut("enum") {
                        options.push(Value::Null);
                    }
                } else {
                    return serde_json::json!({"anyOf": [Value::Object(out), {"type": "null"}]});
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Decodes `%XX` escapes (URL paths and queries).
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
