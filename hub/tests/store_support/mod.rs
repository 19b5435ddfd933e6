//! Test support for the store suites: a fresh store per test on SQLite (temp folder) or
//! PostgreSQL (a fresh database `yimen_test_<uuid>`, dropped afterwards even when the test
//! panics), and case builders.

#![allow(dead_code)]

use std::sync::Arc;

use jiff::Timestamp;
use sqlx::Connection;
use yimen_hub::store::{
    NewCase, NewDelivery, NewMaterial, PostgresStore, SqliteStore, Store, StoredPayload,
};

/// The maintenance URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("YIMEN_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// One test's store, on either backend.
pub struct TestDb {
    /// The store the test uses.
    pub store: Arc<dyn Store>,
    /// SQLite: the data folder.
    pub dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the database URL and name.
    pub pg: Option<(String, String)>,
}

impl TestDb {
    /// A fresh SQLite store in a temp folder.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        Self {
            store,
            dir: Some(dir),
            pg: None,
        }
    }

    /// A fresh PostgreSQL database.
    pub async fn postgres() -> Self {
        let admin = pg_admin_url();
        let name = format!("yimen_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&name);
        let store = Arc::new(PostgresStore::connect_with(url.as_str(), 8).await.unwrap());
        Self {
            store,
            dir: None,
            pg: Some((url.to_string(), name)),
        }
    }

    /// Another node on the same database (PostgreSQL: its own pool; SQLite: the same store,
    /// since one SQLite file has one writer).
    pub async fn node(&self) -> Arc<dyn Store> {
        match &self.pg {
            Some((url, _)) => Arc::new(PostgresStore::connect_with(url, 4).await.unwrap()),
            None => self.store.clone(),
        }
    }

    /// Opens the same database again through the public entry points (a restart or another
    /// node), running the migrator again.
    pub async fn open_again(&self) -> Arc<dyn Store> {
        match (&self.dir, &self.pg) {
            (Some(dir), _) => yimen_hub::store::open_sqlite(dir.path()).await.unwrap(),
            (None, Some((url, _))) => yimen_hub::store::open_postgres(url).await.unwrap(),
            (None, None) => unreachable!("a test store is on one backend"),
        }
    }
}

impl TestDb {
    /// Makes the database refuse (raise an error at) any update that gives a delivery the
    /// receipt number `number`: a stand-in for whatever a database may refuse in one row.
    pub async fn refuse_receipt(&self, number: &str) {
        match (&self.dir, &self.pg) {
            (Some(dir), _) => {
                let url = format!("sqlite://{}", dir.path().join("yimen.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(&format!(
                    "CREATE TRIGGER refuse_receipt BEFORE UPDATE ON deliveries
                     WHEN NEW.receipt_number = '{number}'
                     BEGIN SELECT RAISE(ABORT, 'receipt {number} refused'); END"
                ))
                .execute(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
            }
            (None, Some((url, _))) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::raw_sql(&format!(
                    "CREATE FUNCTION refuse_receipt() RETURNS trigger AS $$
                     BEGIN
                         IF NEW.receipt_number = '{number}' THEN
                             RAISE EXCEPTION 'receipt {number} refused';
                         END IF;
                         RETURN NEW;
                     END $$ LANGUAGE plpgsql;
                     CREATE TRIGGER refuse_receipt BEFORE UPDATE ON deliveries
                     FOR EACH ROW EXECUTE FUNCTION refuse_receipt();"
                ))
                .execute(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
            }
            (None, None) => unreachable!("a test store is on one backend"),
        }
    }
}

impl TestDb {
    /// The indexes of table `table` as `name(column, …)`, sorted; a constraint's index is named
    /// `primary` or `unique`.
    pub async fn indexes(&self, table: &str) -> Vec<String> {
        // (name, primary, unique, columns)
        let rows: Vec<(String, bool, bool, String)> = match (&self.dir, &self.pg) {
            (Some(dir), _) => {
                let url = format!("sqlite://{}", dir.path().join("yimen.db").display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let rows = sqlx::query_as(
                    "SELECT l.name, l.origin = 'pk', l.origin = 'u', group_concat(i.name, ', ')
                     FROM pragma_index_list(?1) l, pragma_index_info(l.name) i
                     GROUP BY l.name, l.origin",
                )
                .bind(table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
                rows
            }
            (None, Some((url, _))) => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let rows = sqlx::query_as(
                    "SELECT c.relname, x.indisprimary, x.indisunique,
                            string_agg(a.attname, ', ' ORDER BY k.n)
                     FROM pg_index x
                     JOIN pg_class c ON c.oid = x.indexrelid
                     CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n)
                     JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                     WHERE x.indrelid = $1::regclass
                     GROUP BY c.relname, x.indisunique, x.indisprimary",
                )
                .bind(table)
                .fetch_all(&mut conn)
                .await
                .unwrap();
                conn.close().await.unwrap();
                rows
            }
            (None, None) => unreachable!("a test store is on one backend"),
        };
        let mut found: Vec<String> = rows
            .into_iter()
            .map(|(name, primary, unique, columns)| {
                let name = match (primary, unique) {
                    (true, _) => "primary".to_owned(),
                    (false, true) => "unique".to_owned(),
                    (false, false) => name,
                };
                format!("{name}({columns})")
            })
            .collect();
        found.sort();
        found
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((_, name)) = self.pg.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Drop the database from a thread of its own: Drop cannot await, and the test's
        // runtime may be gone (a panic) or busy.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let Ok(runtime) = runtime else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&drop).execute(&mut conn).await;
                }
            });
        });
        let _ = dropper.join();
    }
}

