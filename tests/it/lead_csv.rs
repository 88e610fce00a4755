//! Leads in and out as CSV, as spreadsheets write them.

use crate::common;
use crate::common::TestServer;
use serde_json::json;

fn import(s: &TestServer, key: &str, csv: &str, query: &str) -> common::Resp {
    s.call(
        "POST",
        &format!("/leads/import{query}"),
        Some(key),
        Some(csv.as_bytes()),
        &[("content-type", "text/csv")],
    )
}

/// Seven data rows; row 7 has a bad email, row 5 repeats row 1's email (in another case), and
/// rows hold quoted commas, a quoted line break, quotes inside quotes and non-ASCII text.
const SPREADSHEET: &str =
    "\u{feff}First Name,Last Name,Email,Company,Title,Tags,Favourite Colour\r\n\
Ada,Lovelace,ada@example.com,\"Analytical Engines, Ltd.\",Countess,vip;math,blue\r\n\
Grace,Hopper,grace@example.com,Navy,\"Rear Admiral\nRetired\",,green\r\n\
Zoë,Ünal,zoe@example.com,\"Ünal \"\"Big\"\" Co\",CTO,,red\r\n\
Alan,Turing,alan@example.com,Bletchley,,,\r\n\
Ada,Again,ADA@example.com,Dup Inc,,,\r\n\
Katherine,Johnson,katherine@example.com,NASA,,,\r\n\
Bad,Email,not-an-email,Nowhere,,,\r\n";

#[test]
fn a_spreadsheet_export_imports_every_good_row_and_reports_the_rest() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let r = import(&s, &k, SPREADSHEET, "");
    let out = r.data(200);
    assert_eq!(out["created"], 5, "{out}");
    assert_eq!(out["skipped"], 1);
    assert_eq!(out["updated"], 0);
    assert_eq!(out["unknown_columns"], json!(["favourite_colour"]));
    let errors = out["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{out}");
    assert_eq!(errors[0]["row"], 7);
    assert_eq!(
        errors[0]["line"], 9,
        "the header is line 1 and row 2 spans two lines"
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains("email"),
        "{out}"
    );
    let dups = out["duplicates"].as_array().unwrap();
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0]["row"], 5);
    let ada = s.get("/leads?q=lovelace", &k).data(200)[0].clone();
    assert_eq!(dups[0]["lead_id"], ada["id"]);
    assert_eq!(ada["company_name"], "Analytical Engines, Ltd.");
    assert_eq!(ada["tags"], json!(["vip", "math"]));
    assert_eq!(ada["source"], "import");
    let grace = s.get("/leads?q=grace", &k).data(200)[0].clone();
    assert_eq!(grace["title"], "Rear Admiral\nRetired");
    let zoe = s.get("/leads?q=zoe%40example.com", &k).data(200)[0].clone();
    assert_eq!(
        (zoe["first_name"].as_str(), zoe["company_name"].as_str()),
        (Some("Zoë"), Some("Ünal \"Big\" Co"))
    );
    assert_eq!(s.count("SELECT COUNT(*) FROM leads"), 5);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM events WHERE type = 'lead.created'"),
        5
    );
}

#[test]
fn on_duplicate_update_fills_the_existing_lead() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    s.post(
        "/leads",
        &k,
        json!({"email": "ada@example.com", "first_name": "Ada"}),
    )
    .data(201);
    let out = import(
        &s,
        &k,
        "email,title,phone\nada@example.com,Countess,+44 1\n",
        "?on_duplicate=update",
    )
    .data(200);
    assert_eq!(
        (out["created"].as_i64(), out["updated"].as_i64()),
        (Some(0), Some(1))
    );
    let ada = s.get("/leads", &k).data(200)[0].clone();
    assert_eq!(
        (
            ada["first_name"].as_str(),
            ada["title"].as_str(),
            ada["phone"].as_str()
        ),
        (Some("Ada"), Some("Countess"), Some("+44 1"))
    );
    import(&s, &k, "email\nx@example.com\n", "?on_duplicate=merge").error(422, "validation_error");
}

#[test]
fn unusable_files_are_rejected_whole() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    import(&s, &k, "colour,size\nred,3\n", "").error(422, "validation_error");
    import(&s, &k, "", "").error(422, "validation_error");
    let r = s.call(
        "POST",
        "/leads/import",
        Some(&k),
        Some(b"email\nx@example.com\n"),
        &[("content-type", "application/json")],
    );
    r.error(415, "unsupported_media_type");
    let reader = s.key_with(&["read"]);
    import(&s, &reader, "email\nx@example.com\n", "").error(403, "forbidden");
    assert_eq!(s.count("SELECT COUNT(*) FROM leads"), 0);
    // A ragged row is reported, the rest imported.
    let out = import(
        &s,
        &k,
        "email,first_name\na@example.com,A\nb@example.com,B,extra\n",
        "",
    )
    .data(200);
    assert_eq!(out["created"], 1);
    assert_eq!(out["errors"][0]["row"], 2);
}

#[test]
fn export_streams_the_filtered_leads_and_round_trips() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    import(&s, &k, SPREADSHEET, "").data(200);
    s.patch(
        &format!(
            "/leads/{}",
            s.get("/leads?q=alan", &k).data(200)[0]["id"]
                .as_str()
                .unwrap()
        ),
        &k,
        json!({"status": "qualified"}),
    )
    .data(200);
    let r = s.call("GET", "/leads/export?sort=email", Some(&k), None, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
    assert!(r
        .header("content-disposition")
        .unwrap()
        .contains("leads.csv"));
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(headers[..4], ["id", "first_name", "last_name", "email"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5);
    let emails: Vec<&str> = rows.iter().map(|r| r.get(3).unwrap()).collect();
    assert_eq!(
        emails,
        [
            "ada@example.com",
            "alan@example.com",
            "grace@example.com",
            "katherine@example.com",
            "zoe@example.com"
        ]
    );
    let grace = rows
        .iter()
        .find(|r| r.get(3) == Some("grace@example.com"))
        .unwrap();
    assert_eq!(grace.get(5), Some("Rear Admiral\nRetired"));

    let qualified = s.call(
        "GET",
        "/leads/export?status=qualified&bom=true",
        Some(&k),
        None,
        &[],
    );
    assert!(qualified.body.starts_with('\u{feff}'));
    assert_eq!(qualified.body.lines().count(), 2, "{}", qualified.body);
    s.call("GET", "/leads/export?status=nope", Some(&k), None, &[])
        .error(422, "validation_error");

    // What was exported imports again into another organization unchanged.
    let b = s.second_org();
    let out = import(&s, &b, &r.body, "").data(200);
    assert_eq!(out["created"], 5, "{out}");
    assert_eq!(
        out["unknown_columns"],
        json!([
            "id",
            "company_id",
            "last_activity_at",
            "created_at",
            "updated_at"
        ])
    );
}
