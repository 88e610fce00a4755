//! The served OpenAPI document: poem-openapi's, plus what its derive cannot say, each taken
//! from the constant the server itself enforces, so the document and the server cannot
//! disagree (the contract fuzzer in `.ci/fuzz-contract` holds them to that).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::envelope::DOCUMENTED_JSON;
use crate::domain::{sheets, validate};

/// poem-openapi's document with the refinements below applied.
pub fn refine(spec: &str) -> String {
    let mut doc: Value = serde_json::from_str(spec).expect("poem-openapi writes valid JSON");
    for name in close_request_objects(&mut doc) {
        require_text(&mut doc["components"]["schemas"][&name]);
    }
    plain_refs(&mut doc);
    name_enum_values(&mut doc);
    declare_idempotency_keys(&mut doc);
    declare_dry_runs(&mut doc);
    bare_json_media_types(&mut doc);
    // An import is a CSV file whose first line is its header row.
    for resource in ["leads", "companies", "deals"] {
        if let Some(schema) = doc.pointer_mut(&format!(
            "/paths/~1{resource}~1import/post/requestBody/content/text~1csv/schema"
        )) {
            *schema = json!({"type": "string", "pattern": sheets::HEADER_PATTERN});
        }
    }
    // An inbound message starts with its header fields.
    if let Some(schema) =
        doc.pointer_mut("/paths/~1inbound~1email/post/requestBody/content/message~1rfc822/schema")
    {
        *schema = json!({"type": "string", "pattern": crate::mail_worker::INBOUND_PATTERN});
    }
    describe_event_streams(&mut doc);
    serde_json::to_string_pretty(&doc).expect("a JSON value serializes")
}

/// The rules across fields of one object that the server enforces ("a name or an email", "a
/// deal or a lead", "`stage_id` or `stage`"), as `{schema: keywords}`.
///
/// They stay out of the served document: encoded as `anyOf`/`not` on an object, they turn a
/// request body into a union of one-field models in generated clients (openapi-python-client
/// made `create_lead` take one of three models, none of which could carry both a name and an
/// email). The descriptions state them and the server enforces them; the contract fuzzer
/// merges them into the document it generates requests from (`clozup openapi
/// --cross-field-rules`, read by `.ci/st_hooks.py`), so it sends only requests the server
/// must take as valid.
pub fn cross_field_rules() -> Value {
    Value::Object(
        object_rules()
            .into_iter()
            .map(|(schema, keywords)| (schema.to_string(), keywords))
            .collect(),
    )
}

/// Rules across fields of one object, as (schema, keywords).
fn object_rules() -> Vec<(&'static str, Value)> {
    // `field` given as a string (not null) with something besides whitespace.
    let given = |field: &str| {
        json!({"required": [field], "properties": {field: {
            "type": "string",
            "pattern": validate::NOT_BLANK_PATTERN,
        }}})
    };
    let on_deal_or_lead = json!({"anyOf": [given("deal_id"), given("lead_id")]});
    // Not both template bodies null or whitespace only (a pattern does not apply to null, and
    // an absent property meets any): `sent`, both sent so.
    let not_both_blank = |sent: bool| {
        let blank = json!({"pattern": format!("^[{}]*$", crate::domain::validate::white_space!())});
        let mut both = json!({"properties": {"html_body": blank, "text_body": blank}});
        if sent {
            both["required"] = json!(["html_body", "text_body"]);
        }
        json!({ "not": both })
    };
    // Not both of two alternative fields.
    let present =
        |field: &str| json!({"required": [field], "properties": {field: {"type": "string"}}});
    let not_both = |a: &str, b: &str| {
        json!({"required": [a, b], "properties": {
            a: {"type": "string"},
            b: {"type": "string"},
        }})
    };
    let one_of = |a: &str, b: &str| json!({"not": not_both(a, b)});
    let one_recipient_with_link = json!({"anyOf": [
        {"properties": {"unsubscribe_link": {"enum": [false, null]}}},
        {"properties": {"to": {"maxItems": 1}, "cc": {"maxItems": 0}, "bcc": {"maxItems": 0}}},
    ]});
    // Exactly one of two alternative fields.
    let exactly_one =
        |a: &str, b: &str| json!({"anyOf": [present(a), present(b)], "not": not_both(a, b)});
    vec![
        // A new lead needs something to call it by.
        (
            "NewLead",
            json!({"anyOf": [given("first_name"), given("last_name"), given("email")]}),
        ),
        ("NewActivity", on_deal_or_lead.clone()),
        ("NewNote", on_deal_or_lead),
        ("NewDeal", one_of("stage_id", "stage")),
        ("ConvertLead", one_of("stage_id", "stage")),
        ("MoveDeal", exactly_one("stage_id", "stage")),
        // A body that is not blank (null, absent or whitespace are none). Stated as "not both
        // blank" rather than "any of two given": with the bodies' maxLength, the `anyOf` form
        // left schemathesis no example small enough to start from.
        ("NewEmailTemplate", not_both_blank(false)),
        (
            "PreviewFor",
            json!({"anyOf": [given("lead_id"), given("deal_id")]}),
        ),
        // A change that clears both bodies (null or blank) leaves none.
        ("EmailTemplatePatch", not_both_blank(true)),
        // An unsubscribe link unsubscribes the one person it was sent to.
        ("SendEmail", one_recipient_with_link.clone()),
        ("SendTemplate", one_recipient_with_link),
        // Leads by id or by filter, not both.
        (
            "Enroll",
            json!({
                "anyOf": [
                    {"required": ["lead_ids"], "properties": {"lead_ids": {"type": "array"}}},
                    {"required": ["filter"], "properties": {"filter": {"type": "object"}}},
                ],
                "not": {"required": ["lead_ids", "filter"], "properties": {
                    "lead_ids": {"type": "array"},
                    "filter": {"type": "object"},
                }},
            }),
        ),
        // An email step sends a template; a call or a task names none, and a task has a title.
        (
            "NewStep",
            json!({"anyOf": [
                {"properties": {"kind": {"enum": ["email"]}, "template_id": {"type": "string"}},
                 "required": ["template_id"]},
                {"properties": {"kind": {"enum": ["call"]}, "template_id": {"enum": [null]},
                                "in_thread": {"enum": [false, null]}}},
                {"properties": {"kind": {"enum": ["task"]}, "template_id": {"enum": [null]},
                                "in_thread": {"enum": [false, null]},
                                "title": {"type": "string", "pattern": validate::NOT_BLANK_PATTERN}},
                 "required": ["title"]},
            ]}),
        ),
    ]
}