/// The newest shipped migration version (both backends ship the same versions).
pub fn latest_version() -> i64 {
    let sqlite = yimen_hub::store::SQLITE_MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    let postgres = yimen_hub::store::POSTGRES_MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap();
    assert_eq!(
        sqlite, postgres,
        "both backends ship the same migration versions"
    );
    sqlite
}

/// A fixed starting time, so tests control the clock; after any real intake time (intake
/// stamps cases with the wall clock, and they are due at once).
pub fn t0() -> Timestamp {
    "2035-03-02T01:00:00Z".parse().unwrap()
}

/// `t0` plus seconds.
pub fn at(seconds: i64) -> Timestamp {
    t0() + jiff::SignedDuration::from_secs(seconds)
}

/// A payload for one line system.
pub fn payload(system: &str) -> StoredPayload {
    StoredPayload {
        mapping_version: "1.0.0".to_owned(),
        content_type: "application/xml; charset=UTF-8".to_owned(),
        extension: "xml".to_owned(),
        body: format!("<doc system=\"{system}\"/>").into_bytes(),
        fields: vec![("name".to_owned(), "张三".to_owned())],
    }
}

/// A natural-person case with `number`, targeting `systems`.
pub fn case(number: &str, systems: &[&str]) -> NewCase {
    case_with(number, "110101199003071234", systems)
}

/// A case with an explicit applicant ID number.
pub fn case_with(number: &str, id_number: &str, systems: &[&str]) -> NewCase {
    let json = serde_json::json!({
        "case_number": number,
        "applicant": { "kind": "natural", "id_number": id_number },
        "form": { "purpose": "test" },
    });
    let mut case = NewCase::new("platform", number, json);
    case.applicant_id_number = Some(id_number.to_owned());
    case.materials = vec![NewMaterial {
        name: "id-card".to_owned(),
        sha256: "ab".repeat(32),
        size: 1024,
        media_type: "image/png".to_owned(),
        path: format!("materials/{number}/id-card.png"),
    }];
    case.targets = systems
        .iter()
        .map(|system| NewDelivery {
            system_id: (*system).to_owned(),
            payload: payload(system),
        })
        .collect();
    case
}

/// Runs every listed async test fn (taking `&TestDb`) against both backends.
#[macro_export]
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::store_support::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::store_support::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            )*
        }
    };
}
