//! The template language: Jinja (minijinja) over four objects, `lead`, `company`, `owner` and
//! `deal`, whose fields are those of the API's own objects.
//!
//! Two rules make a template safe to send unattended. A template is checked when it is saved:
//! it must parse, and every variable it names must be a field of one of the four objects, so a
//! typo (`{{ lead.frist_name }}`) is refused then, not discovered in a customer's inbox. And a
//! value is rendered only when it is there: an empty field is left out of the context, so
//! `{{ lead.first_name }}` on a lead without a first name is an error naming the field, while
//! `{{ lead.first_name | default("there") }}` falls back. HTML bodies are escaped by default.

use std::collections::BTreeSet;

use minijinja::value::Serde;
use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use poem_openapi::registry::Registry;
use poem_openapi::types::Type;
use serde_json::{Map, Value};

use crate::domain::companies::Company;
use crate::domain::deals::Deal;
use crate::domain::leads::Lead;

/// The parts of a template, as its fields are named in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `subject`: one line, not escaped.
    Subject,
    /// `html_body`: HTML, every value escaped unless marked `| safe`.
    Html,
    /// `text_body`: plain text, not escaped.
    Text,
}

impl Part {
    /// The field that holds the part.
    pub fn field(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Html => "html_body",
            Part::Text => "text_body",
        }
    }

    fn escape(self) -> AutoEscape {
        match self {
            Part::Html => AutoEscape::Html,
            Part::Subject | Part::Text => AutoEscape::None,
        }
    }
}

/// The objects a template reads.
const OBJECTS: [&str; 4] = ["lead", "company", "owner", "deal"];

/// The fields of `owner`: a user's public face, not their account.
const OWNER_FIELDS: &[&str] = &["id", "name", "first_name", "email"];

/// The objects a template can read and their fields, from the API's schemas (so the document
/// describes every variable).
pub fn variables() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (OBJECTS[0], fields_of::<Lead>()),
        (OBJECTS[1], fields_of::<Company>()),
        (
            "owner",
            OWNER_FIELDS.iter().map(|f| f.to_string()).collect(),
        ),
        (OBJECTS[3], fields_of::<Deal>()),
    ]
}

