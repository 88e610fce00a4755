//! Every operation of the OpenAPI document, probed with no key, a malformed key, an unknown
//! key, a revoked key and an expired key (one identical 401 each time), and with keys that lack
//! its scope (403 before anything else is looked at, the body included).

use crate::common;
use crate::common::TestServer;
use serde_json::{json, Value};

/// The scope an operation needs (docs/api.md §2): `admin` for keys, webhooks, backups and changes to
/// users and the organization (and quotas); `write` for every other change; `read` for the rest.
fn scope_of(method: &str, path: &str) -> &'static str {
    let admin_resource = ["/api-keys", "/webhooks", "/admin"]
        .iter()
        .any(|p| path.starts_with(p));
    let admin_change = ["/users", "/org", "/performance/quotas"]
        .iter()
        .any(|p| path.starts_with(p));
    if path.starts_with("/auth/") || (method == "patch" && path == "/users/{id}") {
        // Logging out needs only the session itself; users may edit their own profile.
        "read"
    } else if admin_resource || (method != "get" && admin_change) {
        "admin"
    } else if method == "get" {
        "read"
    } else {
        "write"
    }
}

#[test]
fn every_operation_is_401_without_a_valid_key_and_403_without_its_scope() {
    let s = TestServer::start();
    let k = s.admin_key.clone();
    let revoked = s.key_with(&["read", "write", "admin"]);
    let revoked_id = s.get("/api-keys?sort=-created_at", &k).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/api-keys/{revoked_id}"), &k).data(200);
    let expired = s
        .post(
            "/api-keys",
            &k,
            json!({"name": "short-lived", "expires_in_seconds": 3600}),
        )
        .data(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    s.clock.advance(2 * 3_600_000);
    let reader = s.key_with(&["read"]);
    let writer = s.key_with(&["read", "write"]);
    let bad_keys = [
        None,
        Some("nope".to_string()),
        Some(format!("clz_{}", "A".repeat(32))),
        Some(revoked),
        Some(expired),
    ];

    let doc = s.call("GET", "/api/v1/public/docs", None, None, &[]).json();
    let (mut probed, mut scoped) = (0, 0);
    let mut first_401: Option<Value> = None;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let schemes: Vec<&str> = op["security"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .flat_map(|r| r.as_object().unwrap().keys().map(String::as_str))
                        .collect()
                })
                .unwrap_or_default();
            if !schemes.contains(&"bearer") {
                continue; // login, and inbound mail (its own token, tested with email)
            }
            let url = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "x_01M8HKRFSCJHEXTMRWQ2SJBB61"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let content_type = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            let call = |key: Option<&str>| {
                let mut headers = Vec::new();
                if let Some(ct) = &content_type {
                    headers.push(("content-type", ct.as_str()));
                }
                s.call(
                    &method.to_uppercase(),
                    &url,
                    key,
                    content_type.as_ref().map(|_| b"{}".as_slice()),
                    &headers,
                )
            };
            for key in &bad_keys {
                let r = call(key.as_deref());
                let mut e = r.error(401, "unauthorized");
                e["request_id"] = Value::Null;
                match &first_401 {
                    None => first_401 = Some(e),
                    Some(first) => assert_eq!(&e, first, "{op_id}: a different 401"),
                }
                probed += 1;
            }
            let lacking: &[&str] = match scope_of(method, path) {
                "admin" => &[&reader, &writer],
                "write" => &[&reader],
                _ => &[],
            };
            for key in lacking {
                let r = call(Some(key));
                assert_eq!(r.status, 403, "{method} {path} ({op_id}): {}", r.body);
                r.error(403, "forbidden");
                scoped += 1;
            }
        }
    }
    eprintln!("auth matrix: {probed} probes without a valid key, {scoped} without the scope");
    assert!(probed >= 400 && scoped >= 60, "{probed} / {scoped}");
}

/// Who calls: a person's session, or a key with stored scopes made by a person of a role.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Session(&'static str),
    Key(&'static str, &'static str),
}

