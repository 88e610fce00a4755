//! `/companies`: accounts.

use crate::api::params::Choice;
use crate::api::params::{paging, CompanySort, PageNumber, PerPage, SortParam};
use std::sync::Arc;

use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::OpenApi;

use super::body::JsonBody;
use super::csv::{self, CsvBody, CsvDownload};
use super::envelope::{Created, One, Page};
use super::error::ApiResult;
use super::headers::IfMatch;
use super::security::Caller;
use super::ApiTags;
use crate::domain::auth::Scope;
use crate::domain::companies::{self, Company, CompanyFilter, CompanyPatch, NewCompany};
use crate::domain::sheets::companies::CompanyImport;
use crate::domain::sheets::{self, Delimiter, ImportResult, OnDuplicate};
use crate::state::AppState;
use crate::timefmt::Timestamp;

/// Companies.
pub struct CompaniesApi;

#[OpenApi(tag = "ApiTags::Companies")]
impl CompaniesApi {
    /// List companies
    ///
    /// Filters: `industry`, `country`, `owner_id` (each any of, comma separated), `tag`,
    /// `size_min`/`size_max`, `created_after`/`created_before`/`updated_since`, `q` (name or
    /// domain). Sort: `created_at`, `updated_at`, `name`, `size`; default `-created_at`.
    #[oai(path = "/companies", method = "get", operation_id = "list_companies")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// Which page, from 1 (default 1).
        page: Query<Option<PageNumber>>,
        /// Rows per page, 1 to 100 (default 25).
        per_page: Query<Option<PerPage>>,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<CompanySort>>>,
        /// Only companies in these industries (any of, comma separated).
        industry: Query<Option<String>>,
        /// Only companies in these countries (any of, comma separated).
        country: Query<Option<String>>,
        /// Only companies owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only companies carrying this tag.
        tag: Query<Option<String>>,
        /// Only companies with at least this many employees.
        size_min: Query<Option<i64>>,
        /// Only companies with at most this many employees.
        size_max: Query<Option<i64>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
    ) -> ApiResult<Page<Company>> {
        let paging = paging(page.0, per_page.0)?;
        let f = company_filter(
            industry.0,
            country.0,
            owner_id.0,
            tag.0,
            (size_min.0, size_max.0),
            (created_after.0, created_before.0, updated_since.0),
            q.0,
        );
        let page = caller
            .read(&state, move |c, org_id| {
                companies::list(c, org_id, &f, sort.0.as_deref(), paging)
            })
            .await?;
        Ok(Page(page))
    }

    /// Export companies as CSV
    ///
    /// Streams every company matching the list filters (same parameters as `GET /companies`,
    /// no paging) as `text/csv` with a header row; owners are written by email
    /// (`owner_email`), so the file imports into any organization. Text cells a spreadsheet
    /// would run as a formula (starting with `=`, `+`, `-`, `@`, tab or CR) get a `'` in front.
    /// `bom=true` prefixes a UTF-8 byte-order mark for spreadsheet programs that need one.
    #[oai(
        path = "/companies/export",
        method = "get",
        operation_id = "export_companies"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn export(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The order: one of the values listed; a `-` first means descending.
        sort: Query<Option<SortParam<CompanySort>>>,
        /// Only companies in these industries (any of, comma separated).
        industry: Query<Option<String>>,
        /// Only companies in these countries (any of, comma separated).
        country: Query<Option<String>>,
        /// Only companies owned by these users (`usr_...`; any of, comma separated).
        owner_id: Query<Option<String>>,
        /// Only companies carrying this tag.
        tag: Query<Option<String>>,
        /// Only companies with at least this many employees.
        size_min: Query<Option<i64>>,
        /// Only companies with at most this many employees.
        size_max: Query<Option<i64>>,
        /// Only those created at or after this time (RFC 3339).
        created_after: Query<Option<Timestamp>>,
        /// Only those created before this time (RFC 3339).
        created_before: Query<Option<Timestamp>>,
        /// Only those changed at or after this time (RFC 3339).
        updated_since: Query<Option<Timestamp>>,
        /// Text to look for (ASCII letters match in either case); the operation says in which fields.
        q: Query<Option<String>>,
        /// true: start the file with a UTF-8 byte-order mark, for spreadsheet programs that need one.
        bom: Query<Option<bool>>,
    ) -> ApiResult<CsvDownload> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let f = company_filter(
            industry.0,
            country.0,
            owner_id.0,
            tag.0,
            (size_min.0, size_max.0),
            (created_after.0, created_before.0, updated_since.0),
            q.0,
        );
        // Bad filters are a 422 now, before the 200 and the stream begin.
        companies::filters_for(&org_id, &f, sort.0.as_deref())?;
        let bom = bom.0.unwrap_or(false);
        Ok(CsvDownload::stream(
            &state.db,
            "companies.csv",
            move |c, sink| sheets::companies::export(c, &org_id, &f, sort.0.as_deref(), bom, sink),
        ))
    }

    /// Import companies from CSV
    ///
    /// Scope `write`. Read as `POST /leads/import` reads a file (encodings, separators, header
    /// names in any spelling, one transaction, a report of every row); the columns and their
    /// aliases are in docs/import.md. A company is the same as an existing one when their
    /// domains are, or, for a row without a domain, their names (case aside): such a row is
    /// skipped, updates it or is an error (`on_duplicate`). Each created company emits
    /// `company.created`, each updated one `company.updated`.
    #[oai(
        path = "/companies/import",
        method = "post",
        operation_id = "import_companies"
    )]
    async fn import(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: CsvBody,
        /// What a row matching an existing company does: skip it (default), update that company, or count as an error.
        on_duplicate: Query<Option<Choice<OnDuplicate>>>,
        /// The separator between cells; by default the first the header row uses.
        delimiter: Query<Option<Choice<Delimiter>>>,
    ) -> ApiResult<One<ImportResult>> {
        csv::import(
            &state,
            &caller,
            body,
            delimiter.0.map(|c| c.0),
            on_duplicate.0.map(|c| c.0),
            CompanyImport,
        )
        .await
    }

    /// Create a company
    ///
    /// Scope `write`. Emits `company.created`.
    #[oai(path = "/companies", method = "post", operation_id = "create_company")]
    async fn create(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        body: JsonBody<NewCompany>,
    ) -> ApiResult<Created<Company>> {
        let c = caller
            .write(&state, move |tx, p, now| {
                companies::create(tx, p, body.0, now)
            })
            .await?;
        Ok(Created::versioned(c.version, c))
    }

    /// Get a company
    ///
    /// The company with its version in `ETag`.
    #[oai(path = "/companies/:id", method = "get", operation_id = "get_company")]
    async fn get(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The company's id (`co_...`).
        id: Path<String>,
    ) -> ApiResult<One<Company>> {
        let org_id = caller.with(Scope::Read)?.org_id.clone();
        let c = state
            .db
            .lookup(move |conn| companies::get(conn, &org_id, &id.0))
            .await?;
        Ok(One::versioned(c.version, c))
    }

    /// Update a company
    ///
    /// Scope `write`. Absent fields stay, `null` clears. Send `If-Match` to avoid overwriting a
    /// newer version (412). Emits `company.updated` with the old values of the changed fields.
    #[oai(
        path = "/companies/:id",
        method = "patch",
        operation_id = "update_company"
    )]
    async fn update(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The company's id (`co_...`).
        id: Path<String>,
        body: JsonBody<CompanyPatch>,
        /// The version this change is based on, as the `ETag` gave it (`"3"`): if the object has changed since, the answer is 412 and nothing changes. Without it the change applies to whatever version is current.
        #[oai(name = "If-Match")]
        if_match: Header<Option<IfMatch>>,
    ) -> ApiResult<One<Company>> {
        let expected = IfMatch::value(if_match.0);
        let c = caller
            .write(&state, move |tx, p, now| {
                companies::update(tx, p, &id.0, body.0, expected, now)
            })
            .await?;
        Ok(One::versioned(c.version, c))
    }

    /// Delete a company
    ///
    /// Scope `write`. Its leads and deals stay, with `company_id` cleared (leads keep the
    /// company's name in `company_name`). Emits `company.deleted`; returns the deleted company.
    #[oai(
        path = "/companies/:id",
        method = "delete",
        operation_id = "delete_company"
    )]
    async fn delete(
        &self,
        state: Data<&Arc<AppState>>,
        caller: Caller,
        /// The company's id (`co_...`).
        id: Path<String>,
    ) -> ApiResult<One<Company>> {
        let c = caller
            .write(&state, move |tx, p, now| {
                companies::delete(tx, p, &id.0, now)
            })
            .await?;
        Ok(One::new(c))
    }
}

/// The list's (and the export's) filters from their query parameters.
fn company_filter(
    industry: Option<String>,
    country: Option<String>,
    owner_id: Option<String>,
    tag: Option<String>,
    (size_min, size_max): (Option<i64>, Option<i64>),
    (created_after, created_before, updated_since): (
        Option<Timestamp>,
        Option<Timestamp>,
        Option<Timestamp>,
    ),
    q: Option<String>,
) -> CompanyFilter {
    CompanyFilter {
        industry,
        country,
        owner_id,
        tag,
        size_min,
        size_max,
        created_after: created_after.map(|t| t.0),
        created_before: created_before.map(|t| t.0),
        updated_since: updated_since.map(|t| t.0),
        q,
    }
}
