//! The team, sessions and roles, credentials changed only in person, and organization
//! isolation.

use crate::common;
use crate::common::{TestServer, USER_PASSWORD as PASSWORD};
use serde_json::json;

fn add_user(s: &TestServer, owner: &str, email: &str, role: &str) -> String {
    s.user_with_session(owner, email, role).0
}

fn token(r: common::Resp) -> String {
    r.data(200)["token"].as_str().unwrap().to_string()
}

#[test]
fn login_gives_a_session_acting_with_the_role_and_logout_ends_it() {
    let s = TestServer::start();
    let owner = s.owner_session();
    add_user(&s, &owner, "mem@example.com", "member");
    let session = s.login("MEM@example.com", PASSWORD).data(200);
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
    let owner = s.owner_session();
    add_user(&s, &owner, "v@example.com", "viewer");
    let mut a = s
        .login("v@example.com", "wrong password!!")
        .error(401, "unauthorized");
    let mut b = s
        .login("nobody@example.com", PASSWORD)
        .error(401, "unauthorized");
    a["request_id"] = json!(null);
    b["request_id"] = json!(null);
    assert_eq!(a, b);
    let e = s.login("v@example.com", "").error(401, "unauthorized");
    assert!(e["details"].as_array().unwrap().is_empty());
}

#[test]
fn viewers_read_and_sessions_expire() {
    let s = TestServer::start_with(|c| c.session_ttl = std::time::Duration::from_secs(3600));
    let owner = s.owner_session();
    add_user(&s, &owner, "view@example.com", "viewer");
    let token = s.login("view@example.com", PASSWORD).data(200)["token"]
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
    let owner = s.owner_session();
    let (id, token) = s.user_with_session(&owner, "self@example.com", "member");
    let path = format!("/users/{id}");
    s.patch(&path, &token, json!({"name": "New Name"}))
        .data(200);
    s.patch(&path, &token, json!({"role": "admin"}))
        .error(403, "forbidden");
    let owner_id = s.get("/users?role=owner", &token).data(200)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    s.patch(
        &format!("/users/{owner_id}"),
        &token,
        json!({"name": "Hacked"}),
    )
    .error(403, "forbidden");
    // A new password takes the current one; a wrong one changes nothing.
    let other = token_of(&s, "self@example.com", PASSWORD);
    let e = s
        .patch(&path, &token, json!({"password": "another long password"}))
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "current_password", "{e}");
    s.patch(
        &path,
        &token,
        json!({"password": "another long password", "current_password": "not the password"}),
    )
    .error(403, "forbidden");
    s.get("/me", &other).data(200);
    s.patch(
        &path,
        &token,
        json!({"password": "another long password", "current_password": PASSWORD}),
    )
    .data(200);
    // It ends the other sessions but keeps the one that made the change.
    s.get("/me", &token).data(200);
    s.get("/me", &other).error(401, "unauthorized");
    s.login("self@example.com", PASSWORD)
        .error(401, "unauthorized");
    let other = token_of(&s, "self@example.com", "another long password");
    // So does a new email, which also takes the current password.
    s.patch(&path, &token, json!({"email": "me@example.com"}))
        .error(422, "validation_error");
    s.patch(
        &path,
        &token,
        json!({"email": "me@example.com", "current_password": "another long password"}),
    )
    .data(200);
    s.get("/me", &other).error(401, "unauthorized");
    s.login("me@example.com", "another long password").data(200);
}

fn token_of(s: &TestServer, email: &str, password: &str) -> String {
    token(s.login(email, password))
}

/// Issue 18's report: a `read,write` key made by the owner set the owner's password, signed in
/// as the owner and made itself an admin key. It now fails at its first step, and no key, of
/// any scope, changes anyone's email or password.
#[test]
fn no_api_key_changes_credentials_whatever_its_scopes() {
    let s = TestServer::start();
    let owner = s.owner_session();
    let owner_id = s.get("/me", &owner).data(200)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = s
        .post(
            "/api-keys",
            &owner,
            json!({"name": "sales agent", "scopes": ["read", "write"]}),
        )
        .data(201)["key"]
        .as_str()
        .unwrap()
        .to_string();
    let owner_path = format!("/users/{owner_id}");
    let before = s.get(&owner_path, &owner).data(200);
    for body in [
        json!({"password": "agent chose this passphrase"}),
        json!({"password": "agent chose this passphrase", "current_password": common::OWNER_PASSWORD}),
        json!({"email": "agent@evil.example"}),
        json!({"name": "Renamed by an agent"}),
    ] {
        s.patch(&owner_path, &agent, body.clone())
            .error(403, "forbidden");
        // An admin key, the owner's own included, may not change credentials either.
        let e = s.patch(&owner_path, &s.admin_key, body.clone());
        if body.get("name").is_some() {
            e.data(200);
        } else {
            e.error(403, "forbidden");
        }
    }
    s.login("owner@example.com", "agent chose this passphrase")
        .error(401, "unauthorized");
    let after = s.get(&owner_path, &owner).data(200);
    assert_eq!(after["email"], before["email"]);
    s.get("/me", &owner).data(200);
    // Nor give a new user a password it could sign in with.
    s.post(
        "/users",
        &s.admin_key,
        json!({"email": "puppet@example.com", "name": "P", "role": "admin", "password": "a password the key knows"}),
    )
    .error(403, "forbidden");
    assert_eq!(
        s.count("SELECT COUNT(*) FROM users WHERE email = 'puppet@example.com'"),
        0
    );
    // Nor issue a reset, which would hand it the token.
    let member = add_user(&s, &owner, "m@example.com", "member");
    s.call(
        "POST",
        &format!("/users/{member}/password-reset"),
        Some(&s.admin_key),
        None,
        &[],
    )
    .error(403, "forbidden");
    s.login("m@example.com", PASSWORD).data(200);
}

