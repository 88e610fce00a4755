//! The reference agent loop (examples/agent_loop.rs, compiled in here as it is) runs end to end
//! against a seeded server, and running it twice in a day writes nothing twice.

#[path = "../../examples/agent_loop.rs"]
mod example;

use crate::common::{TestServer, START_MS};
use serde_json::json;

const DAY: i64 = 86_400_000;

#[test]
fn the_daily_loop_reviews_risky_deals_and_moves_engaged_ones() {
    let s = TestServer::start();
    let k = s.key_with(&["read", "write"]);
    let stalled = s
        .post(
            "/deals",
            &k,
            json!({"title": "Stalled", "value": 90000, "stage": "Demo Scheduled"}),
        )
        .data(201);
    let engaged = s
        .post(
            "/deals",
            &k,
            json!({"title": "Engaged", "value": 1000, "stage": "Qualified"}),
        )
        .data(201);
    s.clock.set(START_MS + 20 * DAY);
    let engaged_id = engaged["id"].as_str().unwrap().to_string();
    s.record_system_activity(&engaged_id, "email_received", Some("Re: next steps"));
    let now = s.clock_now();
    clozup::domain::signals::sweep_all(&s.state.db, now).unwrap();

    let summary = example::run(&s.base, &k, "day-1").unwrap();
    assert_eq!(
        summary,
        "== Done: 3 signals read, 1 risky deals reviewed, 2 writes, 1 deals moved"
    );
    let stalled_id = stalled["id"].as_str().unwrap();
    let memory = s.get(&format!("/deals/{stalled_id}/memory"), &k).data(200);
    assert_eq!(memory.as_array().unwrap().len(), 1);
    assert!(
        memory[0]["content"].as_str().unwrap().starts_with("Risk "),
        "{memory}"
    );
    assert_eq!(
        s.get(&format!("/activities?deal_id={stalled_id}&type=other"), &k)
            .json()["meta"]["total"],
        1
    );
    assert_eq!(
        s.get(&format!("/deals/{engaged_id}"), &k).data(200)["stage_name"],
        "Demo Scheduled"
    );

    // The same day again: every write is replayed, none repeated.
    example::run(&s.base, &k, "day-1").unwrap();
    assert_eq!(
        s.get(&format!("/deals/{stalled_id}/memory"), &k).json()["meta"]["total"],
        1
    );
    assert_eq!(
        s.get(&format!("/activities?deal_id={stalled_id}&type=other"), &k)
            .json()["meta"]["total"],
        1
    );
}
