//! Pagination and sorting shared by every list (docs/api.md §4).

use super::error::{DomainError, DomainResult, Issues};
use crate::clock::Millis;
use crate::db::CachedRow;
use rusqlite::{params, Connection, OptionalExtension, Row};

/// Largest page a client may ask for.
pub const MAX_PER_PAGE: i64 = 100;
/// Page size when the client does not say.
pub const DEFAULT_PER_PAGE: i64 = 25;

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page, 1..=100.
    pub per_page: i64,
}

impl Paging {
    /// Checks `page` (≥ 1) and `per_page` (1..=100), filling in the defaults.
    pub fn new(page: Option<i64>, per_page: Option<i64>) -> DomainResult<Self> {
        let mut issues = Issues::new();
        let page = page.unwrap_or(1);
        let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
        if page < 1 {
            issues.add("page", "must be at least 1");
        }
        if per_page < 1 {
            issues.add("per_page", "must be at least 1");
        } else if per_page > MAX_PER_PAGE {
            issues.add("per_page", format!("must be at most {MAX_PER_PAGE}"));
        }
        issues.finish()?;
        Ok(Self { page, per_page })
    }

    /// SQL `LIMIT` value.
    pub fn limit(&self) -> i64 {
        self.per_page
    }

    /// SQL `OFFSET` value (saturating, so absurd page numbers just return nothing).
    pub fn offset(&self) -> i64 {
        (self.page - 1).saturating_mul(self.per_page)
    }
}

/// One page of a list and the total number of rows that match.
#[derive(Debug, Clone)]
pub struct ListPage<T> {
    /// The rows of this page.
    pub items: Vec<T>,
    /// The page that was asked for.
    pub paging: Paging,
    /// How many rows match the filters in all.
    pub total: i64,
}

/// A validated `sort` parameter: a column from the list's allow-list and a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The SQL column (from the allow-list, never from the client).
    pub column: &'static str,
    /// `true` for `-field`.
    pub descending: bool,
    /// Order by the column's value, not by an index on it (`ORDER BY +column`): for a list
    /// filtered down to a few rows (one lead's deals), so SQLite finds them by the filter's
    /// index and sorts them, rather than walking the organization's whole index in order
    /// hoping to meet them (it has no statistics to know better).
    pub plain: bool,
}

impl Sort {
    /// Parses `field` or `-field` against `allowed` (API name → SQL column); the default is
    /// `-created_at`. Unknown fields are a 422 that lists the allowed ones.
    pub fn parse(sort: Option<&str>, allowed: &[(&str, &'static str)]) -> DomainResult<Self> {
        let raw = sort.unwrap_or("-created_at");
        let (descending, name) = match raw.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, raw),
        };
        match allowed.iter().find(|(api, _)| *api == name) {
            Some((_, column)) => Ok(Self {
                column,
                descending,
                plain: false,
            }),
            None => {
                let names: Vec<&str> = allowed.iter().map(|(api, _)| *api).collect();
                Err(super::DomainError::invalid(
                    "sort",
                    format!(
                        "must be one of {} (prefix - for descending)",
                        names.join(", ")
                    ),
                ))
            }
        }
    }

    /// The `ORDER BY` clause, with the id as a tie-breaker so pages never overlap.
    pub fn order_by(&self, id_column: &str) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        let plus = if self.plain { "+" } else { "" };
        format!(
            "ORDER BY {plus}{} {dir}, {plus}{id_column} {dir}",
            self.column
        )
    }
}

/// Splits a comma-separated "any of" filter value (`status=new,contacted`), dropping blanks.
pub fn any_of(value: Option<&str>) -> Vec<String> {
    value
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_bounds() {
        assert_eq!(Paging::new(None, None).unwrap().per_page, 25);
        assert!(Paging::new(Some(0), None).is_err());
        assert!(Paging::new(None, Some(101)).is_err());
        assert_eq!(Paging::new(Some(3), Some(10)).unwrap().offset(), 20);
    }

    #[test]
    fn sort_allow_list() {
        let allowed = [("created_at", "created_at"), ("name", "name")];
        let s = Sort::parse(Some("-name"), &allowed).unwrap();
        assert_eq!((s.column, s.descending), ("name", true));
        assert!(Sort::parse(Some("password_hash"), &allowed).is_err());
        assert!(Sort::parse(None, &allowed).unwrap().descending);
    }
}

/// What a list reads: its columns, its table (or join) and the id column that breaks ties.
#[derive(Debug, Clone, Copy)]
pub struct ListSource {
    /// The selected columns, in the order the row mapper reads them.
    pub columns: &'static str,
    /// The table or join.
    pub from: &'static str,
    /// The unique id column, the sort's tie-breaker.
    pub id: &'static str,
    /// What the total counts instead of `from`, when that is the same rows for less work: a
    /// join along a required foreign key neither drops nor repeats a row, so counting can skip
    /// it unless a filter reads the joined table (then the caller leaves this unset).
    pub count_from: Option<&'static str>,
}

/// Where a resource's rows live, for reading one by id.
pub struct Record {
    /// The table, or a join (then `alias` names the resource's own table in it).
    pub from: &'static str,
    /// `""`, or the resource table's alias in a join with the dot (`"d."`).
    pub alias: &'static str,
    /// The selected columns, in the order the row mapper reads them.
    pub columns: &'static str,
    /// The prefix of the resource's ids (`task`, `usr`, ...).
    pub prefix: &'static str,
    /// What the resource is called in a 404 (`task`, `API key`, ...).
    pub noun: &'static str,
}

impl Record {
    /// The rows of table `from` with `columns`, ids starting `prefix`, called `noun` in a 404.
    pub const fn new(
        from: &'static str,
        columns: &'static str,
        prefix: &'static str,
        noun: &'static str,
    ) -> Self {
        Self {
            from,
            alias: "",
            columns,
            prefix,
            noun,
        }
    }

