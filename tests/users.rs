//! The team, sessions and roles, and organization isolation.

mod common;

use common::TestServer;
use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

fn login(s: &TestServer, email: &str, password: &str) -> common::Resp {
    s.call(
        "POST",
        "/auth/login",
        None,
        Some(
            json!({"email": email, "password": password})
                .to_string()
                .as_bytes(),
        ),
        &[],
    )
}

fn add_user(s: &TestServer, email: &str, role: &str) -> String {
    s.post(
        "/users",
        &s.admin_key,
        json!({"email": email, "name": "Someone", "role": role, "password": PASSWORD}),
    )
    .data(201)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn login_gives_a_session_acting_with_the_role_and_logout_ends_it() {
    let s = TestServer::start();
    add_user(&s, "mem@example.com", "member");
    let session = login(&s, "MEM@example.com", PASSWORD).data(200);
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("clzs_") && token.len() == 37, "{token}");
    let me = s.get("/me", &token).data(200);
    assert_eq!(me["credential"]["type"], "session");
    assert_eq!(me["credential"]["scopes"], json!(["read", "write"]));
    assert_eq!(me["user"]["email"], "mem@example.com");
    // A member may not manage users or keys.
    s.post(
        "/users",
        &token,
        json!({"email": "x@example.com", "name": "X"}),
    )
    .error(403, "forbidden");
    s.get("/api-keys", &token).error(403, "forbidden");
    s.call("POST", "/auth/logout", Some(&token), None, &[])
        .data(200);
    s.get("/me", &token).error(401, "unauthorized");
}

#[test]
fn wrong_password_and_unknown_email_get_the_same_401() {
    let s = TestServer::start();
    add_user(&s, "v@example.com", "viewer");
    let mut a = login(&s, "v@example.com", "wrong password!!").error(401, "unauthorized");
    let mut b = login(&s, "nobody@example.com", PASSWORD).error(401, "unauthorized");
    a["request_id"] = json!(null);
    b["request_id"] = json!(null);
    assert_eq!(a, b);
    let e = login(&s, "v@example.com", "").error(401, "unauthorized");
    assert!(e["details"].as_array().unwrap().is_empty());
}

