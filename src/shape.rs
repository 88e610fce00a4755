//! Text whose rule travels with its type. A field or parameter declared `Shaped<EmailAddress>`
//! documents the email rule wherever it stands, and is held to it, so no table has to list
//! which fields carry which rule (and no new field can be missed by one). Each shape is
//! declared beside the constants it is made of ([`text_shape!`]); this leaf holds only the
//! machinery, so every layer can use it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;
use std::sync::OnceLock;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use regex::Regex;
use serde_json::Value;

/// The characters `str::trim` removes (Unicode `White_Space`) as a regex class body, spelled
/// so that the document's readers (ECMA and Python regexes) and Rust's agree on each.
macro_rules! white_space {
    () => {
        r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    };
}
pub(crate) use white_space;

/// A text with something besides whitespace (what survives `str::trim`).
pub const NOT_BLANK_PATTERN: &str = concat!("[^", white_space!(), "]");

/// What a string may hold: its schema, and the check that enforces exactly it.
pub trait Shape: Send + Sync + 'static {
    /// The schema's component name, for a shape worth naming in generated clients (a `sort`
    /// enum); `None` keeps it inline.
    const COMPONENT: Option<&'static str> = None;
    /// The documented schema.
    fn schema() -> MetaSchema;
    /// `Err` with the rule the value breaks (a sentence starting "must").
    fn check(value: &str) -> Result<(), String>;
}

/// A string of shape `S`; it derefs to the string.
pub struct Shaped<S>(String, PhantomData<S>);

impl<S> Shaped<S> {
    /// `value` as it stands: for values the code itself writes, which the domain's own checks
    /// still see (the shape is the wire's rule, not a proof).
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into(), PhantomData)
    }
}

impl<S> Deref for Shaped<S> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<S> From<Shaped<S>> for String {
    fn from(value: Shaped<S>) -> Self {
        value.0
    }
}

impl<S> From<String> for Shaped<S> {
    fn from(value: String) -> Self {
        Self::new(value)
    }
}

impl<S> From<&str> for Shaped<S> {
    fn from(value: &str) -> Self {
        Self::new(value)
    }
}

impl<S> Default for Shaped<S> {
    fn default() -> Self {
        Self::new(String::new())
    }
}

impl<S> AsRef<str> for Shaped<S> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<S> PartialEq for Shaped<S> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<S: Shape> Shaped<S> {
    /// `value`, with its rule added to `issues` under `field` when it breaks it: for input that
    /// does not come through the API's parser (the web app's forms), so the same rule holds.
    pub fn checked(issues: &mut crate::error::Issues, field: &str, value: String) -> Self {
        if let Err(rule) = S::check(&value) {
            issues.add(field, rule);
        }
        Self::new(value)
    }
}

impl<'de, S> serde::Deserialize<'de> for Shaped<S> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

impl<S> Clone for Shaped<S> {
    fn clone(&self) -> Self {
        Self::new(self.0.clone())
    }
}

impl<S> fmt::Display for Shaped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S> fmt::Debug for Shaped<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S> serde::Serialize for Shaped<S> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<S: Shape> Type for Shaped<S> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        std::any::type_name::<S>()
            .rsplit("::")
            .next()
            .unwrap_or("")
            .to_string()
            .into()
    }

    fn schema_ref() -> MetaSchemaRef {
        match S::COMPONENT {
            Some(name) => MetaSchemaRef::Reference(name.to_string()),
            None => MetaSchemaRef::Inline(Box::new(S::schema())),
        }
    }

    fn register(registry: &mut Registry) {
        if let Some(name) = S::COMPONENT {
            registry.create_schema::<Self, _>(name.to_string(), |_| S::schema());
        }
    }

    crate::scalar_raw_values!();
}

