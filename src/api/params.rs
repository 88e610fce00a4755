//! Parameter types whose documented schema says exactly what the server accepts, so generated
//! clients (and contract fuzzers) send only values that work, and anything else is refused
//! before the handler runs with a message naming what would have worked.

use std::borrow::Cow;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseFromParameter, ParseResult, Type};
use serde_json::Value;

use super::error::{ApiError, ApiResult, Refusal};
pub use crate::domain::leads::LeadStatuses;
use crate::domain::listing::{Paging, MAX_PER_PAGE};
use crate::domain::{activities, api_keys, companies, deals, events, leads, notes, search};
use crate::domain::{signals, suppressions, tasks, templates, users, webhooks};
use crate::shape::{check_list, list_schema};
pub use crate::shape::{CalendarDate, Shape, Shaped};

impl<S: Shape> ParseFromParameter for Shaped<S> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        S::check(value).map_err(|rule| Refusal::Rule(rule).raise())?;
        Ok(Self::new(value))
    }
}

/// A `sort` parameter over a list's allow-list (API name → SQL column, as
/// [`crate::domain::listing::Sort::parse`] takes it): `field` or `-field`.
pub type SortParam<S> = Shaped<S>;

fn sort_schema(values: impl IntoIterator<Item = String>) -> MetaSchema {
    let mut schema = MetaSchema::new("string");
    schema.description =
        Some("A list's order: a field ascending, or `-` and the field descending.");
    schema.enum_items = values.into_iter().map(Value::String).collect();
    schema
}

fn sort_values<'a>(fields: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = String> + 'a {
    fields
        .iter()
        .flat_map(|(name, _)| [name.to_string(), format!("-{name}")])
}

fn check_sort(fields: &[(&str, &str)], value: &str) -> Result<(), String> {
    if sort_values(fields).any(|v| v == value) {
        return Ok(());
    }
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    Err(format!(
        "must be one of {} (prefix - for descending)",
        names.join(", ")
    ))
}

/// Declares sort shapes from the domain's allow-lists.
macro_rules! sorts {
    ($($marker:ident => $fields:path),* $(,)?) => {$(
        #[doc = concat!("`sort` over `", stringify!($fields), "`.")]
        pub struct $marker;
        impl Shape for $marker {
            const COMPONENT: Option<&'static str> = Some(stringify!($marker));
            fn schema() -> MetaSchema {
                sort_schema(sort_values($fields))
            }
            fn check(value: &str) -> Result<(), String> {
                check_sort($fields, value)
            }
        }
    )*};
}

sorts! {
    ActivitySort => activities::SORTS,
    ApiKeySort => api_keys::SORTS,
    CompanySort => companies::SORTS,
    DealSort => deals::SORTS,
    LeadSort => leads::SORTS,
    NoteSort => notes::SORTS,
    SignalSort => signals::SORTS,
    TaskSort => tasks::SORTS,
    UserSort => users::SORTS,
    TemplateSort => templates::SORTS,
    SuppressionSort => suppressions::SORTS,
    CampaignSort => crate::domain::campaigns::SORTS,
    EnrollmentSort => crate::domain::enrollments::SORTS,
}

/// Declares "any of" list shapes from the domain's value lists.
macro_rules! lists {
    ($($marker:ident => $values:expr),* $(,)?) => {$(
        #[doc = concat!("A comma-separated list of `", stringify!($values), "`.")]
        pub struct $marker;
        impl $marker {
            fn values() -> Vec<String> {
                $values.into_iter().map(|v| v.to_string()).collect()
            }
        }
        impl Shape for $marker {
            fn schema() -> MetaSchema {
                list_schema(&Self::values())
            }
            fn check(value: &str) -> Result<(), String> {
                check_list(&Self::values(), value)
            }
        }
    )*};
}