/// The in-organization callers, in the order of the table's columns: the four roles' sessions,
/// then keys stored as `admin`, `read,write` and `read` made by each role (a viewer's or a
/// member's `admin` key is one made before a demotion: it acts with the role's scopes).
const CALLERS: [Who; 16] = [
    Who::Session("owner"),
    Who::Session("admin"),
    Who::Session("member"),
    Who::Session("viewer"),
    Who::Key("owner", "admin"),
    Who::Key("owner", "write"),
    Who::Key("owner", "read"),
    Who::Key("admin", "admin"),
    Who::Key("admin", "write"),
    Who::Key("admin", "read"),
    Who::Key("member", "admin"),
    Who::Key("member", "write"),
    Who::Key("member", "read"),
    Who::Key("viewer", "admin"),
    Who::Key("viewer", "write"),
    Who::Key("viewer", "read"),
];

/// THE TABLE. One row per kind of authorization, one letter per caller of [`CALLERS`]
/// (sessions owner, admin, member, viewer | keys by the owner: admin, write, read | by an
/// admin | by a member | by a viewer): `A` allowed (any answer but 401 and 403), `F` 403.
/// Without a credential every operation is 401; a key of another organization gets 404 for
/// an object of this one, and otherwise acts in its own organization, but never where only a
/// person may act (403).
const TABLE: &[(&str, &str)] = &[
    ("read", "AAAA AAA AAA AAA AAA"),
    ("write", "AAAF AAF AAF AAF FFF"),
    ("admin", "AAFF AFF AFF FFF FFF"),
    // Only a signed-in admin: issuing a reset, giving a new user a password.
    ("admin in person", "AAFF FFF FFF FFF FFF"),
    // Ending a session: any session, no key.
    ("session", "AAAA FFF FFF FFF FFF"),
    // PATCH /users/{id} aimed at the caller's own user (for a key, its creator), then at the
    // owner, by what it changes.
    ("own name", "AAAA AFF AFF FFF FFF"),
    ("own email", "AAAA FFF FFF FFF FFF"),
    ("own password", "AAAA FFF FFF FFF FFF"),
    ("own role to owner", "AFFF AFF FFF FFF FFF"),
    ("own password reset", "FFFF FFF FFF FFF FFF"),
    ("owner's name", "AFFF AFF FFF FFF FFF"),
    ("owner's email", "AFFF FFF FFF FFF FFF"),
    ("owner's password", "AFFF FFF FFF FFF FFF"),
    ("owner's password reset", "FFFF FFF FFF FFF FFF"),
    // POST /api-keys asking for `admin`: never more than the caller has.
    ("admin key", "AAFF AFF AFF FFF FFF"),
];

/// The row of each operation of the document. A new operation fails the test until it is
/// given one here.
fn row_of(op_id: &str, method: &str) -> &'static str {
    match op_id {
        "logout" => "session",
        "reset_user_password" => "admin in person",
        "update_user" => "admin", // aimed at another member; own and owner rows below
        "create_user" | "deactivate_user" | "update_org" | "set_quotas" | "create_backup" => {
            "admin"
        }
        op if op.contains("api_key") || op.contains("webhook") => "admin",
        "get_me" | "get_org" | "list_users" | "get_user" | "get_quotas" | "search"
        | "stream_events" | "list_events" | "get_leaderboard" | "get_agenda" => "read",
        op if op.starts_with("get_analytics") => "read",
        "login" | "complete_password_reset" | "receive_email" => "public",
        _ if [
            "compan",
            "lead",
            "pipeline",
            "stage",
            "deal",
            "signal",
            "task",
            "activit",
            "note",
            "email",
            "suppression",
            "campaign",
            "enrollment",
        ]
        .iter()
        .any(|r| op_id.contains(r)) =>
        {
            if method == "get" {
                "read"
            } else {
                "write"
            }
        }
        _ => panic!("{method} {op_id}: give it a row of the authorization table"),
    }
}

fn expected(row: &str, caller: usize) -> char {
    let letters: Vec<char> = TABLE
        .iter()
        .find(|(name, _)| *name == row)
        .unwrap_or_else(|| panic!("no row {row}"))
        .1
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(letters.len(), CALLERS.len(), "row {row}");
    letters[caller]
}

