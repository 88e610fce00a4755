//! Email templates: a subject and an HTML and/or text body, checked when saved and rendered for
//! a lead (and a deal) by [`render`].

use poem_openapi::types::MaybeUndefined;
use poem_openapi::Object;
use rusqlite::{params, Connection, OptionalExtension, Row};

use super::auth::Principal;
use super::deals::Deal;
use super::error::{DomainError, DomainResult, FieldIssue, Issues};
use super::events::Actor;
use super::leads::Lead;
use super::listing::{Filters, ListPage, ListSource, Paging, Record, Sort};
use super::nullable::Nullable;
use super::{changes, companies, deals, leads, users, validate};
use crate::clock::Millis;
use crate::db::{CachedRow, Tx};
use crate::domain::validate::Name;
use crate::ids::new_id;
use crate::shape::Shaped;
use crate::timefmt::Timestamp;

pub mod render;
use render::{Context, Part};

/// Longest subject accepted (RFC 5322's line length).
pub const SUBJECT_MAX: usize = 998;
/// A subject as the document states it: one line with something besides whitespace.
pub const SUBJECT_PATTERN: &str = concat!(
    "^[^\\r\\n]*[^",
    crate::domain::validate::white_space!(),
    "][^\\r\\n]*$"
);

crate::text_shape!(
    /// A template's subject, up to [`SUBJECT_MAX`] characters.
    Subject,
    1,
    SUBJECT_MAX,
    Some(SUBJECT_PATTERN)
);

/// Longest body accepted.
pub const BODY_MAX: usize = 100_000;

/// An email template.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct EmailTemplate {
    /// `tpl_...`
    pub id: String,
    /// Unique in the organization (without regard to case).
    pub name: String,
    /// The subject line, a template.
    pub subject: String,
    /// The HTML body, a template whose values are escaped.
    pub html_body: Nullable<String>,
    /// The plain-text body, a template.
    pub text_body: Nullable<String>,
    /// The variables the template uses (`lead.first_name`, ...), in order.
    pub variables: Vec<String>,
    /// The user who wrote it.
    pub created_by: Nullable<String>,
    /// Bumped on every change; send it back in `If-Match`.
    pub version: i64,
    /// When it was written.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A template to save. Every part is Jinja: `{{ lead.first_name }}`, `{{ company.name }}`,
/// `{{ owner.first_name }}`, `{{ deal.title }}` (any field of the API's Lead, Company and Deal;
/// owner has id, name, first_name and email), with fallbacks (`{{ lead.first_name |
/// default("there") }}`), conditions and loops. A variable that is no such field is refused
/// (422, naming it); a field with no value for a lead fails the rendering unless it has a
/// fallback.
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct NewEmailTemplate {
    /// 1–200 characters, unique in the organization.
    pub name: Shaped<Name>,
    /// 1–998 characters, one line.
    pub subject: Shaped<Subject>,
    /// Up to 100,000 characters. A template needs an HTML body, a text body or both.
    #[oai(nullable, validator(max_length = 100000))]
    pub html_body: Option<String>,
    /// Up to 100,000 characters.
    #[oai(nullable, validator(max_length = 100000))]
    pub text_body: Option<String>,
}

/// Changes to a template: absent fields stay, `null` clears a body (one must remain).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct EmailTemplatePatch {
    /// 1–200 characters, unique in the organization.
    #[oai(nullable)]
    pub name: Option<Shaped<Name>>,
    /// 1–998 characters, one line.
    #[oai(nullable)]
    pub subject: Option<Shaped<Subject>>,
    /// Up to 100,000 characters.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub html_body: MaybeUndefined<String>,
    /// Up to 100,000 characters.
    #[oai(validator(max_length = 100000))]
    #[oai(nullable)]
    pub text_body: MaybeUndefined<String>,
}

/// Whom to render a template for: a lead, a deal, or both. With a deal alone, the lead is the
/// deal's own; the company is the lead's (else the deal's) and the owner the lead's (else the
/// deal's).
#[derive(Debug, Clone, Object)]
#[oai(deny_unknown_fields)]
pub struct PreviewFor {
    /// A lead of this organization (`lead_...`).
    #[oai(nullable)]
    pub lead_id: Option<String>,
    /// A deal of this organization (`deal_...`).
    #[oai(nullable)]
    pub deal_id: Option<String>,
}