lists! {
    DealStatuses => deals::STATUSES,
    TaskStatuses => tasks::STATUSES,
    Priorities => tasks::PRIORITIES,
    KeyStatuses => api_keys::STATUSES,
    Roles => users::ROLES,
    SearchKinds => search::KINDS,
    EventTypes => events::type_patterns(),
    DeliveryStatuses => webhooks::DELIVERY_STATUSES,
    ActivityTypes => activities::CLIENT_TYPES.iter().chain(activities::SYSTEM_TYPES),
    SignalTypes => crate::rules::buying_signals::ALL.iter().map(|t| t.as_str()),
    MemoryKinds => crate::domain::memory::KINDS,
    SuppressionReasons => suppressions::REASONS,
    CampaignStatuses => crate::domain::campaigns::STATUSES,
    EnrollmentStatuses => crate::domain::enrollments::STATUSES,
}

/// Text to search for: 1 to 200 characters.
pub struct SearchText;

impl Shape for SearchText {
    fn schema() -> MetaSchema {
        let mut schema = MetaSchema::new("string");
        schema.max_length = Some(200);
        schema.min_length = Some(1);
        schema
    }
    fn check(value: &str) -> Result<(), String> {
        match value.chars().count() {
            0 => Err("must be at least 1 character".into()),
            n if n > 200 => Err("must be at most 200 characters".into()),
            _ => Ok(()),
        }
    }
}

/// The rule a number from `min` to `max` (`None`: no upper bound) breaks, if any.
fn check_range(n: f64, min: i64, max: Option<i64>) -> Result<(), String> {
    if n < min as f64 {
        Err(format!("must be at least {min}"))
    } else if max.is_some_and(|max| n > max as f64) {
        Err(format!("must be at most {}", max.unwrap_or_default()))
    } else {
        Ok(())
    }
}

/// `MAX` as a bound: `i64::MAX` stands for none.
fn upper(max: i64) -> Option<i64> {
    (max != i64::MAX).then_some(max)
}

/// A schema of `kind` and `format` from `MIN` to `MAX`.
fn range_schema(kind: &'static str, format: &'static str, min: i64, max: i64) -> MetaSchemaRef {
    let mut schema = MetaSchema::new_with_format(kind, format);
    schema.minimum = Some(min as f64);
    schema.maximum = upper(max).map(|max| max as f64);
    MetaSchemaRef::Inline(Box::new(schema))
}

/// What a number parameter holds: an integer or a floating-point number.
pub trait NumberKind: Send + Sync + 'static {
    /// The value.
    type Value: Copy + Send + Sync;
    /// The schema's type and format, `integer` and `int64` for instance.
    const TYPE: (&'static str, &'static str);
    /// What a value that does not parse is not ("a whole number").
    const NOUN: &'static str;
    /// The value `raw` holds, if it is one.
    fn parse(raw: &str) -> Option<Self::Value>;
    /// The value to compare with the bounds.
    fn measure(value: Self::Value) -> f64;
}

/// Integers.
pub struct Whole;

impl NumberKind for Whole {
    type Value = i64;
    const TYPE: (&'static str, &'static str) = ("integer", "int64");
    const NOUN: &'static str = "a whole number";
    fn parse(raw: &str) -> Option<i64> {
        raw.parse().ok()
    }
    fn measure(value: i64) -> f64 {
        value as f64
    }
}

/// Finite floating-point numbers.
pub struct Decimal;

impl NumberKind for Decimal {
    type Value = f64;
    const TYPE: (&'static str, &'static str) = ("number", "double");
    const NOUN: &'static str = "a number";
    fn parse(raw: &str) -> Option<f64> {
        raw.parse::<f64>().ok().filter(|n| n.is_finite())
    }
    fn measure(value: f64) -> f64 {
        value
    }
}

/// A number parameter of kind `K` from `MIN` to `MAX` (`i64::MAX`: unbounded), refused by the
/// server's own parser: 400 for what is not such a number, 422 for one out of range.
pub struct Bounded<K: NumberKind, const MIN: i64, const MAX: i64>(pub K::Value);

