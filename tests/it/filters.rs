//! Filters, sorts and pagination (docs/api.md §4) return exactly the right rows.

use crate::common::{TestServer, START_MS};
use serde_json::{json, Value};

const DAY: i64 = 86_400_000;

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_string())
        .collect()
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x[field].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn leads_filter_by_status_owner_tag_time_and_text() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let rep = s
        .post(
            "/users",
            &k,
            json!({"email": "rep@example.com", "name": "Rep"}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut created = Vec::new();
    for (i, (name, status, tag, source)) in [
        ("Anna", "new", "hot", "web"),
        ("Bert", "contacted", "cold", "referral"),
        ("Cleo", "qualified", "hot", "web"),
        ("Dirk", "lost", "hot", "event"),
        ("Emma", "new", "cold", "web"),
    ]
    .iter()
    .enumerate()
    {
        s.clock.set(START_MS + i as i64 * DAY);
        let owner = if i % 2 == 0 {
            Value::String(rep.clone())
        } else {
            Value::Null
        };
        let lead = s
            .post("/leads", &k, json!({"first_name": name, "email": format!("{}@example.com", name.to_lowercase()),
                                        "status": status, "tags": [tag], "source": source, "owner_id": owner}))
            .data(201);
        created.push(lead["id"].as_str().unwrap().to_string());
    }
    let get = |q: &str| s.get(&format!("/leads?{q}"), &k).json();

    let page = get("status=new,qualified&sort=first_name");
    assert_eq!(names(&page["data"], "first_name"), ["Anna", "Cleo", "Emma"]);
    assert_eq!(page["meta"], json!({"page": 1, "per_page": 25, "total": 3}));
    assert_eq!(
        names(&get("tag=HOT&sort=-first_name")["data"], "first_name"),
        ["Dirk", "Cleo", "Anna"]
    );
    assert_eq!(
        names(
            &get(&format!("owner_id={rep}&sort=first_name"))["data"],
            "first_name"
        ),
        ["Anna", "Cleo", "Emma"]
    );
    assert_eq!(
        names(
            &get("source=web&status=new&sort=first_name")["data"],
            "first_name"
        ),
        ["Anna", "Emma"]
    );
    // Default sort: newest first.
    assert_eq!(
        ids(&get("")["data"]),
        created.iter().rev().cloned().collect::<Vec<_>>()
    );
    let t1 = clozup::timefmt::format_ms(START_MS + DAY);
    let t3 = clozup::timefmt::format_ms(START_MS + 3 * DAY);
    assert_eq!(
        names(
            &get(&format!(
                "created_after={t1}&created_before={t3}&sort=created_at"
            ))["data"],
            "first_name"
        ),
        ["Bert", "Cleo"]
    );
    assert_eq!(names(&get("q=cle")["data"], "first_name"), ["Cleo"]);
    // Paging walks every row once.
    let p1 = get("per_page=2&page=1&sort=first_name");
    let p3 = get("per_page=2&page=3&sort=first_name");
    assert_eq!(names(&p1["data"], "first_name"), ["Anna", "Bert"]);
    assert_eq!(names(&p3["data"], "first_name"), ["Emma"]);
    assert_eq!(get("per_page=2&page=9")["data"], json!([]));
    // updated_since sees a change made later.
    s.clock.set(START_MS + 10 * DAY);
    s.patch(
        &format!("/leads/{}", created[1]),
        &k,
        json!({"title": "CEO"}),
    )
    .data(200);
    let since = clozup::timefmt::format_ms(START_MS + 9 * DAY);
    assert_eq!(
        ids(&get(&format!("updated_since={since}"))["data"]),
        [created[1].clone()]
    );
    s.get("/leads?status=sleeping", &k)
        .error(422, "validation_error");
    s.get("/leads?sort=-password", &k)
        .error(422, "validation_error");
    s.get("/leads?created_after=yesterday", &k)
        .error(400, "bad_request");
}

#[test]
fn deals_filter_by_stage_status_value_and_sort_by_value() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    for (title, value, stage) in [
        ("Small", 500.0, "Lead In"),
        ("Medium", 5_000.0, "Qualified"),
        ("Large", 50_000.0, "Negotiation"),
        ("Won", 20_000.0, "Closed Won"),
        ("Lost", 9_000.0, "Closed Lost"),
    ] {
        s.post("/deals", &k, json!({"title": title, "value": value, "stage": stage, "expected_close_date": "2026-12-15"})).data(201);
    }
    let get = |q: &str| s.get(&format!("/deals?{q}"), &k).json();
    assert_eq!(
        names(&get("status=open&sort=-value")["data"], "title"),
        ["Large", "Medium", "Small"]
    );
    assert_eq!(
        names(
            &get("value_min=5000&value_max=20000&sort=value")["data"],
            "title"
        ),
        ["Medium", "Lost", "Won"]
    );
    // Bounds finer than cents: 4999.995 still takes 5000.00, 20000.004 still takes 20000.00,
    // and 5000.001 no longer takes 5000.00.
    assert_eq!(
        names(
            &get("value_min=4999.995&value_max=20000.004&sort=value")["data"],
            "title"
        ),
        ["Medium", "Lost", "Won"]
    );
    assert_eq!(
        names(
            &get("value_min=5000.001&value_max=20000&sort=value")["data"],
            "title"
        ),
        ["Lost", "Won"]
    );
    assert_eq!(
        names(
            &get("stage=negotiation,closed%20won&sort=title")["data"],
            "title"
        ),
        ["Large", "Won"]
    );
    assert_eq!(
        names(&get("status=won,lost&sort=title")["data"], "title"),
        ["Lost", "Won"]
    );
    let stages = s.get("/deals/stages", &k).data(200);
    let qualified = stages[1]["id"].as_str().unwrap();
    assert_eq!(
        names(&get(&format!("stage_id={qualified}"))["data"], "title"),
        ["Medium"]
    );
    assert_eq!(get("expected_close_before=2026-12-15")["meta"]["total"], 0);
    assert_eq!(get("expected_close_after=2026-12-15")["meta"]["total"], 5);
    assert_eq!(names(&get("q=arg")["data"], "title"), ["Large"]);
    s.get("/deals?value_min=-1", &k)
        .error(422, "validation_error");
    s.get("/deals?status=pending", &k)
        .error(422, "validation_error");
    s.get("/deals?expected_close_after=15/12/2026", &k)
        .error(422, "validation_error");
}