/// Every object a JSON request body holds refuses unknown fields
/// (`additionalProperties: false`), because `body::parse` holds bodies to the schema and a
/// typo in a field name must not pass silently.
fn close_request_objects(doc: &mut Value) -> BTreeSet<String> {
    let mut pending: Vec<String> = Vec::new();
    collect_refs(&doc["paths"], true, &mut pending);
    let mut closed = BTreeSet::new();
    while let Some(name) = pending.pop() {
        if !closed.insert(name.clone()) {
            continue;
        }
        let schema = &mut doc["components"]["schemas"][&name];
        collect_refs(schema, false, &mut pending);
        let has_fields = schema["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty());
        if has_fields && schema.get("additionalProperties").is_none() {
            schema["additionalProperties"] = Value::Bool(false);
        }
    }
    closed
}

/// poem-openapi writes a reference that has a description as `allOf: [{$ref}, {description}]`.
/// Generators read that as a new composite type (openapi-python-client refused it outright for
/// an enum, and dropped the enclosing model and every operation using it). A plain `$ref` with
/// the description beside it says the same; a nullable one keeps the one-element `allOf`,
/// OpenAPI 3.0's way to mark a reference nullable.
fn plain_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let wrapped = match map.get("allOf") {
                Some(Value::Array(parts)) if parts.len() == 2 => parts[0]
                    .get("$ref")
                    .filter(|_| parts[0].as_object().is_some_and(|o| o.len() == 1))
                    .cloned()
                    .zip(parts[1].as_object().cloned()),
                _ => None,
            };
            if let Some((reference, extra)) = wrapped {
                let nullable = extra.get("nullable") == Some(&Value::Bool(true))
                    || map.get("nullable") == Some(&Value::Bool(true));
                map.remove("allOf");
                map.remove("nullable");
                if let Some(description) = extra.get("description") {
                    map.entry("description").or_insert(description.clone());
                }
                if nullable {
                    map.insert("allOf".into(), json!([{"$ref": reference}]));
                    map.insert("nullable".into(), Value::Bool(true));
                } else {
                    map.insert("$ref".into(), reference);
                }
            }
            map.values_mut().for_each(plain_refs);
        }
        Value::Array(items) => items.iter_mut().for_each(plain_refs),
        _ => {}
    }
}

/// A generator names an enum's members after their values; where a value is not an
/// identifier (`-created_at`, `deal.*`, `*`) it falls back to `VALUE_1`. `x-enum-varnames`
/// gives each a readable name: `-created_at` is `CREATED_AT_DESC`, `deal.*` is `DEAL_ALL`.
fn name_enum_values(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let names = match map.get("enum") {
                Some(Value::Array(values)) => enum_var_names(values),
                _ => None,
            };
            if let Some(names) = names {
                map.insert("x-enum-varnames".into(), json!(names));
            }
            map.values_mut().for_each(name_enum_values);
        }
        Value::Array(items) => items.iter_mut().for_each(name_enum_values),
        _ => {}
    }
}