/// A template rendered for a lead: what the email would say.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct RenderedEmail {
    /// The template rendered.
    pub template_id: String,
    /// The lead it was rendered for.
    pub lead_id: Nullable<String>,
    /// The deal it was rendered for.
    pub deal_id: Nullable<String>,
    /// The subject line.
    pub subject: String,
    /// The HTML body (values escaped).
    pub html_body: Nullable<String>,
    /// The plain-text body.
    pub text_body: Nullable<String>,
}

const COLUMNS: &str = "id, name, subject, html_body, text_body, variables, created_by, version, \
                       created_at, updated_at";
const LIST: ListSource = ListSource {
    columns: COLUMNS,
    from: "email_templates",
    id: "id",
    count_from: None,
};
const RECORD: Record = Record::new("email_templates", COLUMNS, "tpl", "email template");

fn from_row(r: &Row<'_>) -> rusqlite::Result<EmailTemplate> {
    let variables: String = r.get(5)?;
    Ok(EmailTemplate {
        id: r.get(0)?,
        name: r.get(1)?,
        subject: r.get(2)?,
        html_body: r.get(3)?,
        text_body: r.get(4)?,
        variables: serde_json::from_str(&variables).unwrap_or_default(),
        created_by: r.get(6)?,
        version: r.get(7)?,
        created_at: Timestamp(r.get(8)?),
        updated_at: Timestamp(r.get(9)?),
    })
}

/// The template `id` of `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> DomainResult<EmailTemplate> {
    RECORD.get(conn, org_id, id, from_row)
}

/// Sortable fields.
pub const SORTS: &[(&str, &str)] = &[
    ("name", "name COLLATE NOCASE"),
    ("created_at", "created_at"),
    ("updated_at", "updated_at"),
];

/// One page of templates, `q` matching their names.
pub fn list(
    conn: &Connection,
    org_id: &str,
    q: Option<&str>,
    sort: Option<&str>,
    paging: Paging,
) -> DomainResult<ListPage<EmailTemplate>> {
    let sort = Sort::parse(sort, SORTS)?;
    let mut filters = Filters::for_org("org_id", org_id);
    if let Some(q) = q.map(str::trim).filter(|q| !q.is_empty()) {
        filters.push(
            "name LIKE ? ESCAPE '\\'",
            vec![validate::like_pattern(q).into()],
        );
    }
    filters.fetch_page(conn, &LIST, sort, paging, from_row)
}

/// A template's parts checked: the variables they use, or the issues found.
struct Parts {
    name: String,
    subject: String,
    html: Option<String>,
    text: Option<String>,
}

impl Parts {
    /// Checks every part, adding an issue per bad one (`no_body` when there is no body);
    /// returns the variables used, as stored.
    fn check(&self, issues: &mut Issues, no_body: &str) -> String {
        if self.html.is_none() && self.text.is_none() {
            issues.add("text_body", no_body);
        }
        let mut used = std::collections::BTreeSet::new();
        let parts = [
            (Part::Subject, Some(&self.subject)),
            (Part::Html, self.html.as_ref()),
            (Part::Text, self.text.as_ref()),
        ];
        for (part, source) in parts {
            match source.map(|s| render::check(part, s)) {
                Some(Ok(names)) => used.extend(names),
                Some(Err(issue)) => issues.add(part.field(), issue),
                None => {}
            }
        }
        serde_json::to_string(&used).unwrap_or_else(|_| "[]".into())
    }
}

/// The subject as given: not blank, one line (line breaks are refused anywhere, even where
/// trimming would remove them, as the document's pattern says).
fn subject(issues: &mut Issues, raw: &str) -> String {
    if raw.contains(['\r', '\n']) {
        issues.add("subject", "must be one line");
    }
    validate::text(issues, "subject", raw, 1, SUBJECT_MAX)
}

