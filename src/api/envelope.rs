//! The success envelope (docs/api.md §3): `{"data": ...}` for one object, `{"data": [...], "meta":
//! {page, per_page, total}}` for lists, with `ETag: "<version>"` on versioned objects.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};
use serde::Serialize;

use crate::domain::listing::ListPage;

/// `{"data": <object>}`
#[derive(Debug, Clone, Object)]
pub struct Envelope<T: ParseFromJSON + ToJSON> {
    /// The object.
    pub data: T,
}

/// Pagination of a list.
#[derive(Debug, Clone, Object, Serialize)]
pub struct ListMeta {
    /// The page returned, from 1.
    pub page: i64,
    /// Rows per page.
    pub per_page: i64,
    /// Rows matching the filters, over all pages.
    pub total: i64,
}

/// `{"data": [...], "meta": {...}}`
#[derive(Debug, Clone, Object)]
pub struct ListEnvelope<T: ParseFromJSON + ToJSON> {
    /// This page's rows.
    pub data: Vec<T>,
    /// Where this page stands.
    pub meta: ListMeta,
}

/// The `Content-Type` every JSON answer carries (docs/api.md §1).
const JSON: &str = "application/json; charset=utf-8";

/// The media type the document keys JSON content by: the bare type, as generators and their
/// helpers look it up (openapi-typescript-helpers finds no JSON under a key with parameters).
pub const DOCUMENTED_JSON: &str = "application/json";

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    Response::builder()
        .status(status)
        .content_type(JSON)
        .body(body)
}

/// Writes `value` as JSON straight from its serde derive. poem-openapi's `ToJSON` would first
/// build a `serde_json::Value` tree (every map, key and value allocated one by one) only to
/// write it out, which was a fifth of the CPU of a page of deals. Every type the envelopes
/// carry therefore derives `Serialize` beside `Object` with the same names and the same
/// omissions; debug builds (every test, the contract fuzzer and the generated clients' run)
/// check each answer against the `ToJSON` tree, so the two cannot drift apart unnoticed.
fn write_json<T: ToJSON + Serialize>(out: &mut Vec<u8>, value: &T) {
    let start = out.len();
    // Writing into a `Vec` cannot fail, and these types have no map with non-string keys.
    let _ = serde_json::to_writer(&mut *out, value);
    // Compared as trees built from the value, not by reading the text back: serde_json's
    // default float parsing may land one unit in the last place away from what it wrote.
    debug_assert!(out.len() > start);
    debug_assert_eq!(
        serde_json::to_value(value).ok(),
        value.to_json(),
        "{}: serde and the OpenAPI schema disagree",
        std::any::type_name::<T>()
    );
}

/// `{"data": <object>}`, as [`Envelope`] describes it.
fn one_body<T: ToJSON + Serialize>(data: &T) -> Vec<u8> {
    let mut body = Vec::with_capacity(1024);
    body.extend_from_slice(b"{\"data\":");
    write_json(&mut body, data);
    body.push(b'}');
    body
}

/// `{"data": [...], "meta": {...}}`, as [`ListEnvelope`] describes it.
fn page_body<T: ToJSON + Serialize>(items: &[T], meta: &ListMeta) -> Vec<u8> {
    let mut body = Vec::with_capacity(1024 * (items.len() + 1));
    body.extend_from_slice(b"{\"data\":[");
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        write_json(&mut body, item);
    }
    body.extend_from_slice(b"],\"meta\":");
    write_json(&mut body, meta);
    body.push(b'}');
    body
}

/// One object in the envelope, answered with status `STATUS` (200 or 201).
pub struct One<T, const STATUS: u16 = 200> {
    data: T,
    version: Option<i64>,
}

impl<T, const STATUS: u16> One<T, STATUS> {
    /// An object without a version.
    pub fn new(data: T) -> Self {
        Self {
            data,
            version: None,
        }
    }

    /// An object whose version becomes the `ETag`.
    pub fn versioned(version: i64, data: T) -> Self {
        Self {
            data,
            version: Some(version),
        }
    }
}

/// One object just created: 201.
pub type Created<T> = One<T, 201>;

impl<T: ParseFromJSON + ToJSON + Serialize + Send, const STATUS: u16> IntoResponse
    for One<T, STATUS>
{
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(STATUS).unwrap_or(StatusCode::OK);
        let mut resp = json_response(status, one_body(&self.data));
        if let Some(v) = self.version {
            if let Ok(value) = HeaderValue::from_str(&format!("\"{v}\"")) {
                resp.headers_mut().insert(header::ETAG, value);
            }
        }
        resp
    }
}

impl<T: ParseFromJSON + ToJSON + Send, const STATUS: u16> ApiResponse for One<T, STATUS> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: if STATUS == 201 {
                    "Created."
                } else {
                    "Success."
                },
                status: Some(STATUS),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: DOCUMENTED_JSON,
                    schema: Envelope::<T>::schema_ref(),
                }],
                headers: vec![MetaHeader {
                    name: "ETag".into(),
                    description: Some("The object's version, quoted; send it in If-Match.".into()),
                    required: false,
                    deprecated: false,
                    schema: String::schema_ref(),
                }],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Envelope::<T>::register(registry);
    }
}