#[test]
fn an_admin_resets_a_members_password_through_a_logged_one_time_token() {
    let s = TestServer::start();
    let owner = s.owner_session();
    let (admin_id, admin) = s.user_with_session(&owner, "adm@example.com", "admin");
    let (member_id, member) = s.user_with_session(&owner, "mem@example.com", "member");
    let reset = |by: &str, id: &str| {
        s.call(
            "POST",
            &format!("/users/{id}/password-reset"),
            Some(by),
            None,
            &[],
        )
    };
    let redeem = |token: &str, password: &str| {
        s.call(
            "POST",
            "/auth/password-reset",
            None,
            Some(
                json!({"token": token, "password": password})
                    .to_string()
                    .as_bytes(),
            ),
            &[],
        )
    };
    // Not for oneself, not by a member, not on an owner by an admin.
    reset(&admin, &admin_id).error(403, "forbidden");
    reset(&member, &admin_id).error(403, "forbidden");
    let owner_id = s.get("/me", &owner).data(200)["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    reset(&admin, &owner_id).error(403, "forbidden");
    s.get("/me", &owner).data(200);

    let first = reset(&admin, &member_id).data(201);
    let first_token = first["token"].as_str().unwrap().to_string();
    assert!(first_token.starts_with("clzr_"), "{first}");
    assert_eq!(first["user"]["has_password"], false);
    // The member's sessions end and the old password stops working at once.
    s.get("/me", &member).error(401, "unauthorized");
    s.login("mem@example.com", PASSWORD)
        .error(401, "unauthorized");
    // A second reset voids the first.
    let second = reset(&admin, &member_id).data(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    let e1 = redeem(&first_token, "the member's new password").error(401, "unauthorized");
    redeem(&second, "short").error(422, "validation_error");
    let session = redeem(&second, "the member's new password").data(200);
    let fresh = session["token"].as_str().unwrap();
    assert_eq!(s.get("/me", fresh).data(200)["user"]["id"], member_id);
    // Once only.
    let e2 = redeem(&second, "yet another password").error(401, "unauthorized");
    assert_eq!(e1["message"], e2["message"]);
    s.login("mem@example.com", "the member's new password")
        .data(200);
    // Recorded, with who did it, in the event log.
    let log = s.get("/events/log?types=user.*", &owner).data(200);
    let resets: Vec<_> = log.as_array().unwrap().iter().collect();
    assert_eq!(resets.len(), 2, "{log}");
    assert_eq!(resets[0]["type"], "user.password_reset");
    assert_eq!(resets[0]["actor"], json!({"type": "user", "id": admin_id}));
    assert_eq!(resets[0]["data"]["object"]["id"], member_id);
    // The owner may reset an admin.
    reset(&owner, &admin_id).data(201);
    // Expired after a day.
    let late = reset(&owner, &member_id).data(201)["token"]
        .as_str()
        .unwrap()
        .to_string();
    s.clock.advance(24 * 3_600_000);
    redeem(&late, "the member's third password").error(401, "unauthorized");
}

#[test]
fn a_key_never_outlives_the_key_that_made_it() {
    let s = TestServer::start();
    let short = s
        .post(
            "/api-keys",
            &s.admin_key,
            json!({"name": "short", "scopes": ["admin"], "expires_in_seconds": 3600}),
        )
        .data(201);
    let short_key = short["key"].as_str().unwrap();
    let child = s
        .post("/api-keys", short_key, json!({"name": "child"}))
        .data(201);
    assert_eq!(child["expires_at"], short["expires_at"], "{child}");
    let e = s
        .post(
            "/api-keys",
            short_key,
            json!({"name": "longer", "expires_in_seconds": 7200}),
        )
        .error(422, "validation_error");
    assert_eq!(e["details"][0]["field"], "expires_in_seconds");
}

#[test]
fn deactivation_ends_sessions_and_keys_but_keeps_the_user() {
    let s = TestServer::start();
    let owner = s.owner_session();
    let id = add_user(&s, &owner, "admin2@example.com", "admin");
    let token = s.login("admin2@example.com", PASSWORD).data(200)["token"]
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
    s.login("admin2@example.com", PASSWORD)
        .error(401, "unauthorized");
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
    let owner = s.owner_session();
    let admin_id = add_user(&s, &owner, "adm@example.com", "admin");
    let admin = token_of(&s, "adm@example.com", PASSWORD);
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
    s.patch(
        &format!("/users/{owner_id}"),
        &admin,
        json!({"name": "Renamed by an admin"}),
    )
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
    let owner = s.owner_session();
    add_user(&s, &owner, "zed@example.com", "member");
    add_user(&s, &owner, "amy@example.com", "viewer");
    add_user(&s, &owner, "bob@example.com", "member");
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
    let owner = s.owner_session();
    let user_id = add_user(&s, &owner, "a@example.com", "member");
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
    let owner = s.owner_session();
    add_user(&s, &owner, "shared@example.com", "member");
    let b = s.second_org();
    let b_owner = s.owner_session_of(&b);
    s.post(
        "/users",
        &b_owner,
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
    let a = s.login("shared@example.com", PASSWORD).data(200)["token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(s.get("/me", &a).data(200)["organization"]["id"], b_org);
}
