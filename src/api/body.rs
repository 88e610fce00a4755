//! `JsonBody<T>`: a JSON request body whose failures speak the envelope's language.
//!
//! poem-openapi's own `Json<T>` turns every body problem into one 400 whose message names no
//! field. docs/api.md §3 wants malformed JSON to be a 400 but well-formed JSON that breaks the schema
//! (a missing field, a wrong type, an unknown field, a value out of range) to be a 422 that names
//! each field. So the body is parsed in two steps, and on a schema failure the value is checked
//! against the operation's own OpenAPI schema to say precisely what is wrong.

use std::any::TypeId;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

use poem::{Request, RequestBody};
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, Type};
use serde_json::Value;

use super::error::{ApiError, ErrorCode, ErrorDetail};

/// A parsed JSON request body.
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = super::envelope::DOCUMENTED_JSON;

    fn check_content_type(content_type: &str) -> bool {
        content_type
            .split(';')
            .next()
            .map(|m| m.trim().eq_ignore_ascii_case("application/json"))
            .unwrap_or(false)
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

/// A type a JSON body parses into (`'static`, so its schema can be cached by type).
pub trait JsonInput: ParseFromJSON + 'static {}
impl<T: ParseFromJSON + 'static> JsonInput for T {}

impl<T: JsonInput> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = body.take()?.into_bytes().await.map_err(|e| {
            poem::Error::from(ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            )))
        })?;
        let _ = request;
        Ok(Self(parse::<T>(&bytes)?))
    }
}

/// Parses `bytes` as JSON, checks the value against `T`'s schema, then parses it as `T`,
/// reporting failures per docs/api.md §3. The check comes first because poem-openapi's own parsing
/// is lenient where the document is not (it takes `false` or `7` for a string and ignores
/// unknown fields); the document is the contract, so it is what the body is held to.
pub fn parse<T: ParseFromJSON + 'static>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    let schema = schema_of::<T>();
    let mut details = Vec::new();
    check(&schema.schemas, &schema.root, &value, "", &mut details);
    if details.is_empty() {
        match T::parse_from_json(Some(value)) {
            Ok(parsed) => return Ok(parsed),
            Err(err) => details.push(ErrorDetail {
                field: "body".into(),
                issue: err.into_message(),
            }),
        }
    }
    let message = details
        .iter()
        .map(|d| format!("{} {}", d.field, d.issue))
        .collect::<Vec<_>>()
        .join("; ");
    let mut e = ApiError::new(
        poem::http::StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::ValidationError,
        message,
    );
    e.details = details;
    Err(e)
}

/// A body type's schema with every schema it references.
struct BodySchema {
    root: MetaSchemaRef,
    schemas: BTreeMap<String, MetaSchema>,
}

/// `T`'s schema, built once per type (building a registry allocates a good deal).
fn schema_of<T: Type + 'static>() -> Arc<BodySchema> {
    static CACHE: OnceLock<RwLock<HashMap<TypeId, Arc<BodySchema>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(found) = cache.read().ok().and_then(|c| c.get(&id).cloned()) {
        return found;
    }
    let mut registry = Registry::new();
    T::register(&mut registry);
    let built = Arc::new(BodySchema {
        root: T::schema_ref(),
        schemas: registry.schemas,
    });
    if let Ok(mut c) = cache.write() {
        c.insert(id, built.clone());
    }
    built
}

