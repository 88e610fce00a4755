//! The served document's refinements, checked on the document itself.

use super::*;

/// Every pattern the document publishes compiles: the validators compile the same patterns
/// at run time, and a bad one would only show as a panic there.
#[test]
fn every_published_pattern_compiles() {
    fn walk(v: &Value, found: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(p)) = map.get("pattern") {
                    found.push(p.clone());
                }
                map.values().for_each(|v| walk(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
    let mut patterns = Vec::new();
    walk(&doc, &mut patterns);
    assert!(patterns.len() > 10, "{} patterns", patterns.len());
    for p in patterns {
        assert!(regex::Regex::new(&p).is_ok(), "{p}");
    }
}

/// What generators stumble on is gone: references wrapped with their description in a
/// two-part `allOf`, object-level unions, JSON keyed with parameters; and every POST a
/// credential makes declares `Idempotency-Key`.
#[test]
fn generators_read_plain_references_and_declared_headers() {
    fn walk(v: &Value, path: &str, faults: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(parts)) = map.get("allOf") {
                    if parts.len() != 1 {
                        faults.push(format!("{path}: allOf of {}", parts.len()));
                    }
                }
                if path.starts_with("/components/schemas/") && path.matches('/').count() == 3 {
                    for k in ["anyOf", "oneOf", "not"] {
                        if map.contains_key(k) {
                            faults.push(format!("{path}: {k}"));
                        }
                    }
                }
                if let Some(Value::Object(content)) = map.get("content") {
                    for key in content.keys().filter(|k| k.contains("json")) {
                        if key != DOCUMENTED_JSON {
                            faults.push(format!("{path}: content {key}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), faults);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, path, faults)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
    let mut faults = Vec::new();
    walk(&doc, "", &mut faults);
    assert!(faults.is_empty(), "{faults:#?}");
    let mut posts = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(post) = ops.get("post") else {
            continue;
        };
        if post["security"].as_array().is_none_or(Vec::is_empty) {
            continue;
        }
        posts += 1;
        let declared = post["parameters"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "Idempotency-Key"));
        assert!(declared, "POST {path}");
    }
    assert!(posts >= 29, "{posts}");
}

/// Every enum is a named component (one per set, so a generated client gets one type per
/// set, not a copy per field), none lists null, and every field a response always carries
/// is `required`: only the fields written as absent at times may be left out.
#[test]
fn enums_are_named_and_response_fields_required() {
    fn walk(v: &Value, path: &str, inline: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::Array(values)) = map.get("enum") {
                    if path.matches('/').count() != 3 || !path.starts_with("/components") {
                        inline.push(path.to_string());
                    }
                    assert!(!values.contains(&Value::Null), "{path}: null in enum");
                }
                for (k, v) in map {
                    walk(v, &format!("{path}/{k}"), inline);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, path, inline)),
            _ => {}
        }
    }
    let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
    let mut inline = Vec::new();
    walk(&doc, "", &mut inline);
    assert!(inline.is_empty(), "enums not named: {inline:#?}");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "Currency",
        "EventType",
        "SettableLeadStatus",
        "ErrorCode",
        "FactorCode",
    ] {
        assert!(schemas[name]["enum"].is_array(), "{name}");
    }
    // Left out at times, on purpose: risk is computed on read and absent from event
    // payloads; `previous` exists only for updates; the profile is also a request body.
    let may_be_absent = [
        "Deal.risk_score",
        "Deal.risk_level",
        "DealContext.risk_score",
        "DealContext.risk_level",
        "EventData.previous",
        "Icp.industries",
        "Icp.titles",
        "Icp.countries",
        "Icp.company_size_min",
        "Icp.company_size_max",
    ];
    let mut responses = Vec::new();
    collect_response_refs(&doc["paths"], &mut responses);
    let mut seen = BTreeSet::new();
    let mut optional = Vec::new();
    while let Some(name) = responses.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &schemas[&name];
        collect_refs(schema, false, &mut responses);
        let required: Vec<&Value> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        for field in schema["properties"]
            .as_object()
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if !required.contains(&&Value::String(field.clone())) {
                optional.push(format!("{name}.{field}"));
            }
        }
    }
    assert!(seen.len() > 50, "{} response schemas", seen.len());
    optional.sort();
    let mut expected = may_be_absent.map(String::from).to_vec();
    expected.sort();
    assert_eq!(optional, expected);
}

/// Pushes the component names the responses of `paths` refer to.
fn collect_response_refs(paths: &Value, out: &mut Vec<String>) {
    for op in paths
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
    {
        collect_refs(&op["responses"], false, out);
    }
}

/// The risk bands the rules use are the ones the OpenAPI text states.
#[test]
fn the_document_states_the_risk_bands() {
    use crate::rules::deal_risk::{CRITICAL_FROM, HIGH_FROM, MEDIUM_FROM};
    let doc = crate::api::spec_json();
    let bands =
        format!("low < {MEDIUM_FROM} ≤ medium < {HIGH_FROM} ≤ high < {CRITICAL_FROM} ≤ critical");
    assert!(doc.contains(&bands), "{bands}");
    assert!(doc.contains(&format!("(default {HIGH_FROM}, where `high` begins)")));
}

/// A rule naming a schema the document lacks would silently do nothing.
#[test]
fn every_rule_names_a_field_of_the_document() {
    let doc: Value = serde_json::from_str(&crate::api::service().spec()).unwrap();
    for (schema, _) in object_rules() {
        let pointer = format!("/components/schemas/{schema}");
        assert!(doc.pointer(&pointer).is_some(), "{pointer}");
    }
    let refined: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
    for pointer in [
        "/paths/~1leads~1import/post/requestBody/content/text~1csv/schema/pattern",
        "/paths/~1inbound~1email/post/requestBody/content/message~1rfc822/schema/pattern",
        "/paths/~1events/get/responses/200/content/text~1event-stream/schema/properties/data",
    ] {
        assert!(refined.pointer(pointer).is_some(), "{pointer}");
    }
}

/// Every address a request body takes is documented with the address rule, wherever it
/// stands: the rule travels with the type (`Shaped<EmailAddress>`), so no field can miss it.
#[test]
fn every_address_in_a_request_body_carries_the_address_rule() {
    let doc: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
    let mut bodies = Vec::new();
    collect_refs(&doc["paths"], true, &mut bodies);
    let mut seen = BTreeSet::new();
    let mut checked = 0;
    let mut missing = Vec::new();
    while let Some(name) = bodies.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let schema = &doc["components"]["schemas"][&name];
        collect_refs(schema, false, &mut bodies);
        for (field, prop) in schema["properties"].as_object().into_iter().flatten() {
            let rule = match field.as_str() {
                "email" => &prop["pattern"],
                "to" | "cc" | "bcc" if prop["type"] == "array" => &prop["items"]["pattern"],
                _ => continue,
            };
            if !rule.as_str().is_some_and(|p| p.contains("@[A-Za-z0-9]")) {
                missing.push(format!("{name}.{field}"));
            }
            checked += 1;
        }
    }
    assert!(missing.is_empty(), "without the address rule: {missing:?}");
    assert!(checked >= 12, "{checked} address fields");
}