/// Member names for `values`, if one of them is not an identifier (else the generators'
/// own names are fine).
fn enum_var_names(values: &[Value]) -> Option<Vec<String>> {
    let words: Vec<&str> = values.iter().map(Value::as_str).collect::<Option<_>>()?;
    let identifier = |w: &&str| {
        w.starts_with(|c: char| c.is_ascii_alphabetic())
            && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if words.iter().all(identifier) {
        return None;
    }
    let name = |w: &str| {
        let (w, desc) = match w.strip_prefix('-') {
            Some(rest) => (rest, true),
            None => (w, false),
        };
        let mut name = w
            .replace(".*", "_all")
            .replace('*', "all")
            .replace('.', "_");
        if desc {
            name.push_str("_desc");
        }
        name.to_ascii_uppercase()
    };
    Some(words.into_iter().map(name).collect())
}

/// poem-openapi's own `Json` payload is keyed `application/json; charset=utf-8`; the rest of
/// the document says [`DOCUMENTED_JSON`], as generators look it up.
fn bare_json_media_types(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(content)) = map.get_mut("content") {
                if let Some(media) = content.remove("application/json; charset=utf-8") {
                    content.insert(DOCUMENTED_JSON.into(), media);
                }
            }
            map.values_mut().for_each(bare_json_media_types);
        }
        Value::Array(items) => items.iter_mut().for_each(bare_json_media_types),
        _ => {}
    }
}

/// Every POST a credential makes takes an `Idempotency-Key` (docs/api.md §5). The gate handles it
/// for all of them alike, so no handler declares it; declared here, a generated client can
/// send it.
fn declare_idempotency_keys(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for post in paths.values_mut().filter_map(|ops| ops.get_mut("post")) {
        if post["security"].as_array().is_none_or(Vec::is_empty) {
            continue;
        }
        let parameter = json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            "description": "Makes a retry safe: the first answer to this key (1 to 255 printable \
                ASCII characters) is kept 24 hours for this credential and sent again, with \
                `Idempotent-Replayed: true`, to a retry with the same request; the same key with \
                another request is 422, and while the first is still running, 409.",
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": super::headers::IDEMPOTENCY_KEY_MAX,
                // Visible ASCII, spaces inside only: HTTP drops a value's outer spaces.
                "pattern": "^[!-~]([ -~]*[!-~])?$",
            },
        });
        add_parameter(post, parameter);
    }
}

/// Appends `parameter` to `operation`'s parameters, starting the list if it has none.
fn add_parameter(operation: &mut Value, parameter: Value) {
    match operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        Some(list) => list.push(parameter),
        None => operation["parameters"] = json!([parameter]),
    }
}

/// Every write takes `dry_run=true` (docs/api.md §5): the gate runs it as a rehearsal
/// ([`crate::db::rehearse`]), for all of them alike, so no handler declares it.
fn declare_dry_runs(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut().filter_map(Value::as_object_mut) {
        for (_, op) in ops
            .iter_mut()
            .filter(|(method, _)| matches!(method.as_str(), "post" | "patch" | "put" | "delete"))
        {
            let parameter = json!({
                "name": "dry_run",
                "in": "query",
                "required": false,
                "description": "`true`: do everything this request would do and answer exactly as \
                    it would (plus `Dry-Run: true`), then undo it: nothing is stored, no event, \
                    webhook or email follows, and no `Idempotency-Key` answer is kept. Agents \
                    preview a change with it before making it.",
                "schema": {"type": "boolean", "default": false},
            });
            add_parameter(op, parameter);
        }
    }
}

/// The server trims text fields, so a required text (`minLength: 1`) must have something
/// besides whitespace (`validate::text`).
fn require_text(schema: &mut Value) {
    let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for prop in props.values_mut() {
        if prop["minLength"] == 1 && prop.get("pattern").is_none() {
            prop["pattern"] = json!(validate::NOT_BLANK_PATTERN);
        }
    }
}

/// Pushes the component names `value` refers to; from `paths`, only those under request bodies.
fn collect_refs(value: &Value, only_bodies: bool, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if only_bodies && key == "responses" {
                    continue;
                }
                if key == "$ref" {
                    if let Some(name) = v
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        out.push(name.to_string());
                    }
                } else {
                    collect_refs(v, only_bodies, out);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                collect_refs(v, only_bodies, out);
            }
        }
        _ => {}
    }
}

/// In OpenAPI 3.0 the schema of a `text/event-stream` response describes one event frame:
/// `id` (the event's seq), `event` (its type, or `reset`), `retry`, and `data`, the event as
/// JSON text.
fn describe_event_streams(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for ops in paths.values_mut().filter_map(Value::as_object_mut) {
        for op in ops.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for response in responses.values_mut() {
                if let Some(media) = response.pointer_mut("/content/text~1event-stream") {
                    let data = media["schema"].clone();
                    media["schema"] = json!({
                        "type": "object",
                        "properties": {
                            "id": {"type": "string", "description": "The event's seq."},
                            "event": {"type": "string", "description": "The event's type, or `reset`."},
                            "retry": {"type": "integer"},
                            "data": {
                                "type": "string",
                                "description": "The event as JSON.",
                                "x-json-schema": data,
                            },
                        },
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
