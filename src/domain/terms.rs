//! Closed sets of words stored as text (a currency code, an event type, an activity type) as
//! types. Each set is one named enum in the OpenAPI document, so a generated client gets one
//! enum per set wherever it appears (not a copy per field), and a request naming a word outside
//! the set is refused while parsing, with the set in the message.
//!
//! Sets that live only in code are Rust enums deriving poem-openapi's `Enum`; these live in the
//! database as text and come from lists the domain already keeps (`leads::STATUSES`,
//! `events::TYPES`), so a word is carried as its text and checked against its list.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A closed set of words.
pub trait Vocabulary: Send + Sync + 'static {
    /// The component's name in the document.
    const NAME: &'static str;
    /// What the words mean, for the document.
    const DESCRIPTION: &'static str;
    /// Every word, in the order the document lists them.
    fn words() -> Vec<Cow<'static, str>>;
    /// Whether `word` is in the set (override where a faster lookup exists).
    fn knows(word: &str) -> bool {
        Self::words().iter().any(|w| w == word)
    }
}

/// A word of vocabulary `V`; it derefs to its text.
pub struct Term<V>(String, PhantomData<V>);

impl<V: Vocabulary> Term<V> {
    /// A word the server wrote itself or read back from storage, where only words of the set
    /// are ever put (checked in debug builds).
    pub fn known(word: impl Into<String>) -> Self {
        let word = word.into();
        debug_assert!(V::knows(&word), "{word:?} is not a {}", V::NAME);
        Self(word, PhantomData)
    }

    /// The word, if it is in the set.
    pub fn parse(word: &str) -> Result<Self, String> {
        if V::knows(word) {
            Ok(Self(word.to_string(), PhantomData))
        } else {
            Err(format!("must be one of {}", V::words().join(", ")))
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<V> Deref for Term<V> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<V> Clone for Term<V> {
    fn clone(&self) -> Self {
        Self(self.0.clone(), PhantomData)
    }
}

impl<V> PartialEq for Term<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<V> Eq for Term<V> {}

impl<V> PartialEq<&str> for Term<V> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<V> std::fmt::Debug for Term<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<V> std::fmt::Display for Term<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<V> From<Term<V>> for String {
    fn from(term: Term<V>) -> Self {
        term.0
    }
}

impl<V> serde::Serialize for Term<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<V: Vocabulary> rusqlite::types::FromSql for Term<V> {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(value).map(Self::known)
    }
}

impl<V> rusqlite::types::ToSql for Term<V> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl<V: Vocabulary> Type for Term<V> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        V::NAME.into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(V::NAME.to_string())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(V::NAME.to_string(), |_| {
            enum_schema(V::DESCRIPTION, V::words())
        });
    }

    crate::scalar_raw_values!();
}

impl<V: Vocabulary> ParseFromJSON for Term<V> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(word)) => Self::parse(&word).map_err(ParseError::custom),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl<V: Vocabulary> ToJSON for Term<V> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A string enum's schema; shared by every vocabulary rather than built inline in each.
#[inline(never)]
fn enum_schema(description: &'static str, words: Vec<Cow<'static, str>>) -> MetaSchema {
    MetaSchema {
        description: Some(description),
        enum_items: words
            .into_iter()
            .map(|w| Value::String(w.into_owned()))
            .collect(),
        ..MetaSchema::new("string")
    }
}

/// Declares vocabularies: `Marker = "Name", "description", words`. Each module that owns a set
/// of words declares its vocabularies beside them, so the words and their type live together.
macro_rules! vocabularies {
    ($($(#[$doc:meta])* $marker:ident = $name:literal, $description:literal, $words:expr;)*) => {$(
        $(#[$doc])*
        pub struct $marker;
        impl $crate::domain::terms::Vocabulary for $marker {
            const NAME: &'static str = $name;
            const DESCRIPTION: &'static str = $description;
            fn words() -> Vec<std::borrow::Cow<'static, str>> {
                $words.into_iter().map(std::borrow::Cow::from).collect()
            }
        }
    )*};
}
pub(crate) use vocabularies;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::events::{EventType, EventTypePattern};
    use crate::domain::signals::SignalStatus;
    use crate::domain::validate::Currency;

    #[test]
    fn a_word_outside_the_set_is_refused_naming_the_set() {
        assert_eq!(
            Term::<SignalStatus>::parse("open").unwrap().as_str(),
            "open"
        );
        let err = Term::<SignalStatus>::parse("closed").err().unwrap();
        assert_eq!(err, "must be one of open, dismissed, resolved");
        assert!(Term::<Currency>::parse("EUR").is_ok());
        assert!(Term::<Currency>::parse("eur").is_err());
        assert!(Term::<EventTypePattern>::parse("deal.*").is_ok());
        assert!(Term::<EventType>::parse("deal.*").is_err());
    }
}