/// Everything a denied request could have changed, in one string.
fn fingerprint(s: &TestServer) -> String {
    s.state
        .db
        .blocking()
        .read(|c| {
            Ok(c.query_row(
                "SELECT (SELECT COUNT(*) FROM events) || '/' ||
                        (SELECT COUNT(*) || ':' || COUNT(revoked_at) FROM sessions) || '/' ||
                        (SELECT COUNT(*) || ':' || COUNT(revoked_at) || ':' || TOTAL(version)
                         FROM api_keys) || '/' ||
                        (SELECT TOTAL(version) || ':' ||
                                GROUP_CONCAT(email || role || active || IFNULL(password_hash, '-'))
                         FROM users) || '/' ||
                        (SELECT TOTAL(version) FROM organizations) || '/' ||
                        (SELECT COUNT(*) || ':' || TOTAL(version) FROM webhooks) || '/' ||
                        (SELECT COUNT(*) FROM webhook_deliveries) || '/' ||
                        (SELECT COUNT(*) FROM password_resets) || '/' ||
                        (SELECT COUNT(*) || ':' || TOTAL(version) FROM pipelines) || '/' ||
                        (SELECT COUNT(*) || ':' || TOTAL(version) FROM stages) || '/' ||
                        (SELECT COUNT(*) FROM quotas) || '/' ||
                        (SELECT COUNT(*) FROM email_inboxes) || '/' ||
                        (SELECT COUNT(*) FROM emails)",
                [],
                |r| r.get::<_, String>(0),
            )?)
        })
        .unwrap()
}

/// A caller's credential, and the id and password of the user behind it.
struct Credential {
    token: String,
    user_id: String,
    password: &'static str,
}

