//! Creating, changing, assigning and deleting leads, and the checks every way in (the API, the
//! CSV import, a conversion) shares.

use super::*;
use crate::domain::changes;
use crate::rules::lead_score::LeadFacts;

/// A lead's fields after validation, ready to store.
#[derive(Debug, Clone)]
pub struct LeadFields {
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// Title.
    pub title: Option<String>,
    /// Company record.
    pub company_id: Option<String>,
    /// Company name.
    pub company_name: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Status.
    pub status: LeadStatus,
    /// Source.
    pub source: Option<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// Owner.
    pub owner_id: Option<String>,
}

impl LeadFields {
    /// What the lead-score rules read from the lead itself (its company's facts come from
    /// the company).
    fn facts(&self) -> LeadFacts {
        LeadFacts {
            first_name: self.first_name.is_some(),
            last_name: self.last_name.is_some(),
            email: self.email.is_some(),
            phone: self.phone.is_some(),
            title: self.title.clone(),
            company: self.company_id.is_some() || self.company_name.is_some(),
            country: self.country.clone(),
            ..LeadFacts::default()
        }
    }

    /// The stored columns `first_name` to `owner_id` with their values, in `schema.sql`'s
    /// order: what an insert binds as `?3` to `?14`, after the lead's id and organization, and
    /// what an update sets.
    fn columns(&self) -> [(&'static str, rusqlite::types::Value); 12] {
        [
            ("first_name", self.first_name.clone().into()),
            ("last_name", self.last_name.clone().into()),
            ("email", self.email.clone().into()),
            ("phone", self.phone.clone().into()),
            ("title", self.title.clone().into()),
            ("company_id", self.company_id.clone().into()),
            ("company_name", self.company_name.clone().into()),
            ("country", self.country.clone().into()),
            ("status", self.status.as_str().to_string().into()),
            ("source", self.source.clone().into()),
            ("tags", validate::tags_to_db(&self.tags).into()),
            ("owner_id", self.owner_id.clone().into()),
        ]
    }

    /// `?1` the lead's id, `?2` its organization, `?3`-`?14` its columns, then `tail`.
    fn params<'a>(
        &self,
        id: &str,
        org_id: &str,
        tail: impl IntoIterator<Item = rusqlite::types::Value> + 'a,
    ) -> impl rusqlite::Params + 'a {
        let head = [id.to_string().into(), org_id.to_string().into()];
        let columns = self.columns().into_iter().map(|(_, value)| value);
        rusqlite::params_from_iter(head.into_iter().chain(columns).chain(tail))
    }
}

impl From<NewLead> for LeadFields {
    fn from(n: NewLead) -> Self {
        Self {
            first_name: n.first_name,
            last_name: n.last_name,
            email: n.email.map(String::from),
            phone: n.phone,
            title: n.title,
            company_id: n.company_id,
            company_name: n.company_name,
            country: n.country,
            status: n.status.map_or(LeadStatus::New, LeadStatus::from),
            source: n.source,
            tags: n.tags.map(Vec::from).unwrap_or_default(),
            owner_id: n.owner_id,
        }
    }
}

