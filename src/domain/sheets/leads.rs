//! Leads in and out as CSV. A lead is the same as another when their emails are.

use std::io::Write;

use rusqlite::Connection;

use super::{member, Cells, Column, Importer, Note, Run, TextSink};
use crate::db::Tx;
use crate::domain::companies;
use crate::domain::leads::{self, Lead, LeadFields, LeadFilter, LeadStatus};
use crate::domain::listing::Sort;
use crate::domain::DomainResult;
use crate::timefmt::format_ms;

const FIRST_NAME: usize = 0;
const LAST_NAME: usize = 1;
const NAME: usize = 2;
const EMAIL: usize = 3;
const PHONE: usize = 4;
const TITLE: usize = 5;
const COMPANY_NAME: usize = 6;
const COMPANY_ID: usize = 7;
const COUNTRY: usize = 8;
const STATUS: usize = 9;
const SOURCE: usize = 10;
const TAGS: usize = 11;
const OWNER: usize = 12;

/// The columns a lead import reads, with the header names other programs give them (as
/// `header_key` reduces them: `E-mail`, `Email Address` and `email_address` are all
/// `email`/`emailaddress`). docs/import.md lists them.
pub const COLUMNS: &[Column] = &[
    Column {
        name: "first_name",
        aliases: &["firstname", "givenname", "first", "forename"],
    },
    Column {
        name: "last_name",
        aliases: &["lastname", "surname", "familyname", "last"],
    },
    Column {
        name: "name",
        aliases: &[
            "fullname",
            "contactname",
            "contact",
            "person",
            "personname",
            "leadname",
        ],
    },
    Column {
        name: "email",
        aliases: &[
            "emailaddress",
            "mail",
            "workemail",
            "businessemail",
            "primaryemail",
            "emailwork",
            "personemail",
            "personemailwork",
            "personemailhome",
            "personemailother",
        ],
    },
    Column {
        name: "phone",
        aliases: &[
            "phonenumber",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "cell",
            "cellphone",
            "telephone",
            "tel",
            "workphone",
            "businessphone",
            "phonework",
            "personphone",
            "personphonework",
            "personphonemobile",
            "personphonehome",
        ],
    },
    Column {
        name: "title",
        aliases: &["jobtitle", "position", "role", "jobrole", "personjobtitle"],
    },
    Column {
        name: "company_name",
        aliases: &[
            "company",
            "organization",
            "organisation",
            "organizationname",
            "account",
            "accountname",
            "employer",
            "personorganization",
        ],
    },
    Column {
        name: "company_id",
        aliases: &[],
    },
    Column {
        name: "country",
        aliases: &["countryregion", "countryname"],
    },
    Column {
        name: "status",
        aliases: &["leadstatus"],
    },
    Column {
        name: "source",
        aliases: &["leadsource", "origin"],
    },
    Column {
        name: "tags",
        aliases: &["tag", "labels", "label", "personlabel"],
    },
    Column {
        name: "owner_email",
        aliases: &[
            "owner",
            "ownerid",
            "leadowner",
            "contactowner",
            "assignedto",
            "salesrep",
            "personowner",
        ],
    },
];

/// The lead import: creates leads, matched to existing ones by email.
pub struct LeadImport(pub Run);

impl Importer for LeadImport {
    const NOUN: &'static str = "lead";
    const COLUMNS: &'static [Column] = COLUMNS;
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "score",
        "last_activity_at",
        "converted_deal_id",
        "created_at",
        "updated_at",
    ];

    type Record = LeadFields;

    fn read(
        &self,
        tx: &Tx<'_>,
        row: &Cells<'_>,
        notes: &mut Vec<Note>,
    ) -> DomainResult<LeadFields> {
        self.fields(tx, row, notes)
    }

    fn existing(
        &self,
        tx: &Tx<'_>,
        fields: &LeadFields,
    ) -> DomainResult<Option<(String, &'static str)>> {
        Ok(match &fields.email {
            Some(email) => {
                leads::find_by_email(tx, &self.0.p.org_id, email)?.map(|l| (l.id, "email"))
            }
            None => None,
        })
    }

    fn create(&self, tx: &Tx<'_>, fields: LeadFields) -> DomainResult<String> {
        let Run { p, actor, now } = &self.0;
        let checked = leads::check(tx, &p.org_id, fields, None)?;
        Ok(leads::insert(tx, &p.org_id, actor, &checked, *now)?.id)
    }

    fn update(&self, tx: &Tx<'_>, id: &str, fields: LeadFields) -> DomainResult<()> {
        let Run { p, actor, now } = &self.0;
        let lead = leads::get(tx, &p.org_id, id)?;
        let merged = fill(&lead, fields);
        let checked = leads::check(tx, &p.org_id, merged, Some(id))?;
        leads::store(tx, &p.org_id, actor, &lead, &checked, "lead.updated", *now)?;
        Ok(())
    }
}