/// In a JSON body the shape is the document's word and the request body's schema check
/// (`api::body`) holds lengths and item counts; the value itself is then checked by the
/// domain, which states each rule in the field's own words beside the body's other issues
/// ("must be a valid email address"), so parsing here takes any string.
impl<S: Shape> ParseFromJSON for Shaped<S> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(text)) => Ok(Self::new(text)),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<S: Shape> ToJSON for Shaped<S> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A schema for text of `min` to `max` characters (as sent) matching `pattern`, if any.
pub fn text_schema(min: usize, max: usize, pattern: Option<&str>) -> MetaSchema {
    let mut schema = MetaSchema::new("string");
    schema.min_length = (min > 0).then_some(min);
    schema.max_length = Some(max);
    schema.pattern = pattern.map(String::from);
    schema
}

/// The rule text of `min` to `max` characters matching `pattern` (compiled once into
/// `compiled`) breaks, if any.
pub fn check_text(
    compiled: &'static OnceLock<Regex>,
    (min, max, pattern): (usize, usize, Option<&str>),
    value: &str,
) -> Result<(), String> {
    let n = value.chars().count();
    if n < min {
        Err(format!("must be at least {min} characters"))
    } else if n > max {
        Err(format!("must be at most {max} characters"))
    } else if pattern.is_some_and(|p| {
        !compiled
            .get_or_init(|| Regex::new(p).expect("a valid pattern"))
            .is_match(value)
    }) {
        Err(format!("must match {}", pattern.unwrap_or_default()))
    } else {
        Ok(())
    }
}

/// Declares a text shape: `name`, `min` to `max` characters as sent, matching `pattern`.
#[macro_export]
macro_rules! text_shape {
    ($(#[$doc:meta])* $name:ident, $min:expr, $max:expr, $pattern:expr) => {
        $(#[$doc])*
        pub struct $name;
        impl $crate::shape::Shape for $name {
            fn schema() -> poem_openapi::registry::MetaSchema {
                $crate::shape::text_schema($min, $max, $pattern)
            }
            fn check(value: &str) -> Result<(), String> {
                static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
                $crate::shape::check_text(&RE, ($min, $max, $pattern), value)
            }
        }
    };
}
pub use text_shape;

/// A calendar date, `YYYY-MM-DD`.
pub struct CalendarDate;

impl Shape for CalendarDate {
    fn schema() -> MetaSchema {
        let mut schema = MetaSchema::new_with_format("string", "date");
        schema.max_length = Some(10);
        schema
    }
    fn check(value: &str) -> Result<(), String> {
        crate::timefmt::parse_date(value)
            .map(|_| ())
            .ok_or_else(|| "must be a date YYYY-MM-DD".into())
    }
}

/// A comma-separated "any of" list over `values`: `a` or `a,b`, no blanks.
pub fn list_schema(values: &[String]) -> MetaSchema {
    let alternatives: Vec<String> = values.iter().map(|v| regex_escape(v)).collect();
    let one = format!("({})", alternatives.join("|"));
    let mut schema = MetaSchema::new("string");
    schema.pattern = Some(format!("^{one}(,{one})*$"));
    schema
}

pub fn check_list(values: &[String], value: &str) -> Result<(), String> {
    if value
        .split(',')
        .all(|v| values.iter().any(|known| known == v))
    {
        Ok(())
    } else {
        Err(format!(
            "must be one or more of {}, comma separated",
            values.join(", ")
        ))
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| match c {
            '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' | '\\' => {
                vec!['\\', c]
            }
            c => vec![c],
        })
        .collect()
}

/// A list of `MIN` to `MAX` strings of shape `S`.
pub struct List<S, const MIN: usize, const MAX: usize>(Vec<Shaped<S>>);

impl<S, const MIN: usize, const MAX: usize> List<S, MIN, MAX> {
    /// The strings.
    pub fn into_strings(self) -> Vec<String> {
        self.0.into_iter().map(String::from).collect()
    }
}

impl<S, const MIN: usize, const MAX: usize> From<List<S, MIN, MAX>> for Vec<String> {
    fn from(list: List<S, MIN, MAX>) -> Self {
        list.into_strings()
    }
}

impl<S, const MIN: usize, const MAX: usize> Deref for List<S, MIN, MAX> {
    type Target = [Shaped<S>];
    fn deref(&self) -> &[Shaped<S>] {
        &self.0
    }
}

impl<S, const MIN: usize, const MAX: usize> Default for List<S, MIN, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<S, const MIN: usize, const MAX: usize> PartialEq for List<S, MIN, MAX> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<'de, S, const MIN: usize, const MAX: usize> serde::Deserialize<'de> for List<S, MIN, MAX> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Shaped<S>>::deserialize(deserializer).map(Self)
    }
}