fn fields_of<T: Type>() -> Vec<String> {
    let mut registry = Registry::new();
    T::register(&mut registry);
    registry
        .schemas
        .get(T::name().as_ref())
        .map(|schema| {
            schema
                .properties
                .iter()
                .map(|(name, _)| name.to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn environment(part: Part) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode tracks where an undefined value came from, so an error can name it
    // (`lead.phone` is undefined); only the error's detail reaches the API's message.
    env.set_debug(true);
    env.set_auto_escape_callback(move |_| part.escape());
    env
}

/// A template part that cannot be used, in words for the field's issue.
pub fn check(part: Part, source: &str) -> Result<BTreeSet<String>, String> {
    let env = environment(part);
    let template = env.template_from_str(source).map_err(|e| describe(&e))?;
    let used = template.undeclared_variables(true);
    let known = variables();
    let mut unknown = Vec::new();
    for name in &used {
        let mut path = name.split('.');
        let object = path.next().unwrap_or_default();
        let field = path.next();
        let ok = known
            .iter()
            .any(|(o, fields)| *o == object && field.is_none_or(|f| fields.iter().any(|k| k == f)));
        if !ok {
            unknown.push(format!("`{name}`"));
        }
    }
    if unknown.is_empty() {
        return Ok(used.into_iter().collect());
    }
    unknown.sort();
    let verdict = if unknown.len() == 1 {
        "is not a variable"
    } else {
        "are not variables"
    };
    Err(format!(
        "uses {}, which {verdict}: a template reads the fields of lead, company, owner ({}) \
         and deal, as the API returns them",
        unknown.join(", "),
        OWNER_FIELDS.join(", ")
    ))
}

/// What a template is rendered for: the objects, each present or not.
#[derive(Debug, Default)]
pub struct Context {
    /// The lead.
    pub lead: Option<Lead>,
    /// The lead's (or the deal's) company.
    pub company: Option<Company>,
    /// The owner: `(id, name, email)`.
    pub owner: Option<(String, String, String)>,
    /// The deal.
    pub deal: Option<Deal>,
}

impl Context {
    fn values(&self) -> Value {
        let object = |value: Option<Value>| match value {
            // An empty field is no value: left out, it is undefined, so a template either
            // gives a fallback or fails naming it, and never writes "Hi ,".
            Some(Value::Object(fields)) => Value::Object(
                fields
                    .into_iter()
                    .filter(|(_, v)| !v.is_null() && v != "")
                    .collect(),
            ),
            // An absent object is an empty one, so `{{ deal.title | default("…") }}` works
            // without a deal.
            _ => Value::Object(Map::new()),
        };
        let owner = self.owner.as_ref().map(|(id, name, email)| {
            let first = name.split_whitespace().next().unwrap_or_default();
            serde_json::json!({"id": id, "name": name, "first_name": first, "email": email})
        });
        serde_json::json!({
            "lead": object(self.lead.as_ref().and_then(|l| serde_json::to_value(l).ok())),
            "company": object(self.company.as_ref().and_then(|c| serde_json::to_value(c).ok())),
            "owner": object(owner),
            "deal": object(self.deal.as_ref().and_then(|d| serde_json::to_value(d).ok())),
        })
    }

    /// Whether the email has the object `name`.
    fn has(&self, name: &str) -> bool {
        match name {
            "lead" => self.lead.is_some(),
            "company" => self.company.is_some(),
            "owner" => self.owner.is_some(),
            _ => self.deal.is_some(),
        }
    }
}

/// Renders a part for `context`, or says in words why it cannot be.
pub fn render(part: Part, source: &str, context: &Context) -> Result<String, String> {
    let env = environment(part);
    let template = env.template_from_str(source).map_err(|e| describe(&e))?;
    template
        .render(minijinja::Value::from(Serde(context.values())))
        .map_err(|e| {
            if e.kind() == minijinja::ErrorKind::UndefinedError {
                let line = e.line().map(|l| format!(" (line {l})")).unwrap_or_default();
                let what = e.detail().unwrap_or("a value is undefined");
                // The detail names the expression: "`deal.title` is undefined".
                let expr = what.split('`').nth(1).unwrap_or_default();
                let object = expr.split('.').next().unwrap_or_default();
                if OBJECTS.contains(&object) && !context.has(object) {
                    format!(
                        "cannot be rendered{line}: it reads `{expr}`, and this email has no \
                         {object}; give it a fallback, such as `| default(\"…\")`"
                    )
                } else {
                    format!(
                        "cannot be rendered{line}: {what} here; give it a fallback, such as \
                         `| default(\"…\")`, or fill it in"
                    )
                }
            } else {
                describe(&e)
            }
        })
}

/// A plain-text version of rendered HTML, for the text part of a message whose template has
/// only HTML: the text of the elements, a line break after each block, links as
/// `label (url)`, the basic entities decoded; styles, scripts and the head dropped.
pub fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut href: Option<String> = None;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = &rest[open..];
            break;
        };
        let tag = rest[open + 1..open + close].trim().to_ascii_lowercase();
        rest = &rest[open + close + 1..];
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '/')
            .next()
            .unwrap_or_default();
        match name {
            // Skip to the end of what is no text.
            "style" | "script" | "head" if !tag.starts_with('/') => {
                let end = format!("</{name}");
                let lower = rest.to_ascii_lowercase();
                rest = lower.find(&end).map_or("", |at| &rest[at..]);
            }
            "a" if !tag.starts_with('/') => {
                href = tag.split("href=").nth(1).map(|v| {
                    v.trim_matches(|c| c == '"' || c == '\'')
                        .split(['"', '\''])
                        .next()
                        .unwrap_or(v)
                        .to_string()
                });
            }
            "a" => {
                if let Some(url) = href.take() {
                    out.push_str(&format!(" ({url})"));
                }
            }
            "br" | "p" | "div" | "li" | "tr" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                out.push('\n')
            }
            _ => {}
        }
    }
    out.push_str(rest);
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let lines: Vec<&str> = decoded.lines().map(str::trim).collect();
    let mut text = String::new();
    for line in lines {
        if !line.is_empty() {
            text.push_str(line);
            text.push('\n');
        } else if !text.ends_with("\n\n") && !text.is_empty() {
            text.push('\n');
        }
    }
    text.trim_end().to_string()
}

