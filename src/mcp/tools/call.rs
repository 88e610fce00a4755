//! A tool call as the API request it makes: arguments placed in the path, the query, the
//! headers and the body the operation declares, each refused by name when it cannot be sent.

use poem::http::Method;
use serde_json::{Map, Value};

use super::{Body, In, Operation};
use crate::api::error::ApiError;

/// A request an operation makes of the API.
pub struct Call {
    pub method: Method,
    /// Path and query, from `/api/v1`.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    /// Media type and bytes.
    pub body: Option<(String, Vec<u8>)>,
}

impl Operation {
    /// The request a call with `arguments` makes, or the error (in the API's terms) that names
    /// the argument that cannot be sent.
    pub fn request(&self, arguments: &Map<String, Value>) -> Result<Call, ApiError> {
        let mut path = self.path.clone();
        let mut query = Vec::new();
        let mut headers = Vec::new();
        let mut used = Vec::new();
        for p in &self.params {
            let Some(value) = arguments.get(&p.argument).filter(|v| !v.is_null()) else {
                if p.place == In::Path {
                    return Err(ApiError::invalid(&p.argument, "is required"));
                }
                continue;
            };
            used.push(p.argument.as_str());
            let text = scalar(value).ok_or_else(|| {
                ApiError::invalid(&p.argument, "must be a string, a number or a boolean")
            })?;
            match p.place {
                In::Path => {
                    path = path.replace(&format!("{{{}}}", p.name), &encode(&text));
                }
                In::Query => query.push(format!("{}={}", encode(&p.name), encode(&text))),
                // A value no header can carry is refused here: sent, it would be dropped, and
                // the call would run without its `If-Match` or `Idempotency-Key`.
                In::Header if poem::http::HeaderValue::from_str(&text).is_err() => {
                    return Err(ApiError::invalid(
                        &p.argument,
                        format!(
                            "cannot be sent as the {} header: no control characters",
                            p.name
                        ),
                    ));
                }
                In::Header => headers.push((p.name.clone(), text)),
            }
        }
        let body = match &self.body {
            Body::None => None,
            Body::Fields(names) => {
                let fields: Map<String, Value> = arguments
                    .iter()
                    .filter(|(k, _)| names.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                used.extend(
                    arguments
                        .keys()
                        .filter(|k| names.contains(k))
                        .map(String::as_str),
                );
                Some(("application/json".into(), Value::Object(fields).to_string()))
            }
            Body::Whole => arguments.get("body").map(|b| {
                used.push("body");
                ("application/json".into(), b.to_string())
            }),
            Body::Text(media) => {
                used.push("csv");
                let text = arguments
                    .get("csv")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        ApiError::invalid("csv", "is required: the file's content, as text")
                    })?;
                Some((media.clone(), text.to_string()))
            }
        };
        if let Some(unknown) = arguments.keys().find(|k| !used.contains(&k.as_str())) {
            let known = self.tool.input_schema["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                .unwrap_or_default();
            return Err(ApiError::invalid(
                unknown,
                format!(
                    "is not an argument of {}; its arguments: {known}",
                    self.tool.name
                ),
            ));
        }
        let uri = if query.is_empty() {
            format!("/api/v1{path}")
        } else {
            format!("/api/v1{path}?{}", query.join("&"))
        };
        Ok(Call {
            method: self.method.clone(),
            uri,
            headers,
            body: body.map(|(media, text)| (media, text.into_bytes())),
        })
    }
}

/// A parameter's value as text: strings as they are, numbers and booleans as JSON writes them.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `text` percent-encoded for a path segment or a query value: every byte but RFC 3986's
/// unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
