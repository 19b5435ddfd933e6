//! The main path on PostgreSQL: intake → dispatcher → delivered, on a fresh database, when a
//! server answers at `YIMEN_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Without a server the test says so and passes: SQLite covers the same path everywhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod serve_support;

use std::time::Duration;

use serde_json::{Value, json};
use serve_support::{Backend, Hub, case, postgres_admin};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn a_case_is_delivered_to_every_target_on_postgres() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = serve_support::answering_lines("PG").await;
    let hub = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |_| {}).await;
    let response = hub.submit(&case("PG-1")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["case_id"].as_str().unwrap();
    let case = hub.until_targets(id, "delivered").await;
    for target in case["targets"].as_array().unwrap() {
        let system = target["system"].as_str().unwrap();
        assert_eq!(target["receipt"]["receipt_number"], format!("{system}-PG"));
        assert_eq!(target["attempts"], 1);
    }
    assert_eq!(hub.submit(&serve_support::case("PG-1")).await.status(), 200);
    let (_, health) = hub.get("/healthz").await;
    assert_eq!(health["store"], "postgres");
    hub.stop().await;
}

/// A line system whose receipt number holds a NUL character (a JSON `\u0000`): PostgreSQL
/// refuses NUL in text, so before it was replaced the outcome could not be written, nor the
/// outcomes written in the same batch, and the delivery stayed `sending`.
#[tokio::test]
async fn a_receipt_with_a_nul_character_is_stored() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = MockServer::start().await;
    for (system, number) in [("R01", "R01-\u{0}-1"), ("R02", "R02-1")] {
        Mock::given(method("POST"))
            .and(path(format!("/{system}/api/cases")))
            .respond_with(ResponseTemplate::new(201).set_body_json(json!({
                "code": "0", "message": "ok",
                "data": { "receiptNo": number, "status": "01" }
            })))
            .mount(&lines)
            .await;
    }
    let hub = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |_| {}).await;
    let response = hub.submit(&case("NUL-1")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["case_id"].as_str().unwrap();
    let case = hub.until_targets(id, "delivered").await;
    let mut numbers: Vec<&str> = case["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["receipt"]["receipt_number"].as_str().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, ["R01-\u{FFFD}-1", "R02-1"], "{case:#}");
    hub.stop().await;
}

/// Node A's sends to R01 fail and open its breaker; node B, whose own sends only hang (and whose
/// threshold it never reaches), opens its R01 breaker too, from the shared record, and shows it
/// in `/v1/systems`. At once, from A's signal: the lease is long, so the next heartbeat (a third
/// of it) would come too late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaker_opened_on_one_node_opens_on_the_others() {
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let failing = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&failing)
        .await;
    let hanging = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/R01/api/cases"))
        .respond_with(ResponseTemplate::new(503).set_delay(Duration::from_secs(60)))
        .mount(&hanging)
        .await;
    let a = Hub::start_on(Backend::Postgres(admin), &failing.uri(), |c| {
        c.node_id = "node-a".to_owned();
        c.dispatch.lease = Duration::from_secs(30);
        c.dispatch.breaker.failure_threshold = 3;
        c.dispatch.breaker.cool_down = Duration::from_secs(3600);
    })
    .await;
    let b = Hub::start_on(
        Backend::Shared(a.database_url().unwrap()),
        &hanging.uri(),
        |c| {
            c.node_id = "node-b".to_owned();
            c.dispatch.lease = Duration::from_secs(30);
            c.dispatch.breaker.failure_threshold = 1_000_000;
        },
    )
    .await;
    for n in 0..8 {
        let mut case = case(&format!("BRK-{n}"));
        case["matter"]["code"] = json!("TEST-SINGLE-0002");
        assert_eq!(a.submit(&case).await.status(), 202);
    }
    for (node, within) in [(&a, 20), (&b, 3)] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(within);
        loop {
            let r01 = node.system("R01").await;
            if r01["breaker"] == "open" {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "R01's breaker not open on {} within {within} s: {r01}",
                node.url
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    b.stop().await;
    a.stop().await;
}

/// Creates a login role with every right on the shared database, then runs `then` (with
/// `{role}` replaced); returns the role and the database URL that connects as it.
async fn node_role(
    conn: &mut sqlx::PgConnection,
    shared: &str,
    prefix: &str,
    then: &[&str],
) -> (String, String) {
    let role = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    let grants = [
        "CREATE ROLE {role} LOGIN",
        "GRANT USAGE, CREATE ON SCHEMA public TO {role}",
        "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO {role}",
    ];
    for statement in grants.iter().chain(then) {
        sqlx::query(&statement.replace("{role}", &role))
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    let mut url = url::Url::parse(shared).unwrap();
    url.set_username(&role).unwrap();
    (role, url.to_string())
}

/// Grants for [`node_role`]: claims and lease renewals work, receipts cannot be stored (until
/// `GRANT UPDATE ON deliveries` gives the rest back), so every outcome's write fails.
const NO_RECEIPTS: [&str; 2] = [
    "REVOKE UPDATE ON deliveries FROM {role}",
    "GRANT UPDATE (state, attempts, next_attempt_at, lease_owner, lease_expires_at, due_at, \
     attempt_started_at, last_outcome, last_error, last_excerpt, updated_at) \
     ON deliveries TO {role}",
];

/// Drops a role made by [`node_role`] and what it owns.
async fn drop_role(conn: &mut sqlx::PgConnection, role: &str) {
    for statement in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(&statement).execute(&mut *conn).await.unwrap();
    }
}

/// A node whose heartbeat can no longer be stored fences itself (claims nothing) before the
/// other nodes drop it and split the limits without it, and takes its share again once its
/// heartbeat is stored. Twice: refused (node B connects as a role of its own, and loses the
/// right to write the `nodes` table) and hanging (B's row in `nodes` is locked by another
/// transaction, so B's heartbeat waits). Everything else keeps working for B meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_store_its_heartbeat_fences_itself_until_it_can() {
    use sqlx::Connection;
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = MockServer::start().await;
    let lease = Duration::from_secs(3);
    let a = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |c| {
        c.node_id = "node-a".to_owned();
        c.dispatch.lease = lease;
    })
    .await;
    let shared = a.database_url().unwrap();
    let mut conn = sqlx::PgConnection::connect(&shared).await.unwrap();
    let (role, as_b) = node_role(&mut conn, &shared, "yimen_fence", &[]).await;
    let b = Hub::start_on(Backend::Shared(as_b), &lines.uri(), |c| {
        c.node_id = "node-b".to_owned();
        c.dispatch.lease = lease;
    })
    .await;
    // R01's share on A and on B.
    let shares = async || {
        let a = a.system("R01").await["share_here"].clone();
        let b = b.system("R01").await["share_here"].clone();
        (a, b)
    };
    // Waits until both nodes share R01; returns the sum of their parts.
    let both_share = async || {
        let deadline = tokio::time::Instant::now() + lease * 3;
        loop {
            let (sa, sb) = shares().await;
            if sa["nodes"] == 2 && sb["nodes"] == 2 && sb["fenced"] == false {
                return sa["max_in_flight"].as_u64().unwrap()
                    + sb["max_in_flight"].as_u64().unwrap();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "nodes not sharing R01: {sa} {sb}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Waits until A has all of R01, checking that B fenced itself no later.
    let b_fences_first = async |whole: u64| {
        let deadline = tokio::time::Instant::now() + lease * 3;
        let mut b_fenced = false;
        loop {
            let (sa, sb) = shares().await;
            if sb["fenced"] == true {
                b_fenced = true;
                assert_eq!(sb["max_in_flight"], 0, "a fenced node claims nothing: {sb}");
            }
            if sa["nodes"] == 1 {
                assert!(
                    b_fenced,
                    "A took all of R01 while B still held a part: {sb}"
                );
                assert_eq!(sa["max_in_flight"], whole, "{sa}");
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "B not dropped: {sa} {sb}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    let whole = both_share().await;

    // Refused: B's heartbeat fails at once.
    sqlx::query(&format!(
        "REVOKE INSERT, UPDATE, DELETE ON nodes FROM {role}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    b_fences_first(whole).await;
    sqlx::query(&format!("GRANT INSERT, UPDATE, DELETE ON nodes TO {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(both_share().await, whole);

    // Hanging: B's heartbeat waits for a row lock held elsewhere.
    let mut hold = sqlx::PgConnection::connect(&shared).await.unwrap();
    let mut lock = hold.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM nodes WHERE node_id = 'node-b' FOR UPDATE")
        .execute(&mut *lock)
        .await
        .unwrap();
    b_fences_first(whole).await;
    lock.rollback().await.unwrap();
    assert_eq!(both_share().await, whole);

    b.stop().await;
    drop_role(&mut conn, &role).await;
    conn.close().await.unwrap();
    hold.close().await.unwrap();
    a.stop().await;
}

/// An outcome whose write fails for a moment is written again while the lease is still held:
/// the delivery is recorded delivered within seconds, not after its lease expired. The node
/// connects as a role of its own that may not store receipts until the line systems have the
/// document; the lease is a minute, longer than the test waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outcome_whose_write_failed_is_written_again_while_the_lease_holds() {
    use sqlx::Connection;
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = serve_support::answering_lines("RETRY").await;
    // A creates the database and sends nothing; B, as the role, does the work.
    let a = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |c| {
        c.dispatch.enabled = false;
    })
    .await;
    let shared = a.database_url().unwrap();
    let mut conn = sqlx::PgConnection::connect(&shared).await.unwrap();
    // Claims and lease renewals still work; a receipt cannot be stored.
    let (role, as_b) = node_role(&mut conn, &shared, "yimen_retry", &NO_RECEIPTS).await;
    let b = Hub::start_on(Backend::Shared(as_b), &lines.uri(), |c| {
        c.node_id = "node-b".to_owned();
        c.dispatch.lease = Duration::from_secs(60);
    })
    .await;

    let response = b.submit(&case("RETRY-1")).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    let id = body["case_id"].as_str().unwrap().to_owned();
    // Both line systems have the document; its outcome cannot be written yet.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while lines.received_requests().await.unwrap_or_default().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "nothing sent");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, held) = b.get(&format!("/v1/cases/{id}")).await;
    for target in held["targets"].as_array().unwrap() {
        assert_eq!(
            target["state"], "sending",
            "recorded while refused: {held:#}"
        );
    }
    sqlx::query(&format!("GRANT UPDATE ON deliveries TO {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let delivered = b.until_targets(&id, "delivered").await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "recorded only after {:?}",
        started.elapsed()
    );
    for target in delivered["targets"].as_array().unwrap() {
        assert_eq!(target["attempts"], 1, "sent once: {delivered:#}");
    }
    assert_eq!(lines.received_requests().await.unwrap().len(), 2);

    b.stop().await;
    drop_role(&mut conn, &role).await;
    conn.close().await.unwrap();
    a.stop().await;
}

/// A delivery keeps its place in the claim window until its outcome is recorded. While the
/// store refuses a node's outcomes, the node sends one window's worth (R01: 4 in flight plus
/// 4 claimed ahead) and then waits, instead of claiming and sending the whole backlog with
/// nothing recorded and every lease still to renew. Once the outcomes can be written,
/// everything is delivered, each case sent once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_that_cannot_be_recorded_hold_the_claim_window() {
    use sqlx::Connection;
    const CASES: usize = 40;
    const WINDOW: usize = 8;
    let Some(admin) = postgres_admin().await else {
        eprintln!("no PostgreSQL server answers; skipping (set YIMEN_TEST_DATABASE_URL)");
        return;
    };
    let lines = serve_support::answering_lines("WINDOW").await;
    // A creates the database and takes the cases without sending them.
    let a = Hub::start_on(Backend::Postgres(admin), &lines.uri(), |c| {
        c.dispatch.enabled = false;
    })
    .await;
    for i in 0..CASES {
        let mut single = case(&format!("WINDOW-{i}"));
        single["matter"]["code"] = json!("TEST-SINGLE-0002");
        assert_eq!(a.submit(&single).await.status(), 202);
    }
    let shared = a.database_url().unwrap();
    let mut conn = sqlx::PgConnection::connect(&shared).await.unwrap();
    // Claims and lease renewals work; a receipt cannot be stored.
    let (role, as_b) = node_role(&mut conn, &shared, "yimen_window", &NO_RECEIPTS).await;
    let b = Hub::start_on(Backend::Shared(as_b), &lines.uri(), |c| {
        c.node_id = "node-b".to_owned();
        c.dispatch.lease = Duration::from_secs(60);
        c.dispatch.claim_ahead = WINDOW - 4;
    })
    .await;

    let sent = || async { lines.received_requests().await.unwrap_or_default().len() };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sent().await < WINDOW {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the window not sent"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // The first outcomes are tried again after 0.2 s and 1 s, and given up only after 4 s.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        sent().await,
        WINDOW,
        "sent past the window with nothing recorded"
    );

    sqlx::query(&format!("GRANT UPDATE ON deliveries TO {role}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r01 = b.system("R01").await;
        if r01["delivered"] == CASES {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all delivered: {r01}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(sent().await, CASES, "each case sent once");

    b.stop().await;
    drop_role(&mut conn, &role).await;
    conn.close().await.unwrap();
    a.stop().await;
}