#[test]
fn tasks_overdue_due_before_priority_sort_and_state_rules() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let at = |days: i64| clozup::timefmt::format_ms(START_MS + days * DAY);
    let mk = |title: &str, due: Option<String>, priority: &str| {
        s.post(
            "/tasks",
            &k,
            json!({"title": title, "due_at": due, "priority": priority}),
        )
        .data(201)["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let late = mk("late", Some(at(-2)), "low");
    let soon = mk("soon", Some(at(1)), "urgent");
    let undated = mk("undated", None, "medium");
    let done_late = mk("done late", Some(at(-5)), "high");
    s.post(&format!("/tasks/{done_late}/complete"), &k, json!({}))
        .data(200);

    let get = |q: &str| s.get(&format!("/tasks?{q}"), &k).json();
    assert_eq!(
        ids(&get("overdue=true")["data"]),
        std::slice::from_ref(&late)
    );
    assert!(get("overdue=true")["data"][0]["overdue"].as_bool().unwrap());
    assert_eq!(
        names(&get("sort=due_at&status=open")["data"], "title"),
        ["late", "soon", "undated"]
    );
    assert_eq!(
        names(&get("sort=-priority")["data"], "title"),
        ["soon", "done late", "undated", "late"]
    );
    assert_eq!(
        names(
            &get(&format!("due_before={}&sort=due_at", at(0)))["data"],
            "title"
        ),
        ["done late", "late"]
    );
    // The clock moves on: "soon" becomes overdue without anyone touching it.
    s.clock.advance(2 * DAY);
    assert_eq!(
        names(&get("overdue=true&sort=due_at")["data"], "title"),
        ["late", "soon"]
    );

    // Cancel, then completing is a conflict; reopen, then it completes.
    s.patch(
        &format!("/tasks/{undated}"),
        &k,
        json!({"status": "cancelled"}),
    )
    .data(200);
    s.post(&format!("/tasks/{undated}/complete"), &k, json!({}))
        .error(409, "conflict");
    s.post(&format!("/tasks/{undated}/reopen"), &k, json!({}))
        .data(200);
    let done = s
        .post(&format!("/tasks/{undated}/complete"), &k, json!({}))
        .data(200);
    assert_eq!(done["status"], "completed");
    assert!(done["completed_at"].is_string());
    let again = s
        .post(&format!("/tasks/{undated}/complete"), &k, json!({}))
        .data(200);
    assert_eq!(
        again["version"], done["version"],
        "completing twice changes nothing"
    );
    let _ = soon;
}

#[test]
fn activities_move_last_activity_forward_and_notes_need_a_home() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let lead = s
        .post("/leads", &k, json!({"email": "l@example.com"}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let deal = s
        .post("/deals", &k, json!({"title": "D", "lead_id": lead}))
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = clozup::timefmt::format_ms(START_MS - 3 * DAY);
    let a1 = s
        .post(
            "/activities",
            &k,
            json!({"type": "meeting", "deal_id": deal, "lead_id": lead}),
        )
        .data(201);
    s.post(
        "/activities",
        &k,
        json!({"type": "email", "deal_id": deal, "occurred_at": old}),
    )
    .data(201);
    assert_eq!(
        s.get(&format!("/deals/{deal}"), &k).data(200)["last_activity_at"],
        "2026-11-28T12:00:00Z"
    );
    assert_eq!(
        s.get(&format!("/leads/{lead}"), &k).data(200)["last_activity_at"],
        "2026-11-28T12:00:00Z"
    );
    s.delete(&format!("/activities/{}", a1["id"].as_str().unwrap()), &k)
        .data(200);
    assert_eq!(
        s.get(&format!("/deals/{deal}"), &k).data(200)["last_activity_at"],
        old.as_str()
    );
    assert!(s.get(&format!("/leads/{lead}"), &k).data(200)["last_activity_at"].is_null());

    let e = s
        .post(
            "/activities",
            &k,
            json!({"type": "email_sent", "deal_id": deal}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "type");
    s.post("/activities", &k, json!({"type": "call"}))
        .error(422, "validation_error");
    // A meeting scheduled for tomorrow is logged; the deal's last activity is still now.
    let future = clozup::timefmt::format_ms(START_MS + DAY);
    let before = s.get(&format!("/deals/{deal}"), &k).data(200)["last_activity_at"].clone();
    s.post(
        "/activities",
        &k,
        json!({"type": "meeting", "deal_id": deal, "occurred_at": future}),
    )
    .data(201);
    let after = s.get(&format!("/deals/{deal}"), &k).data(200)["last_activity_at"].clone();
    assert!(after.as_str() <= Some(clozup::timefmt::format_ms(s.clock_now()).as_str()));
    assert!(after.as_str() >= before.as_str());
    assert_eq!(
        s.get("/activities?type=email", &k).json()["meta"]["total"],
        1
    );

    // A body id that names nothing is a 422 naming the field (issue 21 point 8): the 404 is
    // for the path's resource.
    let e = s
        .post(
            "/notes",
            &k,
            json!({"content": "hi", "lead_id": "lead_01M8H6J8V5EZ2NYY830B06ZRR9"}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "lead_id");
    assert_eq!(
        e["message"],
        "lead_id names no lead of this organization: `lead_01M8H6J8V5EZ2NYY830B06ZRR9`"
    );
    let note = s
        .post("/notes", &k, json!({"content": "first", "lead_id": lead}))
        .data(201);
    let path = format!("/notes/{}", note["id"].as_str().unwrap());
    let stale = s.call(
        "PATCH",
        &path,
        Some(&k),
        Some(br#"{"content": "x"}"#),
        &[("if-match", "\"7\"")],
    );
    stale.error(412, "precondition_failed");
    assert_eq!(
        s.patch(&path, &k, json!({"content": "second"})).data(200)["content"],
        "second"
    );
    assert_eq!(
        s.get(&format!("/notes?lead_id={lead}&q=seco"), &k).json()["meta"]["total"],
        1
    );
}

#[test]
fn pipelines_reorder_stages_and_guard_deletions() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let p = s
        .post(
            "/pipelines",
            &k,
            json!({"name": "Partners", "stages": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}),
        )
        .data(201);
    let pid = p["id"].as_str().unwrap().to_string();
    let stage_names = |s: &TestServer| {
        names(
            &s.get(&format!("/pipelines/{pid}"), &k).data(200)["stages"],
            "name",
        )
    };
    let d = s
        .post(
            &format!("/pipelines/{pid}/stages"),
            &k,
            json!({"name": "Start", "position": 0}),
        )
        .data(201);
    assert_eq!(stage_names(&s), ["Start", "A", "B", "C"]);
    s.patch(
        &format!("/stages/{}", d["id"].as_str().unwrap()),
        &k,
        json!({"position": 9}),
    )
    .data(200);
    assert_eq!(stage_names(&s), ["A", "B", "C", "Start"]);
    s.post(
        &format!("/pipelines/{pid}/stages"),
        &k,
        json!({"name": "a"}),
    )
    .error(409, "conflict");
    let positions: Vec<i64> = s.get(&format!("/pipelines/{pid}"), &k).data(200)["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, [0, 1, 2, 3]);

    let b_stage = p["stages"][1]["id"].as_str().unwrap().to_string();
    let c_stage = p["stages"][2]["id"].as_str().unwrap().to_string();
    let deal = s
        .post("/deals", &k, json!({"title": "In B", "stage_id": b_stage}))
        .data(201);
    s.delete(&format!("/stages/{b_stage}"), &k)
        .error(409, "conflict");
    s.patch(&format!("/stages/{b_stage}"), &k, json!({"kind": "won"}))
        .error(409, "conflict");
    let default_stage = s.get("/deals/stages", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.call(
        "DELETE",
        &format!("/stages/{b_stage}?move_to={default_stage}"),
        Some(&k),
        None,
        &[],
    )
    .error(409, "conflict");
    s.delete(&format!("/pipelines/{pid}"), &k)
        .error(409, "conflict");
    s.call(
        "DELETE",
        &format!("/stages/{b_stage}?move_to={c_stage}"),
        Some(&k),
        None,
        &[],
    )
    .data(200);
    let moved = s
        .get(&format!("/deals/{}", deal["id"].as_str().unwrap()), &k)
        .data(200);
    assert_eq!(moved["stage_name"], "C");
    assert_eq!(stage_names(&s), ["A", "C", "Start"]);
    let history = s
        .get(
            &format!("/deals/{}/history", deal["id"].as_str().unwrap()),
            &k,
        )
        .data(200);
    assert_eq!(
        history[0]["to_stage_name"], "B",
        "history keeps a deleted stage's name"
    );
    assert!(history[0]["to_stage_id"].is_null());

    // Exactly one default pipeline, always.
    let default_id = s.get("/pipelines", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/pipelines/{default_id}"), &k)
        .error(409, "conflict");
    s.patch(
        &format!("/pipelines/{default_id}"),
        &k,
        json!({"is_default": false}),
    )
    .error(409, "conflict");
    s.patch(
        &format!("/pipelines/{pid}"),
        &k,
        json!({"is_default": true}),
    )
    .data(200);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM pipelines WHERE is_default = 1"),
        1
    );
    assert_eq!(
        s.get("/deals/stages", &k).data(200)[0]["pipeline_id"],
        pid.as_str()
    );
}

#[test]
fn search_ranks_and_snippets_across_kinds() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    s.post("/companies", &k, json!({"name": "Lovelace Analytics"}))
        .data(201);
    s.post(
        "/leads",
        &k,
        json!({"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}),
    )
    .data(201);
    let deal = s
        .post("/deals", &k, json!({"title": "Engines for Ada"}))
        .data(201);
    s.post(
        "/notes",
        &k,
        json!({"content": "Ada asked about the difference engine pricing", "deal_id": deal["id"]}),
    )
    .data(201);
    let hits = s.get("/search?q=ada%20lov", &k).json();
    assert_eq!(hits["meta"]["total"], 1);
    assert_eq!(hits["data"][0]["type"], "lead");
    let all = s.get("/search?q=ada", &k).data(200);
    let kinds: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{all}");
    assert!(kinds.contains(&"lead") && kinds.contains(&"deal") && kinds.contains(&"note"));
    let note_hit = all
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["type"] == "note")
        .unwrap();
    assert!(
        note_hit["snippet"].as_str().unwrap().contains("**Ada**"),
        "{note_hit}"
    );
    assert_eq!(
        s.get("/search?q=lovelace&types=company", &k).data(200)[0]["title"],
        "Lovelace Analytics"
    );
    // The index follows changes in the same transaction.
    let lead_id = s.get("/leads", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(
        &format!("/leads/{lead_id}"),
        &k,
        json!({"last_name": "Byron"}),
    )
    .data(200);
    assert_eq!(
        s.get("/search?q=lovelace&types=lead", &k).json()["meta"]["total"],
        0
    );
    assert_eq!(s.get("/search?q=byron", &k).json()["meta"]["total"], 1);
    s.delete(&format!("/leads/{lead_id}"), &k).data(200);
    assert_eq!(s.get("/search?q=byron", &k).json()["meta"]["total"], 0);
    // FTS5 syntax in the query is just text, never an error or an injection.
    assert_eq!(
        s.get("/search?q=%22NEAR(ada%20OR*", &k).json()["meta"]["total"],
        0
    );
    // Punctuation alone has no words to search for: nothing is found, and nothing breaks.
    let none = s.get("/search?q=%22(*)", &k).json();
    assert_eq!(none["meta"]["total"], 0);
    assert_eq!(none["data"], json!([]));
    s.get("/search?q=ada&types=planet", &k)
        .error(422, "validation_error");
    s.get("/search", &k).error(400, "bad_request");
}

/// Issue 21 point 9: no list pages silently. Every GET whose answer is a list either pages (page 2
/// of one item is page 2, of one item) or refuses `page` and `per_page` with a 422 saying it is
/// not paged. Walked over the served document, so a new list cannot slip through.
#[test]
fn every_list_pages_or_refuses_paging() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let deal = s.post("/deals", &k, json!({"title": "Paged"})).data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        &format!("/deals/{deal}/memory"),
        &k,
        json!({"content": "one"}),
    )
    .data(201);
    let hook = s
        .post(
            "/webhooks",
            &k,
            json!({"url": "https://hooks.example.com/x"}),
        )
        .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let doc = s.call("GET", "/public/docs", None, None, &[]).json();
    let (mut paged, mut whole) = (0, 0);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let Some(get) = ops.get("get") else { continue };
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"];
        let Some(name) = schema.as_str().and_then(|r| r.rsplit('/').next()) else {
            continue;
        };
        if doc["components"]["schemas"][name]["properties"]["data"]["type"] != "array" {
            continue;
        }
        let id = if path.starts_with("/webhooks") {
            &hook
        } else {
            &deal
        };
        let mut url = path.replace("{id}", id);
        if path == "/search" {
            url.push_str("?q=Paged&");
        } else {
            url.push('?');
        }
        let takes = |p: &str| {
            get["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|x| x["name"] == p))
        };
        if takes("page") {
            assert!(takes("per_page"), "{path}");
            let meta = s.get(&format!("{url}page=2&per_page=1"), &k).json()["meta"].clone();
            assert_eq!(
                (meta["page"].as_i64(), meta["per_page"].as_i64()),
                (Some(2), Some(1)),
                "{path}"
            );
            paged += 1;
        } else {
            for q in ["page=2", "per_page=2"] {
                let e = s
                    .get(&format!("{url}{q}"), &k)
                    .error(422, "validation_error");
                assert!(
                    e["message"]
                        .as_str()
                        .unwrap()
                        .contains("this list is not paged"),
                    "{path}?{q}: {e}"
                );
            }
            whole += 1;
        }
    }
    // The lists named in the issue are among them.
    assert!(paged >= 15 && whole >= 6, "{paged} paged, {whole} whole");
    s.get("/deals/stages?per_page=2", &k)
        .error(422, "validation_error");
    s.get("/performance/leaderboard?page=2", &k)
        .error(422, "validation_error");
}