impl<S, const MIN: usize, const MAX: usize> Clone for List<S, MIN, MAX> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<S, const MIN: usize, const MAX: usize> fmt::Debug for List<S, MIN, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<S, T: Into<String>, const MIN: usize, const MAX: usize> From<Vec<T>> for List<S, MIN, MAX> {
    fn from(values: Vec<T>) -> Self {
        Self(values.into_iter().map(Shaped::new).collect())
    }
}

impl<S, const MIN: usize, const MAX: usize> serde::Serialize for List<S, MIN, MAX> {
    fn serialize<Z: serde::Serializer>(&self, serializer: Z) -> Result<Z::Ok, Z::Error> {
        self.0.serialize(serializer)
    }
}

impl<S: Shape, const MIN: usize, const MAX: usize> Type for List<S, MIN, MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Shaped<S>;

    fn name() -> Cow<'static, str> {
        format!("[{}]", Shaped::<S>::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let mut schema = MetaSchema::new("array");
        schema.items = Some(Box::new(Shaped::<S>::schema_ref()));
        schema.min_items = (MIN > 0).then_some(MIN);
        schema.max_items = Some(MAX);
        MetaSchemaRef::Inline(Box::new(schema))
    }

    fn register(registry: &mut Registry) {
        Shaped::<S>::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Shaped<S>> + 'a> {
        Box::new(self.0.iter())
    }
}

/// As for [`Shaped`]: the body's schema check holds the bounds, the domain the items.
impl<S: Shape, const MIN: usize, const MAX: usize> ParseFromJSON for List<S, MIN, MAX> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|item| Shaped::parse_from_json(Some(item)).map_err(ParseError::propagate))
                .collect::<Result<_, _>>()
                .map(Self),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<S: Shape, const MIN: usize, const MAX: usize> ToJSON for List<S, MIN, MAX> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::Array(
            self.0.iter().filter_map(ToJSON::to_json).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::text_shape!(
        /// Two to four lowercase letters.
        Word,
        2,
        4,
        Some("^[a-z]*$")
    );

    #[test]
    fn a_shape_documents_and_checks_the_same_rule() {
        let schema = Word::schema();
        assert_eq!(
            (
                schema.min_length,
                schema.max_length,
                schema.pattern.as_deref()
            ),
            (Some(2), Some(4), Some("^[a-z]*$"))
        );
        assert_eq!(Word::check("abc"), Ok(()));
        for (bad, rule) in [
            ("a", "must be at least 2 characters"),
            ("abcde", "must be at most 4 characters"),
            ("ab1", "must match ^[a-z]*$"),
        ] {
            assert_eq!(Word::check(bad), Err(rule.to_string()));
        }
    }

    #[test]
    fn a_list_documents_its_bounds_and_its_items_shape() {
        type Words = List<Word, 1, 2>;
        let MetaSchemaRef::Inline(schema) = Words::schema_ref() else {
            panic!("a list's schema is inline");
        };
        assert_eq!((schema.min_items, schema.max_items), (Some(1), Some(2)));
        let Some(MetaSchemaRef::Inline(item)) = schema.items.as_deref() else {
            panic!("its items' schema is inline");
        };
        assert_eq!(item.pattern.as_deref(), Some("^[a-z]*$"));
        let parsed = Words::parse_from_json(Some(serde_json::json!(["ab", "cd"]))).unwrap();
        assert_eq!(Vec::from(parsed), ["ab", "cd"]);
        assert!(Words::parse_from_json(Some(serde_json::json!([7]))).is_err());
        assert!(Words::parse_from_json(Some(serde_json::json!("ab"))).is_err());
    }
}