#[test]
fn every_operation_and_every_caller_kind_get_the_answer_the_table_gives() {
    let rx = common::receiver::Receiver::start(vec![200]);
    let s = TestServer::start_with(|c| {
        c.webhook_allow_cidr = vec!["127.0.0.0/8".parse().unwrap()];
        c.sse_lifetime = std::time::Duration::from_millis(20);
    });
    let owner = s.owner_session();
    let me = |token: &str| {
        s.get("/me", token).data(200)["user"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let owner_id = me(&owner);
    let mut people = std::collections::HashMap::new();
    people.insert(
        "owner",
        (owner.clone(), owner_id.clone(), common::OWNER_PASSWORD),
    );
    for role in ["admin", "member", "viewer"] {
        let (id, token) = s.user_with_session(&owner, &format!("{role}@example.com"), role);
        people.insert(role, (token, id, common::USER_PASSWORD));
    }
    let callers: Vec<Credential> = CALLERS
        .iter()
        .map(|who| match *who {
            Who::Session(role) => {
                let (token, user_id, password) = people[role].clone();
                Credential {
                    token,
                    user_id,
                    password,
                }
            }
            Who::Key(role, stored) => {
                use clozup::domain::{api_keys, auth};
                let user_id = people[role].1.clone();
                let scopes = match stored {
                    "admin" => vec![auth::Scope::Admin],
                    "write" => vec![auth::Scope::Read, auth::Scope::Write],
                    _ => vec![auth::Scope::Read],
                };
                let now = s.clock_now();
                let token = s
                    .state
                    .db
                    .blocking()
                    .write(|tx| {
                        let org = clozup::domain::orgs::first_id(tx)?.unwrap();
                        let input = api_keys::NewApiKey {
                            name: format!("{role}'s {stored} key"),
                            scopes: Some(scopes),
                            expires_in_seconds: None,
                        };
                        let all = auth::Scopes::of(&[auth::Scope::Admin]);
                        Ok(api_keys::create(tx, &org, &user_id, all, None, input, now)?.key)
                    })
                    .unwrap();
                Credential {
                    token,
                    user_id,
                    password: "a key knows no password",
                }
            }
        })
        .collect();
    let other_org = s.second_org();

    // An object of every kind, so every path names a real one.
    let o = &owner;
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let company = id(s.post("/companies", o, json!({"name": "Acme"})).data(201));
    let lead = id(s
        .post(
            "/leads",
            o,
            json!({"email": "buyer@acme.example", "company_id": company}),
        )
        .data(201));
    let pipeline = id(s
        .post("/pipelines", o, json!({"name": "Renewals"}))
        .data(201));
    let stage = id(s
        .post(
            &format!("/pipelines/{pipeline}/stages"),
            o,
            json!({"name": "Waiting", "probability": 10}),
        )
        .data(201));
    let deal = id(s
        .post("/deals", o, json!({"title": "Acme", "lead_id": lead}))
        .data(201));
    let task = id(s
        .post(
            "/tasks",
            o,
            json!({"title": "Call", "deal_id": deal, "due_at": "2026-11-29T09:00:00Z"}),
        )
        .data(201));
    let activity = id(s
        .post("/activities", o, json!({"type": "call", "deal_id": deal}))
        .data(201));
    let note = id(s
        .post("/notes", o, json!({"content": "n", "deal_id": deal}))
        .data(201));
    let memory = id(s
        .post(&format!("/deals/{deal}/memory"), o, json!({"content": "m"}))
        .data(201));
    s.clock.advance(4 * 24 * 3_600_000);
    clozup::domain::signals::sweep_all(&s.state.db, s.clock_now()).unwrap();
    let signal = id(s.get("/signals", o).data(200)[0].clone());
    let webhook = id(s.post("/webhooks", o, json!({"url": rx.url})).data(201));
    let delivery = id(s
        .call(
            "POST",
            &format!("/webhooks/{webhook}/test"),
            Some(o),
            None,
            &[],
        )
        .json()["data"]
        .clone());
    s.post(&format!("/deals/{deal}/email-inbox"), o, json!({}))
        .data(201);
    let message = id(s
        .post(
            &format!("/deals/{deal}/emails/send"),
            o,
            json!({"to": ["buyer@acme.example"], "subject": "Hi", "text": "Hi"}),
        )
        .data(202));
    let template = id(s
        .post(
            "/email-templates",
            o,
            json!({"name": "Intro", "subject": "Hi", "text_body": "Hi {{ lead.email }}"}),
        )
        .data(201));
    let suppression = id(s
        .post("/suppressions", o, json!({"email": "gone@acme.example"}))
        .data(201));
    let campaign = id(s
        .post("/campaigns", o, json!({"name": "Outreach"}))
        .data(201));
    let step = id(s
        .post(
            &format!("/campaigns/{campaign}/steps"),
            o,
            json!({"kind": "email", "template_id": template}),
        )
        .data(201));
    s.post(
        &format!("/campaigns/{campaign}/enrollments"),
        o,
        json!({"lead_ids": [lead]}),
    )
    .data(200);
    let enrollment = id(s.get("/enrollments", o).data(200)[0].clone());
    let victim_user = s
        .user_with_session(&owner, "victim@example.com", "member")
        .0;
    let victim_key = id(s.post("/api-keys", o, json!({"name": "victim"})).data(201));
    let path_id = |path: &str, param: &str| -> String {
        let section = path.split('/').nth(1).unwrap();
        match (section, param) {
            (_, "memory_id") => memory.clone(),
            (_, "message_id") => message.clone(),
            (_, "delivery_id") => delivery.clone(),
            (_, "step_id") => step.clone(),
            ("campaigns", _) => campaign.clone(),
            ("enrollments", _) => enrollment.clone(),
            ("users", _) => victim_user.clone(),
            ("api-keys", _) => victim_key.clone(),
            ("companies", _) => company.clone(),
            ("leads", _) => lead.clone(),
            ("pipelines", _) => pipeline.clone(),
            ("stages", _) => stage.clone(),
            ("deals", _) => deal.clone(),
            ("tasks", _) => task.clone(),
            ("activities", _) => activity.clone(),
            ("notes", _) => note.clone(),
            ("signals", _) => signal.clone(),
            ("webhooks", _) => webhook.clone(),
            ("email-templates", _) => template.clone(),
            ("suppressions", _) => suppression.clone(),
            other => panic!("no object for {path} {other:?}"),
        }
    };

    // Every operation of the document.
    let doc = s.call("GET", "/api/v1/public/docs", None, None, &[]).json();
    let (mut probes, mut operations) = (0, 0);
    let probe = |label: &str,
                 method: &str,
                 url: &str,
                 key: Option<&str>,
                 body: Option<(&str, &[u8])>,
                 want: char,
                 probes: &mut usize| {
        let before = fingerprint(&s);
        let headers: Vec<(&str, &str)> = body.iter().map(|(ct, _)| ("content-type", *ct)).collect();
        let r = s.call(method, url, key, body.map(|(_, b)| b), &headers);
        *probes += 1;
        match want {
            'A' => assert!(
                r.status != 401 && r.status != 403,
                "{label}: {method} {url} should be allowed: {} {}",
                r.status,
                r.body
            ),
            denied => {
                let (status, code) = match denied {
                    'F' => (403, "forbidden"),
                    'U' => (401, "unauthorized"),
                    _ => (404, "not_found"),
                };
                assert_eq!(r.status, status, "{label}: {method} {url}: {}", r.body);
                r.error(status, code);
                assert_eq!(
                    fingerprint(&s),
                    before,
                    "{label}: a refused {method} {url} changed something"
                );
            }
        }
    };
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let op_id = op["operationId"].as_str().unwrap();
            let row = row_of(op_id, method);
            if row == "public" {
                continue;
            }
            operations += 1;
            let mut has_ids = false;
            let url = path
                .split('/')
                .map(|seg| match seg.strip_prefix('{') {
                    Some(param) => {
                        has_ids = true;
                        path_id(path, param.trim_end_matches('}'))
                    }
                    None => seg.to_string(),
                })
                .collect::<Vec<_>>()
                .join("/");
            let content_type = op["requestBody"]["content"]
                .as_object()
                .and_then(|c| c.keys().next().cloned());
            // A body the operation accepts, so a 404 is the object's, not the body's, fault.
            let json_body = match op_id {
                "assign_lead" => json!({"user_id": victim_user}),
                "move_deal" => json!({"stage": "Qualified"}),
                "create_stage" => json!({"name": format!("Stage {probes}")}),
                "create_deal_memory" | "update_note" => json!({"content": "remember"}),
                "send_email" => {
                    json!({"to": ["buyer@acme.example"], "subject": "Re", "text": "Hello"})
                }
                "reply_to_email" => json!({"text": "Hello again"}),
                "preview_email_template" => json!({"lead_id": lead}),
                "send_email_from_template" => json!({"template_id": template}),
                "update_email_template" => json!({"subject": format!("Hi {probes}")}),
                "create_email_template" => {
                    json!({"name": format!("T{probes}"), "subject": "Hi", "text_body": "x"})
                }
                "create_suppression" => json!({"email": format!("s{probes}@acme.example")}),
                "create_campaign" => json!({"name": format!("Campaign {probes}")}),
                "create_campaign_step" => json!({"kind": "call"}),
                "enroll_leads" => json!({"lead_ids": [lead]}),
                _ => json!({}),
            }
            .to_string()
            .into_bytes();
            let body = content_type.as_deref().map(|ct| {
                let b: &[u8] = if ct.starts_with("text/csv") {
                    b"email\n"
                } else {
                    &json_body
                };
                (ct, b)
            });
            let m = method.to_uppercase();
            let label = format!("{op_id} ({row})");
            probe(&label, &m, &url, None, body, 'U', &mut probes);
            let elsewhere = if has_ids {
                'N'
            } else if matches!(row, "session" | "admin in person") {
                'F'
            } else {
                'A'
            };
            probe(
                &label,
                &m,
                &url,
                Some(&other_org),
                body,
                elsewhere,
                &mut probes,
            );
            // The refused first, so that an allowed delete cannot hide a refusal behind a 404.
            let mut order: Vec<usize> = (0..CALLERS.len()).collect();
            order.sort_by_key(|&c| expected(row, c) == 'A');
            for c in order {
                if op_id == "logout" && expected(row, c) == 'A' {
                    // Each session logs out a session of its own, made for the purpose.
                    let (role, password) = match CALLERS[c] {
                        Who::Session(role) => (role, callers[c].password),
                        Who::Key(..) => unreachable!(),
                    };
                    let email = s
                        .get(&format!("/users/{}", callers[c].user_id), o)
                        .data(200)["email"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    let spare = s.login(&email, password).data(200)["token"]
                        .as_str()
                        .unwrap()
                        .to_string();
                    probe(
                        &format!("{label} by {role}"),
                        &m,
                        &url,
                        Some(&spare),
                        body,
                        'A',
                        &mut probes,
                    );
                    continue;
                }
                let label = format!("{label} by {:?}", CALLERS[c]);
                probe(
                    &label,
                    &m,
                    &url,
                    Some(&callers[c].token),
                    body,
                    expected(row, c),
                    &mut probes,
                );
            }
        }
    }

    // Writes aimed at the caller's own user (for a key, its creator) and at the owner, and
    // what could turn a key into more than it is.
    for (c, caller) in callers.iter().enumerate() {
        let own = format!("/users/{}", caller.user_id);
        let owners = format!("/users/{owner_id}");
        let own_email = format!("renamed{c}@example.com");
        let patch = |row, url: &str, body: Value| (row, "PATCH", url.to_string(), Some(body));
        let post = |row, url: String, body: Option<Value>| (row, "POST", url, body);
        let targeted = [
            patch("own name", &own, json!({"name": format!("Name {c}")})),
            patch(
                "own email",
                &own,
                json!({"email": own_email, "current_password": caller.password}),
            ),
            patch(
                "own password",
                &own,
                json!({"password": caller.password.to_string() + " ", "current_password": caller.password}),
            ),
            patch("own role to owner", &own, json!({"role": "owner"})),
            patch("owner's name", &owners, json!({"name": "The Owner"})),
            patch(
                "owner's email",
                &owners,
                json!({"email": format!("owner{c}@example.com"), "current_password": common::OWNER_PASSWORD}),
            ),
            patch(
                "owner's password",
                &owners,
                json!({"password": common::OWNER_PASSWORD, "current_password": common::OWNER_PASSWORD}),
            ),
            post("own password reset", format!("{own}/password-reset"), None),
            post(
                "owner's password reset",
                format!("{owners}/password-reset"),
                None,
            ),
            // More scopes than the caller has, or a password it would know.
            post(
                "admin key",
                "/api-keys".into(),
                Some(json!({"name": "escalation", "scopes": ["admin"]})),
            ),
            post(
                "admin in person",
                "/users".into(),
                Some(
                    json!({"email": format!("puppet{c}@example.com"), "name": "P", "password": "a password the caller knows"}),
                ),
            ),
        ];
        for (row, method, url, body) in targeted {
            let bytes = body.map(|b| b.to_string().into_bytes());
            let label = format!("{row} by {:?}", CALLERS[c]);
            probe(
                &label,
                method,
                &url,
                Some(&caller.token),
                bytes.as_deref().map(|b| ("application/json", b)),
                expected(row, c),
                &mut probes,
            );
            if row == "own password" && expected(row, c) == 'A' {
                // Put the password back for the rest of the run.
                let back = json!({"password": caller.password, "current_password": caller.password.to_string() + " "});
                s.patch(&url, &caller.token, back).data(200);
            }
        }
    }

    // Nothing a key did made a credential worth more than itself: every reset was issued by a
    // person, every role is the one it was given, and every key acts within its creator's role.
    let log = s.get("/events/log?types=user.*&per_page=100", o).data(200);
    for e in log.as_array().unwrap() {
        assert_eq!(e["actor"]["type"], "user", "{e}");
    }
    for role in ["owner", "admin", "member", "viewer"] {
        let user = s.get(&format!("/users/{}", people[role].1), o).data(200);
        assert_eq!(user["role"], role, "{user}");
    }
    for (c, caller) in callers.iter().enumerate() {
        let scopes = s.get("/me", &caller.token).data(200)["credential"]["scopes"].clone();
        let most = match CALLERS[c] {
            Who::Session("owner" | "admin") | Who::Key("owner" | "admin", "admin") => {
                json!(["admin"])
            }
            Who::Session("member")
            | Who::Key("owner" | "admin", "write")
            | Who::Key("member", "admin" | "write") => json!(["read", "write"]),
            _ => json!(["read"]),
        };
        assert_eq!(scopes, most, "{:?}", CALLERS[c]);
    }
    eprintln!("authorization table: {operations} operations, {probes} probes");
    assert!(
        operations >= 95 && probes >= operations * 18,
        "{operations} / {probes}"
    );
}