/// A body as given: blank is none.
fn body(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn check_name_free(
    conn: &Connection,
    org_id: &str,
    name: &str,
    except: Option<&str>,
) -> DomainResult<()> {
    let existing: Option<String> = conn
        .cached_row(
            "SELECT id FROM email_templates WHERE org_id = ?1 AND name = ?2 COLLATE NOCASE",
            params![org_id, name],
            |r| r.get(0),
        )
        .optional()?;
    match existing {
        Some(id) if Some(id.as_str()) != except => Err(DomainError::Conflict {
            message: format!("an email template named {name:?} already exists"),
            details: vec![FieldIssue::new("name", format!("is already used by {id}"))],
        }),
        _ => Ok(()),
    }
}

/// Saves a template; records `email_template.created`.
pub fn create(
    tx: &Tx<'_>,
    p: &Principal,
    input: NewEmailTemplate,
    now: Millis,
) -> DomainResult<EmailTemplate> {
    let mut issues = Issues::new();
    let parts = Parts {
        name: validate::name(&mut issues, "name", &input.name),
        subject: subject(&mut issues, &input.subject),
        html: body(validate::optional_text(
            &mut issues,
            "html_body",
            input.html_body,
            BODY_MAX,
        )),
        text: body(validate::optional_text(
            &mut issues,
            "text_body",
            input.text_body,
            BODY_MAX,
        )),
    };
    let variables = parts.check(
        &mut issues,
        "or html_body is required: a template needs a body",
    );
    issues.finish()?;
    check_name_free(tx, &p.org_id, &parts.name, None)?;
    let id = new_id("tpl");
    tx.execute(
        "INSERT INTO email_templates (id, org_id, name, subject, html_body, text_body, variables,
                                      created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            id,
            p.org_id,
            parts.name,
            parts.subject,
            parts.html,
            parts.text,
            variables,
            p.user_id,
            now
        ],
    )?;
    let template = get(tx, &p.org_id, &id)?;
    changes::append(
        tx,
        &p.org_id,
        &Actor::from(p),
        "email_template.created",
        &template,
        None,
        now,
    )?;
    Ok(template)
}

/// Changes a template (`If-Match` checked); records `email_template.updated`.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: EmailTemplatePatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<EmailTemplate> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let mut issues = Issues::new();
    let parts = Parts {
        name: match &patch.name {
            Some(n) => validate::name(&mut issues, "name", n),
            None => before.name.clone(),
        },
        subject: match &patch.subject {
            Some(s) => subject(&mut issues, s),
            None => before.subject.clone(),
        },
        html: body(validate::optional_text(
            &mut issues,
            "html_body",
            validate::merge(patch.html_body, before.html_body.0.clone()),
            BODY_MAX,
        )),
        text: body(validate::optional_text(
            &mut issues,
            "text_body",
            validate::merge(patch.text_body, before.text_body.0.clone()),
            BODY_MAX,
        )),
    };
    // Which body a change may clear depends on what is stored: worded apart, as a rule of the
    // stored template, not of the request.
    let variables = parts.check(
        &mut issues,
        "would leave the template without a body: keep html_body or text_body",
    );
    issues.finish()?;
    check_name_free(tx, &p.org_id, &parts.name, Some(id))?;
    let sets: [changes::Set<'_>; 5] = [
        ("name", &parts.name),
        ("subject", &parts.subject),
        ("html_body", &parts.html),
        ("text_body", &parts.text),
        ("variables", &variables),
    ];
    if !changes::update(tx, "email_templates", &p.org_id, id, &sets, now)? {
        return Ok(before);
    }
    let after = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    changes::record_update(
        tx,
        &p.org_id,
        &actor,
        "email_template.updated",
        &before,
        &after,
        now,
    )?;
    Ok(after)
}

/// Deletes a template; records `email_template.deleted`.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<EmailTemplate> {
    let template = get(tx, &p.org_id, id)?;
    let used: Option<(String, String)> = tx
        .cached_row(
            "SELECT id, campaign_id FROM campaign_steps WHERE template_id = ?1 LIMIT 1",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((step, campaign)) = used {
        return Err(DomainError::Conflict {
            message: format!(
                "email template {id} is used by step {step} of campaign {campaign}; change or \
                 remove the step first"
            ),
            details: Vec::new(),
        });
    }
    changes::remove(
        tx,
        "email_templates",
        &p.org_id,
        id,
        &Actor::from(p),
        "email_template.deleted",
        &template,
        now,
    )?;
    Ok(template)
}

