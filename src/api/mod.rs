//! The HTTP API: poem-openapi handlers, one file per tag, plus the gate around them.
//!
//! Handlers are thin: they parse, check the scope, call the domain on the database helper and
//! wrap the result in the envelope. They never write SQL.

pub mod body;
pub mod document;
pub mod envelope;
pub mod error;
pub mod gate;
pub mod headers;
pub mod llms;
pub mod params;
pub mod routes;
pub mod security;
pub mod wire;

mod activities;
mod admin;
mod analytics;
mod api_keys;
mod auth;
mod campaigns;
mod companies;
pub mod csv;
mod deals;
mod email;
mod events;
mod intelligence;
mod leads;
mod notes;
mod org;
mod pipelines;
mod search;
mod sse;
mod suppressions;
mod tasks;
mod templates;
mod users;
mod webhooks;

use poem_openapi::{OpenApiService, Tags};

/// The OpenAPI tags, one per group of operations.
#[derive(Tags)]
pub enum ApiTags {
    /// Log in and out, and find out who you are.
    Auth,
    /// The organization and its settings, including the ideal customer profile.
    Organization,
    /// The people of the organization and their roles.
    Users,
    /// API keys: `clz_` secrets for agents and integrations, shown once.
    #[oai(rename = "API keys")]
    ApiKeys,
    /// Accounts: the companies leads work at and deals are sold to.
    Companies,
    /// People who may buy: the 360 view, assignment, conversion, CSV import and export.
    Leads,
    /// The boards deals move across, and their stages.
    Pipelines,
    /// Opportunities: their moves through the pipeline and their full context.
    Deals,
    /// Deal risk, at-risk deals, agent memory and buying signals, computed by deterministic
    /// rules with the factors behind every score.
    Intelligence,
    /// Next steps, on deals and leads.
    Tasks,
    /// Calls, emails, meetings and the like.
    Activities,
    /// Free text on deals and leads.
    Notes,
    /// Full-text search across the CRM.
    Search,
    /// The log of every change.
    Events,
    /// The pipeline in numbers: overview, funnel, forecast.
    Analytics,
    /// How the team is doing: leaderboard and quotas.
    Performance,
    /// Signed, durable delivery of events to your endpoints.
    Webhooks,
    /// Per-deal inboxes: send, reply, inbound mail and open tracking.
    Email,
    /// What outbound email says: templates over the lead, its company, its owner and the
    /// deal, checked when saved and rendered per lead.
    #[oai(rename = "Email templates")]
    EmailTemplates,
    /// Addresses never written to again (unsubscribed, bounced, or added by hand), honoured by
    /// every send.
    Suppressions,
    /// Outbound sequences that run by themselves: steps, enrollments, stop rules, metrics.
    Campaigns,
    /// The server's own data: backups.
    Admin,
}

/// Every API object, in the order they appear in the document.
pub type Apis = (
    CoreApis,
    webhooks::WebhooksApi,
    email::EmailApi,
    templates::EmailTemplatesApi,
    suppressions::SuppressionsApi,
    campaigns::CampaignsApi,
    admin::AdminApi,
);

/// The first sixteen API objects (poem-openapi implements tuples up to sixteen).
pub type CoreApis = (
    auth::AuthApi,
    org::OrgApi,
    users::UsersApi,
    api_keys::ApiKeysApi,
    companies::CompaniesApi,
    leads::LeadsApi,
    pipelines::PipelinesApi,
    deals::DealsApi,
    intelligence::IntelligenceApi,
    tasks::TasksApi,
    activities::ActivitiesApi,
    notes::NotesApi,
    search::SearchApi,
    events::EventsApi,
    analytics::AnalyticsApi,
    analytics::PerformanceApi,
);

const DESCRIPTION: &str = "\
Clozup is a self-hosted, agent-native sales CRM. Every response is JSON in an envelope: \
`{\"data\": ...}` (lists add `\"meta\": {\"page\", \"per_page\", \"total\"}`), and every failure \
is `{\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}`.\n\n\
Authenticate with `Authorization: Bearer clz_...` (API key) or `Bearer clzs_...` (session from \
`POST /auth/login`). Scopes: `read` (GETs), `write` (changes to CRM data), `admin` (keys, users, \
organization; implies the others).\n\n\
Rate limits are per credential (per client IP before authentication); every response carries \
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`, and a 429 carries `Retry-After`.\n\n\
Any POST may carry `Idempotency-Key` (1–255 printable ASCII): the first response is stored for \
24 hours and replayed with `Idempotent-Replayed: true`. Objects carry a `version`, returned as \
`ETag`; a PATCH with a stale `If-Match` is a 412.";

/// The API with its document, ready to nest under `/api/v1`. Handlers find the
/// [`crate::state::AppState`] in the request data, so the document can be built without a database.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            (
                auth::AuthApi,
                org::OrgApi,
                users::UsersApi,
                api_keys::ApiKeysApi,
                companies::CompaniesApi,
                leads::LeadsApi,
                pipelines::PipelinesApi,
                deals::DealsApi,
                intelligence::IntelligenceApi,
                tasks::TasksApi,
                activities::ActivitiesApi,
                notes::NotesApi,
                search::SearchApi,
                events::EventsApi,
                analytics::AnalyticsApi,
                analytics::PerformanceApi,
            ),
            webhooks::WebhooksApi,
            email::EmailApi,
            templates::EmailTemplatesApi,
            suppressions::SuppressionsApi,
            campaigns::CampaignsApi,
            admin::AdminApi,
        ),
        "Clozup API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
    .server("/api/v1")
}

/// The OpenAPI document as JSON, as served and printed by `clozup openapi`.
pub fn spec_json() -> String {
    document::refine(&service().spec())
}
