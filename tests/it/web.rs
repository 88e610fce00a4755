//! The web app's rules over real HTTP (issue 25): every page behind the session, the cookie's
//! flags, CSRF and origin checks on every change, a strict CSP, organizations kept apart, the
//! live stream. What a person does in a browser is in tests/browser (Chromium).

use std::io::{BufRead, BufReader};

use serde_json::json;

use crate::common::{TestServer, OWNER_PASSWORD};

/// Signs in through the sign-in form; the session cookie's value.
fn form_login(s: &TestServer, email: &str, password: &str) -> String {
    let enc = |v: &str| {
        v.replace('%', "%25")
            .replace('@', "%40")
            .replace(' ', "+")
            .replace('\'', "%27")
    };
    let form = format!(
        "email={}&password={}&next=%2Fboard",
        enc(email),
        enc(password)
    );
    let resp = s.page("POST", "/login", None, Some(&form), &[]);
    assert_eq!(resp.status, 303, "{}", resp.body);
    assert_eq!(resp.header("location"), Some("/board"));
    let cookie = resp.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("clozup_session=")
        .to_string()
}

/// Gives the owner a password (as `clozup users set-password` does) and signs them in.
fn sign_in(s: &TestServer) -> String {
    s.owner_session();
    let email = s.get("/users?role=owner", &s.admin_key).data(200)[0]["email"]
        .as_str()
        .unwrap()
        .to_string();
    form_login(s, &email, OWNER_PASSWORD)
}