/// A page of a list in the envelope.
pub struct Page<T>(pub ListPage<T>);

impl<T> Page<T> {
    /// A short, unpaged list (stages, months, people) as one page holding everything.
    pub fn whole(items: Vec<T>) -> Self {
        let total = items.len() as i64;
        Page(ListPage {
            items,
            paging: crate::domain::listing::Paging {
                page: 1,
                per_page: total.max(1),
            },
            total,
        })
    }
}

impl<T: ParseFromJSON + ToJSON + Serialize + Send> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let page = self.0;
        let meta = ListMeta {
            page: page.paging.page,
            per_page: page.paging.per_page,
            total: page.total,
        };
        json_response(StatusCode::OK, page_body(&page.items, &meta))
    }
}

impl<T: ParseFromJSON + ToJSON + Send> ApiResponse for Page<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "One page of the list.",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: DOCUMENTED_JSON,
                    schema: ListEnvelope::<T>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        ListEnvelope::<T>::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::deals::{Deal, DealStatus};
    use crate::domain::leads::{Lead, LeadStatus};
    use crate::domain::nullable::Nullable;
    use crate::rules::deal_risk::RiskLevel;
    use crate::timefmt::Timestamp;

    fn deal(full: bool) -> Deal {
        let some = |s: &str| full.then(|| s.to_string());
        Deal {
            id: "deal_1".into(),
            title: "Big \"quoted\" deal\n".into(),
            value: if full { 1234.5 } else { 3.0 },
            currency: crate::domain::terms::Term::known("EUR"),
            pipeline_id: "pipe_1".into(),
            stage_id: "stage_1".into(),
            stage_name: "Démo".into(),
            probability: 40,
            status: if full {
                DealStatus::Lost
            } else {
                DealStatus::Open
            },
            owner_id: Nullable(some("usr_1")),
            lead_id: Nullable(some("lead_1")),
            company_id: Nullable(some("comp_1")),
            expected_close_date: Nullable(some("2026-12-31")),
            lost_reason: Nullable(some("price")),
            closed_at: Nullable(full.then_some(Timestamp(1_800_000_000_123))),
            stage_entered_at: Timestamp(1_700_000_000_000),
            last_activity_at: Nullable(full.then_some(Timestamp(1_750_000_000_000))),
            tags: if full {
                vec!["a".into(), "b".into()]
            } else {
                vec![]
            },
            version: 7,
            created_at: Timestamp(0),
            updated_at: Timestamp(1),
            risk_score: full.then_some(65),
            risk_level: full.then_some(RiskLevel::High),
        }
    }

    fn lead(full: bool) -> Lead {
        let some = |s: &str| full.then(|| s.to_string());
        Lead {
            id: "lead_1".into(),
            first_name: Nullable(some("Ada")),
            last_name: Nullable(some("Lovelace")),
            email: Nullable(some("ada@example.com")),
            phone: Nullable(some("+44 20")),
            title: Nullable(some("CTO")),
            company_id: Nullable(some("comp_1")),
            company_name: Nullable(some("Analytical Engines")),
            country: Nullable(some("GB")),
            status: if full {
                LeadStatus::Qualified
            } else {
                LeadStatus::New
            },
            source: Nullable(some("web")),
            tags: if full { vec!["x".into()] } else { vec![] },
            owner_id: Nullable(some("usr_1")),
            last_activity_at: Nullable(full.then_some(Timestamp(1_750_000_000_000))),
            score: 42,
            converted_deal_id: Nullable(some("deal_1")),
            converted_at: Nullable(full.then_some(Timestamp(1_760_000_000_000))),
            version: 3,
            created_at: Timestamp(0),
            updated_at: Timestamp(5),
        }
    }

    /// What the envelopes wrote before the direct path: the OpenAPI tree of the whole envelope.
    fn through_the_tree<T: ToJSON>(value: &T) -> Vec<u8> {
        serde_json::to_vec(&value.to_json()).unwrap()
    }

    #[test]
    fn deals_and_leads_are_written_exactly_as_their_openapi_tree() {
        for full in [true, false] {
            let (d, l) = (deal(full), lead(full));
            assert_eq!(
                one_body(&d),
                through_the_tree(&Envelope { data: d.clone() })
            );
            assert_eq!(
                one_body(&l),
                through_the_tree(&Envelope { data: l.clone() })
            );
            let meta = ListMeta {
                page: 2,
                per_page: 25,
                total: 99,
            };
            let deals = vec![deal(true), deal(false)];
            assert_eq!(
                page_body(&deals, &meta),
                through_the_tree(&ListEnvelope {
                    data: deals.clone(),
                    meta: meta.clone()
                })
            );
        }
    }

    #[test]
    fn empty_pages_and_bare_objects_are_written_as_their_openapi_tree() {
        let meta = ListMeta {
            page: 1,
            per_page: 25,
            total: 0,
        };
        let none: Vec<Lead> = Vec::new();
        assert_eq!(
            page_body(&none, &meta),
            through_the_tree(&ListEnvelope {
                data: none.clone(),
                meta: meta.clone()
            })
        );
        assert_eq!(
            one_body(&meta),
            through_the_tree(&Envelope { data: meta.clone() })
        );
    }
}