fn describe(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    match e.line() {
        Some(line) => format!("is not a valid template (line {line}): {what}"),
        None => format!("is not a valid template: {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::leads::LeadStatus;
    use crate::domain::nullable::Nullable;
    use crate::timefmt::Timestamp;

    #[test]
    fn a_template_naming_an_unknown_field_or_object_is_refused_naming_it() {
        let e = check(Part::Text, "Hi {{ lead.frist_name }} at {{ company.name }}").unwrap_err();
        assert!(e.starts_with("uses `lead.frist_name`, which is not"), "{e}");
        let e = check(Part::Text, "{{ user.name }} {{ deal.shoe }}").unwrap_err();
        assert!(
            e.starts_with("uses `deal.shoe`, `user.name`, which are not variables"),
            "{e}"
        );
        let used = check(
            Part::Html,
            "{{ lead.first_name | default('there') }} {{ owner.first_name }} {{ deal.value }}",
        )
        .unwrap();
        assert_eq!(
            used.into_iter().collect::<Vec<_>>(),
            ["deal.value", "lead.first_name", "owner.first_name"]
        );
        let e = check(Part::Subject, "{{ lead.email ").unwrap_err();
        assert!(e.starts_with("is not a valid template (line 1): "), "{e}");
    }

    #[test]
    fn html_becomes_readable_text() {
        let html = "<html><head><title>x</title><style>p{color:red}</style></head><body>\
                    <h1>Hi Ada</h1><p>Our <b>pricing</b> &amp; terms:<br>see \
                    <a href=\"https://acme.test/p\">the page</a>.</p><p></p><p>Grace</p></body></html>";
        assert_eq!(
            text_of(html),
            "Hi Ada\n\nOur pricing & terms:\nsee the page (https://acme.test/p).\n\nGrace"
        );
    }

    #[test]
    fn html_is_escaped_text_is_not_and_an_empty_field_needs_a_fallback() {
        let none = || Nullable(None);
        let lead = Lead {
            id: "lead_1".into(),
            first_name: Nullable(Some("Ada".into())),
            last_name: none(),
            email: Nullable(Some("ada@example.com".into())),
            phone: Nullable(Some(String::new())),
            title: none(),
            company_id: none(),
            company_name: Nullable(Some("Ada & Co <Ltd>".into())),
            country: none(),
            status: LeadStatus::New,
            source: none(),
            tags: vec![],
            owner_id: none(),
            last_activity_at: Nullable(None),
            score: 0,
            converted_deal_id: none(),
            converted_at: Nullable(None),
            version: 1,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        let context = Context {
            lead: Some(lead),
            owner: Some(("usr_1".into(), "Grace Hopper".into(), "grace@x.test".into())),
            ..Context::default()
        };
        let source = "<p>{{ lead.company_name }} / {{ owner.first_name }}</p>";
        assert_eq!(
            render(Part::Html, source, &context).unwrap(),
            "<p>Ada &amp; Co &lt;Ltd&gt; / Grace</p>"
        );
        assert_eq!(
            render(Part::Text, source, &context).unwrap(),
            "<p>Ada & Co <Ltd> / Grace</p>"
        );
        let e = render(Part::Text, "Hi {{ lead.phone }}", &context).unwrap_err();
        assert!(e.contains("`lead.phone` is undefined"), "{e}");
        assert_eq!(
            render(
                Part::Text,
                "Hi {{ lead.phone | default('there') }}",
                &context
            )
            .unwrap(),
            "Hi there"
        );
        let e = render(Part::Text, "{{ deal.title }}", &context).unwrap_err();
        assert!(
            e.starts_with(
                "cannot be rendered (line 1): it reads `deal.title`, and this email has no deal"
            ),
            "{e}"
        );
        assert_eq!(
            render(
                Part::Text,
                "{{ deal.title | default('our call') }}",
                &context
            )
            .unwrap(),
            "our call"
        );
    }
}