/// The CSRF token a page carries.
fn csrf(page: &str) -> String {
    let at = page
        .find(r#"name="csrf-token" content=""#)
        .expect("a CSRF token")
        + 27;
    page[at..at + 32].to_string()
}

fn a_deal(s: &TestServer) -> (String, String) {
    let deal = s
        .post(
            "/deals",
            &s.admin_key,
            json!({"title": "Web deal", "value": 100}),
        )
        .data(201);
    let stage = s.get("/pipelines", &s.admin_key).data(200)[0]["stages"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (deal["id"].as_str().unwrap().to_string(), stage)
}

#[test]
fn every_page_needs_a_session_and_carries_a_strict_policy() {
    let s = TestServer::start_with(|c| c.body_limit = 4096);
    for path in ["/", "/today", "/board", "/deals/deal_x", "/settings/keys"] {
        let resp = s.page("GET", path, None, None, &[]);
        assert_eq!(resp.status, 303, "{path}");
        let to = resp.header("location").unwrap();
        assert!(to.starts_with("/login"), "{path} -> {to}");
    }
    assert_eq!(
        s.page("GET", "/board?pipeline=x", None, None, &[])
            .header("location"),
        Some("/login?next=/board%3Fpipeline%3Dx")
    );
    assert_eq!(
        s.page("GET", "/live", None, None, &[]).status,
        401,
        "the live stream is no page to send anyone to"
    );
    let login = s.page("GET", "/login", None, None, &[]);
    assert_eq!(login.status, 200);
    let csp = login.header("content-security-policy").unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe"), "{csp}");
    assert!(
        login.body.contains("clozup users set-password"),
        "first run is explained"
    );
    // A forged next never leads off the server.
    let form = "email=x%40example.com&password=wrong&next=%2F%2Fevil.example";
    let refused = s.page("POST", "/login", None, Some(form), &[]);
    assert_eq!(refused.status, 401);
    assert!(refused.header("set-cookie").is_none());
    assert!(refused.body.contains("do not match"));
    assert!(!refused.body.contains("evil.example"));
    // A form body is held to the API's limit.
    let huge = format!("email=x&password={}", "a".repeat(6000));
    assert_eq!(s.page("POST", "/login", None, Some(&huge), &[]).status, 413);
}

#[test]
fn a_change_needs_the_pages_csrf_token_and_this_origin() {
    let s = TestServer::start();
    let session = sign_in(&s);
    let (deal, stage) = a_deal(&s);
    let board = s.page("GET", "/board", Some(&session), None, &[]);
    assert_eq!(board.status, 200);
    assert!(board.body.contains("Web deal"));
    assert_eq!(board.header("cache-control"), Some("no-store"));
    let token = csrf(&board.body);
    let events = s.count("SELECT COUNT(*) FROM events");
    let form = |t: &str| format!("csrf={t}&deal_id={deal}&stage_id={stage}&version=1");
    let wrong = s.page(
        "POST",
        "/board/move",
        Some(&session),
        Some(&form(&"0".repeat(32))),
        &[],
    );
    assert_eq!(wrong.status, 403);
    let elsewhere = s.page(
        "POST",
        "/board/move",
        Some(&session),
        Some(&form(&token)),
        &[("origin", "http://evil.example")],
    );
    assert_eq!(elsewhere.status, 403);
    assert_eq!(
        s.count("SELECT COUNT(*) FROM events"),
        events,
        "nothing changed"
    );
    let origin = s.base.clone();
    let moved = s.page(
        "POST",
        "/board/move",
        Some(&session),
        Some(&form(&token)),
        &[("origin", &origin), ("x-requested-with", "clozup")],
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["version"], 2);
    assert_eq!(
        s.get(&format!("/deals/{deal}"), &s.admin_key).data(200)["stage_id"],
        stage
    );
    // The same form again is a stale version now: 412, said in words, nothing moved.
    let again = s.page(
        "POST",
        "/board/move",
        Some(&session),
        Some(&form(&token)),
        &[("x-requested-with", "clozup")],
    );
    assert_eq!(again.status, 412);
    assert!(again.json()["error"]
        .as_str()
        .unwrap()
        .contains("changed this meanwhile"));
    // Another session's token is worthless with this cookie.
    let email = s.get("/users?role=owner", &s.admin_key).data(200)[0]["email"]
        .as_str()
        .unwrap()
        .to_string();
    let other = form_login(&s, &email, OWNER_PASSWORD);
    let theirs = csrf(&s.page("GET", "/board", Some(&other), None, &[]).body);
    assert_ne!(theirs, token);
    let crossed = s.page(
        "POST",
        "/board/move",
        Some(&session),
        Some(&form(&theirs)),
        &[],
    );
    assert_eq!(crossed.status, 403);
}

#[test]
fn a_viewer_reads_but_cannot_change_and_organizations_stay_apart() {
    let s = TestServer::start();
    let owner = s.owner_session();
    let (deal, stage) = a_deal(&s);
    s.user_with_session(&owner, "viewer@example.com", "viewer");
    let viewer = form_login(&s, "viewer@example.com", crate::common::USER_PASSWORD);
    let board = s.page("GET", "/board", Some(&viewer), None, &[]);
    assert!(board.body.contains(r#"data-writable="false""#));
    assert!(!board.body.contains("/board/move"));
    let page = s.page("GET", &format!("/deals/{deal}"), Some(&viewer), None, &[]);
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("<form method=\"post\" action=\"/deals/"));
    let token = csrf(&page.body);
    let move_form = format!("csrf={token}&deal_id={deal}&stage_id={stage}&version=1");
    let refused = s.page("POST", "/board/move", Some(&viewer), Some(&move_form), &[]);
    assert_eq!(refused.status, 403);
    let act = format!("csrf={token}&type=call&subject=x&body=");
    let refused = s.page(
        "POST",
        &format!("/deals/{deal}/activities"),
        Some(&viewer),
        Some(&act),
        &[],
    );
    assert_eq!(refused.status, 403);
    assert_eq!(
        s.get(&format!("/deals/{deal}"), &s.admin_key).data(200)["version"],
        1
    );
    assert_eq!(
        s.page("GET", "/settings/keys", Some(&viewer), None, &[])
            .status,
        403
    );

    // The other organization's owner: the deal does not exist for them.
    let other_key = s.second_org();
    s.owner_session_of(&other_key);
    let theirs = form_login(&s, "boss@other.example", OWNER_PASSWORD);
    assert_eq!(
        s.page("GET", &format!("/deals/{deal}"), Some(&theirs), None, &[])
            .status,
        404
    );
    assert!(!s
        .page("GET", "/board", Some(&theirs), None, &[])
        .body
        .contains("Web deal"));
}

#[test]
fn signing_out_ends_the_session_everywhere() {
    let s = TestServer::start();
    let session = sign_in(&s);
    let page = s.page("GET", "/today", Some(&session), None, &[]);
    assert_eq!(page.status, 200);
    let out = s.page(
        "POST",
        "/logout",
        Some(&session),
        Some(&format!("csrf={}", csrf(&page.body))),
        &[],
    );
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(
        s.page("GET", "/today", Some(&session), None, &[]).status,
        303
    );
    s.get("/me", &session).error(401, "unauthorized");
}

#[test]
fn the_cookie_is_secure_when_the_public_url_is_https() {
    let s = TestServer::start_with(|c| c.public_url = Some("https://crm.example.com".into()));
    s.owner_session();
    let email = s.get("/users?role=owner", &s.admin_key).data(200)[0]["email"]
        .as_str()
        .unwrap()
        .replace('@', "%40");
    let form = format!(
        "email={email}&password={}",
        OWNER_PASSWORD.replace(' ', "+").replace('\'', "%27")
    );
    let resp = s.page("POST", "/login", None, Some(&form), &[]);
    assert_eq!(resp.status, 303);
    assert!(resp.header("set-cookie").unwrap().contains("; Secure"));
}

#[test]
fn an_open_board_hears_of_a_move_made_through_the_api() {
    let s = TestServer::start();
    let session = sign_in(&s);
    let (deal, stage) = a_deal(&s);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut resp = agent
        .get(format!("{}/live", s.base))
        .header("cookie", format!("clozup_session={session}"))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // The stream subscribed before answering, so a move made now is heard.
    s.post(
        &format!("/deals/{deal}/move"),
        &s.admin_key,
        json!({"stage_id": stage}),
    )
    .data(200);
    let mut lines = BufReader::new(resp.body_mut().as_reader()).lines();
    let mut seen = Vec::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push(line.clone());
        if line == format!("data: {deal}") {
            break;
        }
    }
    assert!(seen.contains(&"event: deal".to_string()), "{seen:?}");
}

#[test]
fn the_sign_in_form_is_rate_limited_per_address_like_the_apis_login() {
    let s = TestServer::start_with(|c| {
        c.rate_limit = clozup::config::parse_rate_limit("3/1h").unwrap()
    });
    let form = "email=owner%40example.com&password=guess";
    let statuses: Vec<u16> = (0..4)
        .map(|_| s.page("POST", "/login", None, Some(form), &[]).status)
        .collect();
    assert_eq!(statuses, vec![401, 401, 401, 429], "the fourth guess waits");
    let limited = s.page("POST", "/login", None, Some(form), &[]);
    assert!(limited.header("retry-after").is_some());
    // Reading the page is not limited: only the guesses are.
    assert_eq!(s.page("GET", "/login", None, None, &[]).status, 200);
}
