//! The success envelope (API.md §2): `{"data": ...}` for one object, `{"data": [...], "meta":
//! {page, per_page, total}}` for lists, with `ETag: "<version>"` on versioned objects.

use poem::http::{header, HeaderValue, StatusCode};
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ParseFromJSON, ToJSON, Type};
use poem_openapi::{ApiResponse, Object};

use crate::domain::listing::ListPage;

/// `{"data": <object>}`
#[derive(Debug, Clone, Object)]
pub struct Envelope<T: ParseFromJSON + ToJSON> {
    /// The object.
    pub data: T,
}

/// Pagination of a list.
#[derive(Debug, Clone, Object)]
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

const JSON: &str = "application/json; charset=utf-8";

fn json_response<T: ToJSON>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(&value.to_json()).unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type(JSON)
        .body(body)
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

impl<T: ParseFromJSON + ToJSON + Send, const STATUS: u16> IntoResponse for One<T, STATUS> {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(STATUS).unwrap_or(StatusCode::OK);
        let mut resp = json_response(status, &Envelope { data: self.data });
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
                    content_type: JSON,
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

impl<T: ParseFromJSON + ToJSON + Send> IntoResponse for Page<T> {
    fn into_response(self) -> Response {
        let page = self.0;
        json_response(
            StatusCode::OK,
            &ListEnvelope {
                data: page.items,
                meta: ListMeta {
                    page: page.paging.page,
                    per_page: page.paging.per_page,
                    total: page.total,
                },
            },
        )
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
                    content_type: JSON,
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
