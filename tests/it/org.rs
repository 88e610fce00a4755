//! The organization's settings.

use crate::common::TestServer;
use serde_json::json;

#[test]
fn a_new_organization_has_defaults_and_a_default_pipeline() {
    let s = TestServer::start();
    let org = s.get("/org", &s.admin_key);
    assert_eq!(org.header("etag"), Some("\"1\""));
    let org = org.data(200);
    assert_eq!(org["currency"], "USD");
    assert_eq!(org["timezone"], "UTC");
    assert_eq!(org["version"], 1);
    assert_eq!(org["created_at"], "2026-11-28T12:00:00Z");
    let stages: Vec<String> = {
        s.state
            .db
            .blocking()
            .read(|c| {
                let mut st = c.prepare("SELECT name FROM stages ORDER BY position")?;
                let names = st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok(names)
            })
            .unwrap()
    };
    assert_eq!(
        stages,
        [
            "Lead In",
            "Qualified",
            "Demo Scheduled",
            "Proposal Sent",
            "Negotiation",
            "Closed Won",
            "Closed Lost"
        ]
    );
    assert_eq!(
        s.count("SELECT COUNT(*) FROM pipelines WHERE is_default = 1"),
        1
    );
}

#[test]
fn patch_changes_only_what_is_sent_and_money_is_exact() {
    let s = TestServer::start();
    let org = s
        .patch(
            "/org",
            &s.admin_key,
            json!({"currency": "EUR", "monthly_revenue_target": 12500.5, "timezone": "Europe/Berlin",
                   "icp": {"industries": ["SaaS"], "titles": ["VP Sales"], "company_size_min": 50}}),
        )
        .data(200);
    assert_eq!(org["currency"], "EUR");
    assert_eq!(org["monthly_revenue_target"], 12500.5);
    assert_eq!(org["name"], "My Organization");
    assert_eq!(org["icp"]["industries"], json!(["SaaS"]));
    assert_eq!(org["version"], 2);
    assert_eq!(
        s.count("SELECT monthly_revenue_target FROM organizations"),
        1_250_050
    );
    let cleared = s
        .patch(
            "/org",
            &s.admin_key,
            json!({"monthly_revenue_target": null}),
        )
        .data(200);
    assert!(cleared["monthly_revenue_target"].is_null());
    assert_eq!(cleared["currency"], "EUR");
}

#[test]
fn invalid_settings_are_422_and_change_nothing() {
    let s = TestServer::start();
    let e = s
        .patch(
            "/org",
            &s.admin_key,
            json!({"currency": "XYZ", "timezone": "somewhere", "fiscal_year_start_month": 13,
                   "monthly_revenue_target": 10.001}),
        )
        .error(422, "validation_error");
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"fiscal_year_start_month"), "{fields:?}");
    let e = s
        .patch(
            "/org",
            &s.admin_key,
            json!({"currency": "XYZ", "timezone": "somewhere", "monthly_revenue_target": 10.001}),
        )
        .error(422, "validation_error");
    let fields: Vec<&str> = e["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    // The currency breaks the schema (its enum), so it is reported before the rules the
    // server checks after parsing.
    assert_eq!(fields, ["currency"]);
    let e = s
        .patch("/org", &s.admin_key, json!({"timezone": "somewhere"}))
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "timezone");
    s.patch("/org", &s.admin_key, json!({"icp": {"sectors": []}}))
        .error(422, "validation_error");
    assert_eq!(s.get("/org", &s.admin_key).data(200)["version"], 1);
}