impl LeadImport {
    /// A row's lead fields, with its owner and company resolved in this organization.
    fn fields(
        &self,
        tx: &Tx<'_>,
        row: &Cells<'_>,
        notes: &mut Vec<Note>,
    ) -> DomainResult<LeadFields> {
        let org_id = &self.0.p.org_id;
        let (mut first, mut last) = (row.get(FIRST_NAME), row.get(LAST_NAME));
        if first.is_none() && last.is_none() {
            if let Some(full) = row.get(NAME) {
                let mut parts = full.splitn(2, ' ');
                first = parts.next().map(str::to_string);
                last = parts
                    .next()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty());
            }
        }
        let status = match row.get(STATUS) {
            None => LeadStatus::New,
            Some(s) => match LeadStatus::parse(&s.to_lowercase()) {
                Some(LeadStatus::Converted) => {
                    notes.push(Note {
                        field: "status",
                        message: "was `converted`, which only converting a lead gives; \
                                  imported as `qualified`"
                            .into(),
                    });
                    LeadStatus::Qualified
                }
                Some(status) => status,
                // Other systems have their own vocabularies (HubSpot's `OPEN`, `IN_PROGRESS`):
                // the lead is worth more than the word.
                None => {
                    notes.push(Note {
                        field: "status",
                        message: format!(
                            "`{s}` is not one of new, contacted, qualified, lost; imported as new"
                        ),
                    });
                    LeadStatus::New
                }
            },
        };
        let company_id = match row.get(COMPANY_ID) {
            Some(id) => match companies::find(tx, org_id, &id)? {
                Some(_) => Some(id),
                None => {
                    notes.push(Note {
                        field: "company_id",
                        message: format!(
                            "`{id}` is not a company of this organization; the company name \
                             was kept without it"
                        ),
                    });
                    None
                }
            },
            None => None,
        };
        Ok(LeadFields {
            first_name: first,
            last_name: last,
            email: row.get(EMAIL),
            phone: row.get(PHONE),
            title: row.get(TITLE),
            company_id,
            company_name: row.get(COMPANY_NAME),
            country: row.get(COUNTRY),
            status,
            // A file without the column gets the import's own source; an empty cell of a
            // column that is there is no source (an export's `null`).
            source: if row.has(SOURCE) {
                row.get(SOURCE)
            } else {
                Some("import".into())
            },
            tags: super::tags(row.get(TAGS)),
            owner_id: member(tx, org_id, row.get(OWNER), "owner_email", notes)?,
        })
    }
}

/// The existing lead's fields, with the row's non-empty values laid over them.
fn fill(lead: &Lead, row: LeadFields) -> LeadFields {
    let current = leads::fields_of(lead);
    LeadFields {
        first_name: row.first_name.or(current.first_name),
        last_name: row.last_name.or(current.last_name),
        email: current.email,
        phone: row.phone.or(current.phone),
        title: row.title.or(current.title),
        company_id: row.company_id.or(current.company_id),
        company_name: row.company_name.or(current.company_name),
        country: row.country.or(current.country),
        status: if lead.status == LeadStatus::Converted {
            lead.status
        } else {
            row.status
        },
        source: current.source.or(row.source),
        tags: if row.tags.is_empty() {
            current.tags
        } else {
            row.tags
        },
        owner_id: row.owner_id.or(current.owner_id),
    }
}

/// The export's columns, in order: an import reads every one back (or knows to leave it).
pub const EXPORT_COLUMNS: &[&str] = &[
    "id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "title",
    "company_name",
    "company_id",
    "country",
    "status",
    "source",
    "tags",
    "owner_email",
    "score",
    "last_activity_at",
    "created_at",
    "updated_at",
];

/// Writes the filtered leads as CSV to `out`, flushing as it goes (`out` streams to the client).
pub fn export(
    conn: &Connection,
    org_id: &str,
    filter: &LeadFilter,
    sort: Option<&str>,
    bom: bool,
    out: impl Write,
) -> DomainResult<()> {
    let sort = Sort::parse(sort, leads::SORTS)?;
    let filters = leads::filters_for(org_id, filter)?;
    let owners = super::member_emails(conn, org_id)?;
    let mut sink = TextSink::new(out, bom, EXPORT_COLUMNS)?;
    filters.for_each(
        conn,
        leads::COLUMNS,
        "leads",
        sort,
        "id",
        leads::from_row,
        |l: Lead| {
            sink.write(
                &[
                    &l.id,
                    l.first_name.as_deref().unwrap_or(""),
                    l.last_name.as_deref().unwrap_or(""),
                    l.email.as_deref().unwrap_or(""),
                    l.phone.as_deref().unwrap_or(""),
                    l.title.as_deref().unwrap_or(""),
                    l.company_name.as_deref().unwrap_or(""),
                    l.company_id.as_deref().unwrap_or(""),
                    l.country.as_deref().unwrap_or(""),
                    l.status.as_str(),
                    l.source.as_deref().unwrap_or(""),
                    &l.tags.join(";"),
                    super::owner_email(&owners, l.owner_id.as_deref()),
                ],
                &[
                    &l.score.to_string(),
                    &l.last_activity_at
                        .map(|t| format_ms(t.0))
                        .unwrap_or_default(),
                    &format_ms(l.created_at.0),
                    &format_ms(l.updated_at.0),
                ],
            )
        },
    )?;
    sink.finish()
}