/// `found`, or `None` with an issue naming the unknown `kind` `id` under `field`.
fn known<T>(
    issues: &mut Issues,
    found: DomainResult<T>,
    field: &str,
    kind: &str,
    id: &str,
) -> DomainResult<Option<T>> {
    match found {
        Err(DomainError::NotFound(_)) => {
            issues.add_unknown(field, kind, id);
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// The objects a template is rendered for, read from `lead_id` and/or `deal_id`.
pub fn context_for(
    conn: &Connection,
    org_id: &str,
    lead_id: Option<&str>,
    deal_id: Option<&str>,
) -> DomainResult<Context> {
    let mut issues = Issues::new();
    if lead_id.is_none() && deal_id.is_none() {
        issues.add("lead_id", "or deal_id is required: whom is the email for?");
    }
    let deal = match deal_id {
        Some(id) => known(
            &mut issues,
            deals::get(conn, org_id, id),
            "deal_id",
            "deal",
            id,
        )?,
        None => None,
    };
    let lead_id = lead_id
        .map(str::to_string)
        .or_else(|| deal.as_ref().and_then(|d| d.lead_id.0.clone()));
    let lead = match lead_id.as_deref() {
        Some(id) => known(
            &mut issues,
            leads::get(conn, org_id, id),
            "lead_id",
            "lead",
            id,
        )?,
        None => None,
    };
    issues.finish()?;
    fill(conn, org_id, lead, deal)
}

/// What a template is rendered for when an email goes out on `deal`: the deal and its lead.
pub fn for_deal(conn: &Connection, org_id: &str, deal: Deal) -> DomainResult<Context> {
    let lead = match deal.lead_id.0.as_deref() {
        Some(id) => Some(leads::get(conn, org_id, id)?),
        None => None,
    };
    fill(conn, org_id, lead, Some(deal))
}

/// The context of a lead alone (a campaign's email): the lead, its company and owner.
pub fn for_lead(conn: &Connection, org_id: &str, lead: Lead) -> DomainResult<Context> {
    fill(conn, org_id, Some(lead), None)
}

/// The context of a lead and a deal: the lead's company and owner (else the deal's).
fn fill(
    conn: &Connection,
    org_id: &str,
    lead: Option<Lead>,
    deal: Option<Deal>,
) -> DomainResult<Context> {
    let company_id = lead
        .as_ref()
        .and_then(|l| l.company_id.0.clone())
        .or_else(|| deal.as_ref().and_then(|d| d.company_id.0.clone()));
    let company = match company_id {
        Some(id) => companies::get(conn, org_id, &id).ok(),
        None => None,
    };
    let owner_id = lead
        .as_ref()
        .and_then(|l| l.owner_id.0.clone())
        .or_else(|| deal.as_ref().and_then(|d| d.owner_id.0.clone()));
    let owner = match owner_id {
        Some(id) => users::get(conn, org_id, &id)
            .ok()
            .map(|u| (u.id, u.name, u.email)),
        None => None,
    };
    Ok(Context {
        lead,
        company,
        owner,
        deal,
    })
}

/// Renders template `id` for a lead and/or deal: 422 naming the part and the value when one
/// cannot be rendered for them.
pub fn preview(
    conn: &Connection,
    org_id: &str,
    id: &str,
    target: PreviewFor,
) -> DomainResult<RenderedEmail> {
    let template = get(conn, org_id, id)?;
    let context = context_for(
        conn,
        org_id,
        target.lead_id.as_deref(),
        target.deal_id.as_deref(),
    )?;
    render_for(&template, &context)
}

/// Renders `template` for `context`: 422 naming the part and the value when one cannot be.
pub fn render_for(template: &EmailTemplate, context: &Context) -> DomainResult<RenderedEmail> {
    let mut issues = Issues::new();
    let mut part = |part: Part, source: Option<&String>| {
        source.and_then(|s| match render::render(part, s, context) {
            Ok(out) => Some(out),
            Err(issue) => {
                issues.add(part.field(), issue);
                None
            }
        })
    };
    let subject = part(Part::Subject, Some(&template.subject));
    let html = part(Part::Html, template.html_body.0.as_ref());
    let text = part(Part::Text, template.text_body.0.as_ref());
    issues.finish()?;
    Ok(RenderedEmail {
        template_id: template.id.clone(),
        lead_id: Nullable(context.lead.as_ref().map(|l| l.id.clone())),
        deal_id: Nullable(context.deal.as_ref().map(|d| d.id.clone())),
        subject: subject.unwrap_or_default().trim().to_string(),
        html_body: Nullable(html),
        text_body: Nullable(text),
    })
}
