//! `Nullable<T>`: a response field that is always sent, as `null` when there is nothing.
//!
//! poem-openapi documents an `Option<T>` field as optional (left out of `required`), which
//! tells a generated client the field may be missing from the JSON: every read becomes a check
//! for absence besides the check for null (openapi-python-client's `Unset`, TypeScript's `?`).
//! The server writes every field of a record, null or not, so a record's fields are
//! `Nullable<T>`: required and nullable in the document, `Option<T>` in the code (it derefs to
//! one). Request fields stay `Option<T>`: there, leaving a field out is allowed.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// A value or null, always present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Nullable<T>(pub Option<T>);

impl<T> Deref for Nullable<T> {
    type Target = Option<T>;
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

impl<T> DerefMut for Nullable<T> {
    fn deref_mut(&mut self) -> &mut Option<T> {
        &mut self.0
    }
}

impl<T> From<Option<T>> for Nullable<T> {
    fn from(value: Option<T>) -> Self {
        Self(value)
    }
}

impl<T> From<Nullable<T>> for Option<T> {
    fn from(value: Nullable<T>) -> Self {
        value.0
    }
}

impl<T: Type> Type for Nullable<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = T::RawValueType;
    type RawElementValueType = T::RawElementValueType;

    fn name() -> Cow<'static, str> {
        format!("nullable_{}", T::name()).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        nullable(T::schema_ref())
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        self.0.as_ref().and_then(Type::as_raw_value)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        match &self.0 {
            Some(value) => value.raw_element_iter(),
            None => Box::new(std::iter::empty()),
        }
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Nullable<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        Option::<T>::parse_from_json(value)
            .map(Self)
            .map_err(poem_openapi::types::ParseError::propagate)
    }
}

impl<T: ToJSON> ToJSON for Nullable<T> {
    fn to_json(&self) -> Option<Value> {
        Some(
            self.0
                .as_ref()
                .and_then(ToJSON::to_json)
                .unwrap_or(Value::Null),
        )
    }
}

impl<T: rusqlite::types::FromSql> rusqlite::types::FromSql for Nullable<T> {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Option::<T>::column_result(value).map(Self)
    }
}

impl<T: rusqlite::ToSql> rusqlite::ToSql for Nullable<T> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

/// `schema` marked nullable. Not generic and never inlined: it runs once per field at start-up,
/// and one copy serves every field's registration instead of one inlined into each.
#[inline(never)]
fn nullable(schema: MetaSchemaRef) -> MetaSchemaRef {
    match schema {
        // OpenAPI 3.0 marks a reference nullable through a one-element `allOf`.
        reference @ MetaSchemaRef::Reference(_) => MetaSchemaRef::Inline(Box::new(MetaSchema {
            all_of: vec![reference],
            nullable: true,
            ..MetaSchema::ANY
        })),
        MetaSchemaRef::Inline(schema) => MetaSchemaRef::Inline(Box::new(MetaSchema {
            nullable: true,
            ..*schema
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::Object;

    #[derive(Object)]
    struct Record {
        /// A reference.
        kind: Nullable<crate::domain::terms::Term<crate::domain::signals::SignalStatus>>,
        /// A scalar.
        note: Nullable<String>,
    }

    /// Both fields are required and nullable in the schema, and null is written, not left out.
    #[test]
    fn documented_required_and_nullable_and_written_as_null() {
        let mut registry = Registry::new();
        Record::register(&mut registry);
        let schema = &registry.schemas["Record"];
        assert_eq!(schema.required, ["kind", "note"]);
        for (_, field) in &schema.properties {
            let MetaSchemaRef::Inline(field) = field else {
                panic!("inline");
            };
            assert!(field.nullable);
        }
        let json = Record {
            kind: Nullable(None),
            note: Nullable(Some("x".into())),
        }
        .to_json()
        .unwrap();
        assert_eq!(json, serde_json::json!({"kind": null, "note": "x"}));
        assert!(Record::parse_from_json(Some(serde_json::json!({"kind": "open"}))).is_ok());
    }
}