impl<K: NumberKind, const MIN: i64, const MAX: i64> Type for Bounded<K, MIN, MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        format!("{}({})", K::TYPE.0, K::TYPE.1).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        range_schema(K::TYPE.0, K::TYPE.1, MIN, MAX)
    }

    crate::scalar_raw_values!();
}

impl<K: NumberKind, const MIN: i64, const MAX: i64> ParseFromParameter for Bounded<K, MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        let n = K::parse(value)
            .ok_or_else(|| Refusal::Type(format!("`{value}` is not {}", K::NOUN)).raise())?;
        check_range(K::measure(n), MIN, upper(MAX)).map_err(|rule| Refusal::Rule(rule).raise())?;
        Ok(Self(n))
    }
}

/// A 0–100 score bound.
pub type ScoreBound = Bounded<Whole, 0, 100>;

/// An event number to read after: from 0.
pub type EventNumber = Bounded<Whole, 0, { i64::MAX }>;

/// A deal value bound: 0 to a trillion.
pub type AmountBound = Bounded<Decimal, 0, 1_000_000_000_000>;

/// A parameter holding one value of the enum `E`, documented as `E` is (its component), and
/// refused with the list of values when it holds another (422).
pub struct Choice<E>(pub E);

impl<E: Type> Type for Choice<E> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        E::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        E::schema_ref()
    }

    fn register(registry: &mut Registry) {
        E::register(registry);
    }

    crate::scalar_raw_values!();
}

impl<E: Type + ParseFromParameter> ParseFromParameter for Choice<E> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        E::parse_from_parameter(value).map(Self).map_err(|_| {
            let mut registry = Registry::new();
            E::register(&mut registry);
            let values: Vec<String> = registry
                .schemas
                .get(E::name().as_ref())
                .map(|schema| {
                    schema
                        .enum_items
                        .iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            Refusal::Rule(format!("must be one of {}", values.join(", "))).raise()
        })
    }
}

/// A whole-number query parameter from `MIN` to `MAX`, checked by the server, not by
/// poem-openapi's validators: its parsing never fails, and a bad value comes out of
/// [`paging`] as the server's own error (400 for what is not a whole number, 422 for one out
/// of range, every such parameter at once) rather than as framework text to be read back.
pub struct WholeNumber<const MIN: i64, const MAX: i64>(Result<i64, String>);

/// `page`: from 1.
pub type PageNumber = WholeNumber<1, { i64::MAX }>;
/// `per_page`: 1 to [`MAX_PER_PAGE`].
pub type PerPage = WholeNumber<1, MAX_PER_PAGE>;

impl<const MIN: i64, const MAX: i64> Type for WholeNumber<MIN, MAX> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "integer(int64)".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        range_schema("integer", "int64", MIN, MAX)
    }

    crate::scalar_raw_values!();
}

impl<const MIN: i64, const MAX: i64> ParseFromParameter for WholeNumber<MIN, MAX> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Ok(Self(value.parse().map_err(|_| value.to_string())))
    }
}

/// The page `page` and `per_page` ask for (defaults filled in, ranges checked by
/// [`Paging::new`]).
pub fn paging(page: Option<PageNumber>, per_page: Option<PerPage>) -> ApiResult<Paging> {
    let whole = |name: &str, value: Option<Result<i64, String>>| match value {
        Some(Err(raw)) => Err(ApiError::bad_request(format!(
            "invalid parameter `{name}`: `{raw}` is not a whole number"
        ))
        .detail(name, "is not of the documented type")),
        Some(Ok(n)) => Ok(Some(n)),
        None => Ok(None),
    };
    let page = whole("page", page.map(|p| p.0))?;
    let per_page = whole("per_page", per_page.map(|p| p.0))?;
    Ok(Paging::new(page, per_page)?)
}