    /// The same from a join, where `alias` (`"d."`) names the resource's own table.
    pub const fn aliased(self, alias: &'static str) -> Self {
        Self { alias, ..self }
    }

    /// Row `id` of `org_id`, if there is one. An id not of the resource's shape names nothing,
    /// like an id of another organization, and costs no query.
    pub fn find<T>(
        &self,
        conn: &Connection,
        org_id: &str,
        id: &str,
        from_row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> DomainResult<Option<T>> {
        if !crate::ids::is_valid(id, self.prefix) {
            return Ok(None);
        }
        let Self {
            from,
            alias,
            columns,
            ..
        } = self;
        Ok(conn
            .cached_row(
                &format!(
                    "SELECT {columns} FROM {from} WHERE {alias}org_id = ?1 AND {alias}id = ?2"
                ),
                params![org_id, id],
                from_row,
            )
            .optional()?)
    }

    /// [`Record::find`], or a 404 naming the resource.
    pub fn get<T>(
        &self,
        conn: &Connection,
        org_id: &str,
        id: &str,
        from_row: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
    ) -> DomainResult<T> {
        self.find(conn, org_id, id, from_row)?
            .ok_or(DomainError::NotFound(self.noun))
    }
}

/// The `WHERE` clause of a list query, built from validated filters with bound parameters.
///
/// Every list starts from the caller's organization, so a filter can never widen a query to
/// another organization's rows.
#[derive(Debug)]
pub struct Filters {
    clauses: Vec<String>,
    params: Vec<rusqlite::types::Value>,
}

impl Filters {
    /// Adds the time-window filters every list shares (`created_after`, `created_before`,
    /// `updated_since`) on the table `alias` names (`"d."`, or `""` for the only one).
    pub fn time_window(
        &mut self,
        alias: &str,
        created_after: Option<Millis>,
        created_before: Option<Millis>,
        updated_since: Option<Millis>,
    ) {
        if let Some(t) = created_after {
            self.push(format!("{alias}created_at >= ?"), vec![t.into()]);
        }
        if let Some(t) = created_before {
            self.push(format!("{alias}created_at < ?"), vec![t.into()]);
        }
        if let Some(t) = updated_since {
            self.push(format!("{alias}updated_at >= ?"), vec![t.into()]);
        }
    }

    /// Rows of `org_id`, with the organization column named `org_column`.
    pub fn for_org(org_column: &str, org_id: &str) -> Self {
        Self {
            clauses: vec![format!("{org_column} = ?")],
            params: vec![org_id.to_string().into()],
        }
    }

    /// Adds `clause` (with `?` placeholders) and its parameters.
    pub fn push(&mut self, clause: impl Into<String>, params: Vec<rusqlite::types::Value>) {
        self.clauses.push(clause.into());
        self.params.extend(params);
    }

    /// Rows on a deal or a lead (their `deal_id`, `lead_id`) that user `owner_id` owns.
    pub fn owned_by(&mut self, org_id: &str, owner_id: &str) {
        self.push(
            "(deal_id IN (SELECT id FROM deals WHERE org_id = ? AND owner_id = ?)
              OR lead_id IN (SELECT id FROM leads WHERE org_id = ? AND owner_id = ?))",
            [org_id, owner_id, org_id, owner_id]
                .map(|v| v.to_string().into())
                .to_vec(),
        );
    }

    /// Adds `column IN (...)` when `values` is not empty.
    pub fn any_of(&mut self, column: &str, values: &[String]) {
        if values.is_empty() {
            return;
        }
        let marks = vec!["?"; values.len()].join(", ");
        self.push(
            format!("{column} IN ({marks})"),
            values.iter().map(|v| v.clone().into()).collect(),
        );
    }

    /// Runs the query over every matching row (no paging) and hands each to `each`, for
    /// streaming exports that must not hold the whole result in memory.
    #[allow(clippy::too_many_arguments)]
    pub fn for_each<T>(
        &self,
        conn: &rusqlite::Connection,
        columns: &str,
        from: &str,
        sort: Sort,
        id_column: &str,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
        mut each: impl FnMut(T) -> DomainResult<()>,
    ) -> DomainResult<()> {
        let sql = format!(
            "SELECT {columns} FROM {from} WHERE {} {}",
            self.clauses.join(" AND "),
            sort.order_by(id_column)
        );
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(self.params.iter()), map)?;
        for row in rows {
            each(row?)?;
        }
        Ok(())
    }

    /// Runs the count and the page query over `source` and maps each row.
    pub fn fetch_page<T>(
        &self,
        conn: &rusqlite::Connection,
        source: &ListSource,
        sort: Sort,
        paging: Paging,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> DomainResult<ListPage<T>> {
        let ListSource {
            columns: select,
            from,
            id: id_column,
            count_from,
        } = source;
        let where_sql = self.clauses.join(" AND ");
        let total = crate::db::totals::count(
            conn,
            &format!(
                "SELECT COUNT(*) FROM {} WHERE {where_sql}",
                count_from.unwrap_or(from)
            ),
            &self.params,
        )?;
        // LIMIT and OFFSET are bound like the filters, so every page of a list is one cached
        // statement.
        let sql = format!(
            "SELECT {select} FROM {from} WHERE {where_sql} {} LIMIT ? OFFSET ?",
            sort.order_by(id_column)
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let page = [paging.limit().into(), paging.offset().into()];
        let items = stmt
            .query_map(
                rusqlite::params_from_iter(self.params.iter().chain(page.iter())),
                map,
            )?
            .collect::<rusqlite::Result<Vec<T>>>()?;
        Ok(ListPage {
            items,
            paging,
            total,
        })
    }
}