/// Validates lead fields (every rule, so one 422 lists them all); `existing` is the lead being
/// changed, whose own email does not clash with itself.
pub fn check(
    conn: &Connection,
    org_id: &str,
    f: LeadFields,
    existing: Option<&str>,
) -> DomainResult<LeadFields> {
    let mut issues = Issues::new();
    let email = validate::optional_text(&mut issues, "email", f.email, 254);
    if let Some(e) = &email {
        if !validate::is_email(e) {
            issues.add("email", "must be a valid email address");
        }
    }
    let mut out = LeadFields {
        first_name: validate::optional_text(&mut issues, "first_name", f.first_name, 100),
        last_name: validate::optional_text(&mut issues, "last_name", f.last_name, 100),
        email,
        phone: validate::optional_text(&mut issues, "phone", f.phone, 50),
        title: validate::optional_text(&mut issues, "title", f.title, 200),
        company_id: f.company_id,
        company_name: validate::optional_text(&mut issues, "company_name", f.company_name, 200),
        country: validate::optional_text(&mut issues, "country", f.country, 100),
        status: f.status,
        source: validate::optional_text(&mut issues, "source", f.source, 100),
        tags: validate::tags(&mut issues, "tags", f.tags),
        owner_id: f.owner_id,
    };
    let nameless = out.first_name.is_none() && out.last_name.is_none() && out.email.is_none();
    if nameless && existing.is_none() {
        issues.add(
            "email",
            "is required without first_name or last_name: a lead needs at least one of the three",
        );
    }
    validate::active_user(
        conn,
        &mut issues,
        "owner_id",
        org_id,
        out.owner_id.as_deref(),
    )?;
    if let Some(company_id) = out.company_id.as_deref() {
        match companies::find(conn, org_id, company_id)? {
            Some(c) if out.company_name.is_none() => out.company_name = Some(c.name),
            Some(_) => {}
            None => issues.add_unknown("company_id", "company", company_id),
        }
    }
    issues.finish()?;
    // A change that would clear the last of them is a conflict with what the lead holds.
    if nameless {
        return Err(DomainError::Conflict {
            message: "the lead would be left with no first name, last name or email".into(),
            details: vec![FieldIssue::new(
                "email",
                "is required without first_name or last_name: a lead needs at least one of the three",
            )],
        });
    }
    if let Some(email) = &out.email {
        if let Some(other) = find_by_email(conn, org_id, email)? {
            if Some(other.id.as_str()) != existing {
                return Err(DomainError::Conflict {
                    message: format!("a lead with email {email} already exists"),
                    details: vec![FieldIssue::new(
                        "email",
                        format!("is already used by {}", other.id),
                    )],
                });
            }
        }
    }
    Ok(out)
}

/// Inserts a checked lead and its `lead.created` event.
pub fn insert(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    f: &LeadFields,
    now: Millis,
) -> DomainResult<Lead> {
    let id = new_id("lead");
    let score =
        crate::domain::scores::of_new_lead(tx, org_id, f.facts(), f.company_id.as_deref(), now)?;
    tx.prepare_cached(
        "INSERT INTO leads (id, org_id, first_name, last_name, email, phone, title, company_id,
                            company_name, country, status, source, tags, owner_id, score,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?16)",
    )?
    .execute(f.params(&id, org_id, [score.into(), now.into()]))?;
    let lead = get(tx, org_id, &id)?;
    // The score given up front is the one a refresh computes from the stored lead; every test
    // that creates a lead checks that.
    debug_assert_eq!(
        Some(lead.score),
        crate::domain::scores::breakdown(tx, org_id, &id, now)
            .ok()
            .map(|v| v.breakdown.score),
        "a new lead's score differs from its refreshed score"
    );
    changes::append(tx, org_id, actor, "lead.created", &lead, None, now)?;
    Ok(lead)
}

/// Creates a lead.
pub fn create(tx: &Tx<'_>, p: &Principal, input: NewLead, now: Millis) -> DomainResult<Lead> {
    let f = check(tx, &p.org_id, input.into(), None)?;
    insert(tx, &p.org_id, &Actor::from(p), &f, now)
}

/// Stores changed fields of an existing lead and records `event_type` with the old values.
pub fn store(
    tx: &Tx<'_>,
    org_id: &str,
    actor: &Actor,
    before: &Lead,
    f: &LeadFields,
    event_type: &str,
    now: Millis,
) -> DomainResult<Lead> {
    let columns = f.columns();
    let sets: Vec<changes::Set<'_>> = columns
        .iter()
        .map(|(column, value)| (*column, value as &dyn rusqlite::ToSql))
        .collect();
    if !changes::update(tx, "leads", org_id, &before.id, &sets, now)? {
        return Ok(before.clone());
    }
    crate::domain::scores::refresh(tx, org_id, &before.id, now)?;
    let after = get(tx, org_id, &before.id)?;
    changes::record_update(tx, org_id, actor, event_type, before, &after, now)?;
    Ok(after)
}

