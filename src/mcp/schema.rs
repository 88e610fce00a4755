//! The OpenAPI document's schemas as MCP tools need them: JSON Schema (2020-12) with every
//! `$ref` resolved in place. Tool schemas travel alone — a client reading one has no
//! `#/components` to look references up in, and many do not follow `$ref` at all — and they are
//! validated by JSON Schema libraries, which read OpenAPI 3.0's `nullable: true` as nothing (so
//! a `null` the API sends would fail them).

use serde_json::{Map, Value};

/// Keywords of OpenAPI's Schema Object that JSON Schema has no use for, dropped to keep the
/// schemas an agent reads small: examples (`example` is not a JSON Schema keyword), titles
/// (the schema's Rust name), and OpenAPI-only annotations.
const DROPPED: &[&str] = &["example", "title", "discriminator", "xml", "externalDocs"];

/// `schema` (an OpenAPI 3.0 Schema Object of the document whose schemas are `components`) as
/// standalone JSON Schema.
pub fn standalone(schema: &Value, components: &Map<String, Value>) -> Value {
    convert(schema, components, &mut Vec::new())
}

fn convert(schema: &Value, components: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or_default().to_string();
        // A schema that contains itself (none does today) is cut to "any value" at the second
        // visit rather than expanded forever.
        if stack.contains(&name) {
            return Value::Object(Map::new());
        }
        let Some(target) = components.get(&name) else {
            return Value::Object(Map::new());
        };
        stack.push(name);
        let resolved = convert(target, components, stack);
        stack.pop();
        return resolved;
    }
    let mut out = Map::new();
    for (key, value) in object {
        let converted = match key.as_str() {
            "nullable" => continue,
            k if DROPPED.contains(&k) || k.starts_with("x-") => continue,
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, s)| (name.clone(), convert(s, components, stack)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" if value.is_object() => {
                convert(value, components, stack)
            }
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| convert(s, components, stack))
                    .collect(),
            ),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    // poem-openapi writes a described or nullable reference as `allOf: [{$ref}]` beside its own
    // keywords: one schema, so it is merged into one (the outer description wins).
    if let Some(Value::Array(parts)) = out.get("allOf") {
        if let [Value::Object(inner)] = parts.as_slice() {
            let mut merged = inner.clone();
            out.remove("allOf");
            merged.extend(out);
            out = merged;
        }
    }
    if object.get("nullable") == Some(&Value::Bool(true)) {
        out = nullable(out);
    }
    Value::Object(out)
}

/// Keywords that check what a client sends, dropped from schemas of what the server answers:
/// they say nothing a reader of the answer needs, and output schemas are most of the bytes of
/// `tools/list`.
const INPUT_ONLY: &[&str] = &[
    "description",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "default",
    "writeOnly",
];

/// `schema` (standalone) for an answer: its structure, types and values, without the
/// keywords of [`INPUT_ONLY`] (the OpenAPI document keeps every field's description).
pub fn answer_shape(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    object.retain(|k, _| !INPUT_ONLY.contains(&k.as_str()));
    for (key, value) in object.iter_mut() {
        match key.as_str() {
            "properties" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|p| p.values_mut())
                .for_each(answer_shape),
            "items" | "additionalProperties" | "not" => answer_shape(value),
            "allOf" | "anyOf" | "oneOf" => value
                .as_array_mut()
                .into_iter()
                .flatten()
                .for_each(answer_shape),
            _ => {}
        }
    }
}

/// `schema`, also accepting `null`.
fn nullable(mut schema: Map<String, Value>) -> Map<String, Value> {
    match schema.get("type").cloned() {
        Some(Value::String(t)) => {
            schema.insert("type".into(), Value::from(vec![t, "null".to_string()]));
            if let Some(Value::Array(values)) = schema.get_mut("enum") {
                values.push(Value::Null);
            }
            schema
        }
        _ => {
            let mut any = Map::new();
            any.insert(
                "anyOf".into(),
                Value::Array(vec![
                    Value::Object(schema),
                    serde_json::json!({"type": "null"}),
                ]),
            );
            any
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn components() -> Map<String, Value> {
        json!({
            "Stage": {"type": "string", "enum": ["open", "won"], "title": "Stage"},
            "Deal": {
                "type": "object",
                "required": ["id"],
                "properties": {
                    "id": {"type": "string", "example": "deal_1"},
                    "note": {"type": "string", "nullable": true},
                    "stage": {"allOf": [{"$ref": "#/components/schemas/Stage"}],
                              "description": "Where it is.", "nullable": true},
                    "owner": {"$ref": "#/components/schemas/User"}
                }
            },
            "User": {"type": "object", "properties": {"manager": {"$ref": "#/components/schemas/User"}}}
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn references_are_resolved_and_nullable_becomes_a_null_type() {
        let out = standalone(&json!({"$ref": "#/components/schemas/Deal"}), &components());
        assert_eq!(out["properties"]["note"]["type"], json!(["string", "null"]));
        assert_eq!(
            out["properties"]["stage"],
            json!({"type": ["string", "null"], "enum": ["open", "won", null], "description": "Where it is."})
        );
        assert!(out["properties"]["id"].get("example").is_none());
        assert!(!out.to_string().contains("$ref"));
    }

    #[test]
    fn an_answer_shape_keeps_fields_named_like_keywords() {
        let mut out = json!({"type": "object", "description": "A deal.", "properties": {
            "description": {"type": "string", "maxLength": 10, "description": "Its text."}
        }});
        answer_shape(&mut out);
        assert_eq!(
            out,
            json!({"type": "object", "properties": {"description": {"type": "string"}}})
        );
    }

    #[test]
    fn a_schema_that_contains_itself_is_cut_at_its_second_visit() {
        let out = standalone(&json!({"$ref": "#/components/schemas/User"}), &components());
        assert_eq!(out["properties"]["manager"], json!({}));
    }

    #[test]
    fn a_nullable_object_without_a_single_type_becomes_any_of_it_or_null() {
        let out = standalone(
            &json!({"allOf": [{"$ref": "#/components/schemas/User"}, {"type": "object"}], "nullable": true}),
            &components(),
        );
        assert_eq!(out["anyOf"][1], json!({"type": "null"}));
    }
}