#[test]
fn viewers_read_and_sessions_expire() {
    let s = TestServer::start_with(|c| c.session_ttl = std::time::Duration::from_secs(3600));
    add_user(&s, "view@example.com", "viewer");
    let token = login(&s, "view@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.get("/users", &token).data(200);
    s.patch("/org", &token, json!({"name": "Nope"}))
        .error(403, "forbidden");
    s.clock.advance(3_600_000);
    s.get("/users", &token).error(401, "unauthorized");
}

#[test]
fn users_can_change_their_own_profile_but_not_their_role() {
    let s = TestServer::start();
    let id = add_user(&s, "self@example.com", "member");
    let token = login(&s, "self@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/users/{id}");
    s.patch(&path, &token, json!({"name": "New Name"}))
        .data(200);
    s.patch(&path, &token, json!({"role": "admin"}))
        .error(403, "forbidden");
    let owner = s.get("/users?role=owner", &token).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(
        &format!("/users/{owner}"),
        &token,
        json!({"name": "Hacked"}),
    )
    .error(403, "forbidden");
    // A new password ends other sessions but keeps working.
    let other = login(&s, "self@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(&path, &token, json!({"password": "another long password"}))
        .data(200);
    s.get("/me", &token).data(200);
    s.get("/me", &other).error(401, "unauthorized");
    login(&s, "self@example.com", PASSWORD).error(401, "unauthorized");
    login(&s, "self@example.com", "another long password").data(200);
}

#[test]
fn deactivation_ends_sessions_and_keys_but_keeps_the_user() {
    let s = TestServer::start();
    let id = add_user(&s, "admin2@example.com", "admin");
    let token = login(&s, "admin2@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let their_key = s
        .post("/api-keys", &token, json!({"name": "theirs"}))
        .data(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    s.get("/me", &their_key).data(200);
    let gone = s.delete(&format!("/users/{id}"), &s.admin_key).data(200);
    assert_eq!(gone["active"], false);
    assert!(gone["deactivated_at"].is_string());
    s.get("/me", &token).error(401, "unauthorized");
    s.get("/me", &their_key).error(401, "unauthorized");
    login(&s, "admin2@example.com", PASSWORD).error(401, "unauthorized");
    assert_eq!(
        s.get(&format!("/users/{id}"), &s.admin_key).data(200)["active"],
        false
    );
    let inactive = s.get("/users?active=false", &s.admin_key).json();
    assert_eq!(inactive["meta"]["total"], 1);
    // Reactivated, the key works again.
    s.patch(
        &format!("/users/{id}"),
        &s.admin_key,
        json!({"active": true}),
    )
    .data(200);
    s.get("/me", &their_key).data(200);
}

#[test]
fn only_owners_touch_owners_and_one_always_remains() {
    let s = TestServer::start();
    let admin_id = add_user(&s, "adm@example.com", "admin");
    let admin = login(&s, "adm@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.post(
        "/users",
        &admin,
        json!({"email": "o2@example.com", "name": "O", "role": "owner"}),
    )
    .error(403, "forbidden");
    let owner_id = s.get("/users?role=owner", &admin).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.delete(&format!("/users/{owner_id}"), &admin)
        .error(403, "forbidden");
    // The owner's own key may not remove the last owner either.
    s.delete(&format!("/users/{owner_id}"), &s.admin_key)
        .error(409, "conflict");
    s.patch(
        &format!("/users/{owner_id}"),
        &s.admin_key,
        json!({"role": "admin"}),
    )
    .error(409, "conflict");
    // Promote the admin to owner; then the first owner may step down.
    s.patch(
        &format!("/users/{admin_id}"),
        &s.admin_key,
        json!({"role": "owner"}),
    )
    .data(200);
    s.patch(
        &format!("/users/{owner_id}"),
        &s.admin_key,
        json!({"role": "admin"}),
    )
    .data(200);
}

#[test]
fn team_lists_filter_sort_and_search() {
    let s = TestServer::start();
    add_user(&s, "zed@example.com", "member");
    add_user(&s, "amy@example.com", "viewer");
    add_user(&s, "bob@example.com", "member");
    let members = s
        .get("/users?role=member,viewer&sort=email", &s.admin_key)
        .json();
    let emails: Vec<&str> = members["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["amy@example.com", "bob@example.com", "zed@example.com"]
    );
    assert_eq!(members["meta"]["total"], 3);
    let found = s.get("/users?q=BOB", &s.admin_key).data(200);
    assert_eq!(found.as_array().unwrap().len(), 1);
    s.get("/users?role=emperor", &s.admin_key)
        .error(422, "validation_error");
    let none = s.get("/users?q=%25", &s.admin_key).data(200);
    assert!(
        none.as_array().unwrap().is_empty(),
        "% is matched literally"
    );
}

#[test]
fn another_organization_sees_nothing_of_this_one() {
    let s = TestServer::start();
    let user_id = add_user(&s, "a@example.com", "member");
    let key_id = s.get("/me", &s.admin_key).data(200)["credential"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = s.second_org();
    let user_path = format!("/users/{user_id}");
    let key_path = format!("/api-keys/{key_id}");
    s.get(&user_path, &b).error(404, "not_found");
    s.patch(&user_path, &b, json!({"name": "Owned"}))
        .error(404, "not_found");
    s.delete(&user_path, &b).error(404, "not_found");
    s.get(&key_path, &b).error(404, "not_found");
    s.delete(&key_path, &b).error(404, "not_found");
    // Nothing changed, and B's lists hold only B.
    let user = s.get(&user_path, &s.admin_key).data(200);
    assert_eq!(
        (user["name"].as_str(), user["active"].as_bool()),
        (Some("Someone"), Some(true))
    );
    s.get("/me", &s.admin_key).data(200);
    let b_users = s.get("/users", &b).json();
    assert_eq!(b_users["meta"]["total"], 1);
    assert_eq!(b_users["data"][0]["email"], "boss@other.example");
    assert_eq!(s.get("/api-keys", &b).json()["meta"]["total"], 1);
    assert_ne!(
        s.get("/org", &b).data(200)["id"],
        s.get("/org", &s.admin_key).data(200)["id"]
    );
}

#[test]
fn the_same_email_in_two_organizations_logs_in_with_org_id() {
    let s = TestServer::start();
    add_user(&s, "shared@example.com", "member");
    let b = s.second_org();
    s.post(
        "/users",
        &b,
        json!({"email": "shared@example.com", "name": "B", "password": "different password"}),
    )
    .data(201);
    let b_org = s.get("/org", &b).data(200)["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = s.call(
        "POST",
        "/auth/login",
        None,
        Some(json!({"email": "shared@example.com", "password": "different password", "org_id": b_org}).to_string().as_bytes()),
        &[],
    );
    let token = r.data(200)["token"].as_str().unwrap().to_string();
    assert_eq!(s.get("/me", &token).data(200)["organization"]["id"], b_org);
    let a = login(&s, "shared@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(s.get("/me", &a).data(200)["organization"]["id"], b_org);
}