/// The fields of `lead` as they stand, to apply a patch to.
pub fn fields_of(lead: &Lead) -> LeadFields {
    LeadFields {
        first_name: lead.first_name.0.clone(),
        last_name: lead.last_name.0.clone(),
        email: lead.email.0.clone(),
        phone: lead.phone.0.clone(),
        title: lead.title.0.clone(),
        company_id: lead.company_id.0.clone(),
        company_name: lead.company_name.0.clone(),
        country: lead.country.0.clone(),
        status: lead.status,
        source: lead.source.0.clone(),
        tags: lead.tags.clone(),
        owner_id: lead.owner_id.0.clone(),
    }
}

/// Changes a lead (`If-Match` checked); records `lead.updated`.
pub fn update(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    patch: LeadPatch,
    expected_version: Option<i64>,
    now: Millis,
) -> DomainResult<Lead> {
    let before = get(tx, &p.org_id, id)?;
    validate::if_match(expected_version, before.version)?;
    let b = fields_of(&before);
    let company_changed = !matches!(patch.company_id, MaybeUndefined::Undefined);
    let mut f = LeadFields {
        first_name: validate::merge(patch.first_name, b.first_name),
        last_name: validate::merge(patch.last_name, b.last_name),
        email: validate::merge(patch.email, b.email),
        phone: validate::merge(patch.phone, b.phone),
        title: validate::merge(patch.title, b.title),
        company_id: validate::merge(patch.company_id, b.company_id),
        company_name: validate::merge(patch.company_name.clone(), b.company_name),
        country: validate::merge(patch.country, b.country),
        status: patch.status.map_or(b.status, LeadStatus::from),
        source: validate::merge(patch.source, b.source),
        tags: patch.tags.map(Vec::from).unwrap_or(b.tags),
        owner_id: validate::merge(patch.owner_id, b.owner_id),
    };
    if company_changed && matches!(patch.company_name, MaybeUndefined::Undefined) {
        // A new company record brings its own name.
        f.company_name = None;
    }
    let f = check(tx, &p.org_id, f, Some(id))?;
    store(
        tx,
        &p.org_id,
        &Actor::from(p),
        &before,
        &f,
        "lead.updated",
        now,
    )
}

/// Assigns the lead to an active user of the organization; records `lead.assigned`.
pub fn assign(
    tx: &Tx<'_>,
    p: &Principal,
    id: &str,
    user_id: &str,
    now: Millis,
) -> DomainResult<Lead> {
    let before = get(tx, &p.org_id, id)?;
    let mut issues = Issues::new();
    validate::active_user(tx, &mut issues, "user_id", &p.org_id, Some(user_id))?;
    issues.finish()?;
    let mut f = fields_of(&before);
    f.owner_id = Some(user_id.to_string());
    store(
        tx,
        &p.org_id,
        &Actor::from(p),
        &before,
        &f,
        "lead.assigned",
        now,
    )
}

/// Deletes a lead with its tasks, activities and notes (each task and note with its own
/// `deleted` event). Deals it became stay, with `lead_id` cleared.
pub fn delete(tx: &Tx<'_>, p: &Principal, id: &str, now: Millis) -> DomainResult<Lead> {
    let lead = get(tx, &p.org_id, id)?;
    let actor = Actor::from(p);
    crate::domain::enrollments::stop_for_lead(
        tx,
        &p.org_id,
        id,
        crate::domain::enrollments::StopReason::LeadDeleted,
        now,
    )?;
    crate::domain::tasks::delete_where(tx, &p.org_id, &actor, "lead_id", id, now)?;
    crate::domain::notes::delete_where(tx, &p.org_id, &actor, "lead_id", id, now)?;
    tx.execute(
        "DELETE FROM activities WHERE org_id = ?1 AND lead_id = ?2",
        params![p.org_id, id],
    )?;
    tx.execute(
        "UPDATE deals SET lead_id = NULL WHERE org_id = ?1 AND lead_id = ?2",
        params![p.org_id, id],
    )?;
    changes::remove(
        tx,
        "leads",
        &p.org_id,
        id,
        &actor,
        "lead.deleted",
        &lead,
        now,
    )?;
    Ok(lead)
}