fn resolve<'a>(
    schemas: &'a BTreeMap<String, MetaSchema>,
    schema: &'a MetaSchemaRef,
) -> Option<&'a MetaSchema> {
    match schema {
        MetaSchemaRef::Inline(s) => Some(s),
        MetaSchemaRef::Reference(name) => schemas.get(name),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_name(path: &str) -> String {
    if path.is_empty() {
        "body".into()
    } else {
        path.into()
    }
}

/// Walks `value` against `schema`, recording every broken rule under its JSON path.
fn check(
    schemas: &BTreeMap<String, MetaSchema>,
    schema: &MetaSchemaRef,
    value: &Value,
    path: &str,
    out: &mut Vec<ErrorDetail>,
) {
    let Some(schema) = resolve(schemas, schema) else {
        return;
    };
    // Issues about this value itself; nested fields report straight into `out`.
    let mut own: Vec<String> = Vec::new();
    // A nullable field takes null whatever type it references (`Option<T>` parses it as None).
    if value.is_null() && schema.nullable {
        return;
    }
    // all_of is how poem-openapi attaches field validators and docs to a referenced type.
    for part in &schema.all_of {
        check(schemas, part, value, path, out);
    }
    if value.is_null() {
        if !schema.ty.is_empty() {
            out.push(ErrorDetail {
                field: field_name(path),
                issue: "must not be null".into(),
            });
        }
        return;
    }
    if !schema.enum_items.is_empty() && !schema.enum_items.contains(value) {
        let allowed: Vec<String> = schema
            .enum_items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect();
        out.push(ErrorDetail {
            field: field_name(path),
            issue: format!("must be one of {}", allowed.join(", ")),
        });
        return;
    }
    let type_ok = match schema.ty {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        let expected = match schema.ty {
            "integer" => "an integer",
            "object" => "an object",
            "array" => "an array",
            "boolean" => "a boolean",
            "number" => "a number",
            _ => "a string",
        };
        out.push(ErrorDetail {
            field: field_name(path),
            issue: format!("must be {expected}, not {}", json_type(value)),
        });
        return;
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count();
            if let Some(max) = schema.max_length.filter(|m| len > *m) {
                own.push(format!("must be at most {max} characters"));
            }
            if let Some(min) = schema.min_length.filter(|m| len < *m) {
                own.push(format!("must be at least {min} characters"));
            }
            if schema.format == Some("date-time") && crate::timefmt::parse_rfc3339(s).is_none() {
                own.push("must be an RFC 3339 timestamp such as 2026-11-28T12:00:00Z".into());
            }
        }
        Value::Number(n) => {
            let v = n.as_f64().unwrap_or(0.0);
            if let Some(max) = schema.maximum.filter(|m| v > *m) {
                own.push(format!("must be at most {max}"));
            }
            if let Some(min) = schema.minimum.filter(|m| v < *m) {
                own.push(format!("must be at least {min}"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.max_items.filter(|m| items.len() > *m) {
                own.push(format!("must have at most {max} items"));
            }
            if let Some(min) = schema.min_items.filter(|m| items.len() < *m) {
                own.push(format!("must have at least {min} items"));
            }
            if let Some(item_schema) = &schema.items {
                for (i, item) in items.iter().enumerate() {
                    check(schemas, item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(map) => {
            let join = |key: &str| {
                if path.is_empty() {
                    key.to_string()
                } else {
                    format!("{path}.{key}")
                }
            };
            for required in &schema.required {
                if !map.contains_key(*required) {
                    out.push(ErrorDetail {
                        field: join(required),
                        issue: "is required".into(),
                    });
                }
            }
            for (key, item) in map {
                match schema.properties.iter().find(|(name, _)| name == key) {
                    Some((_, prop)) => check(schemas, prop, item, &join(key), out),
                    None if !schema.properties.is_empty()
                        && schema.additional_properties.is_none() =>
                    {
                        out.push(ErrorDetail {
                            field: join(key),
                            issue: "is not a known field".into(),
                        })
                    }
                    None => {}
                }
            }
        }
        _ => {}
    }
    out.extend(own.into_iter().map(|issue| ErrorDetail {
        field: field_name(path),
        issue,
    }));
}

/// The media type of a `Content-Type` value: lowercased, without its parameters.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A whole raw request body (already size-checked by the gate), for the non-JSON payloads.
pub async fn raw_bytes(body: &mut poem::RequestBody) -> poem::Result<Vec<u8>> {
    let bytes = body.take()?.into_bytes().await.map_err(|e| {
        poem::Error::from(super::error::ApiError::bad_request(format!(
            "cannot read the request body: {e}"
        )))
    })?;
    Ok(bytes.to_vec())
}

/// Implements poem-openapi's `ApiExtractor` for a request-body payload: the content type is
/// checked (415 otherwise) before the payload parses itself.
macro_rules! body_extractor {
    ($ty:ty $(, $bound:ident : $tr:path)?) => {
        impl<'a $(, $bound: $tr)?> poem_openapi::ApiExtractor<'a> for $ty {
            const TYPES: &'static [poem_openapi::ApiExtractorType] =
                &[poem_openapi::ApiExtractorType::RequestObject];
            type ParamType = ();
            type ParamRawType = ();

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <Self as poem_openapi::payload::Payload>::register(registry);
            }

            fn request_meta() -> Option<poem_openapi::registry::MetaRequest> {
                Some(poem_openapi::registry::MetaRequest {
                    description: None,
                    content: vec![poem_openapi::registry::MetaMediaType {
                        content_type: <Self as poem_openapi::payload::Payload>::CONTENT_TYPE,
                        schema: <Self as poem_openapi::payload::Payload>::schema_ref(),
                    }],
                    required: true,
                })
            }

            async fn from_request(
                request: &'a poem::Request,
                body: &mut poem::RequestBody,
                _param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
            ) -> poem::Result<Self> {
                use poem_openapi::payload::{ParsePayload, Payload};
                match request.content_type() {
                    Some(ct) if <Self as Payload>::check_content_type(ct) => {
                        <Self as ParsePayload>::from_request(request, body).await
                    }
                    found => Err($crate::api::error::ApiError::unsupported_media_type(
                        found,
                        <Self as Payload>::CONTENT_TYPE,
                    )
                    .into()),
                }
            }
        }
    };
}
pub(crate) use body_extractor;

body_extractor!(JsonBody<T>, T: JsonInput);
