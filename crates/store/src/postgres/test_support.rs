//! A fresh PostgreSQL schema per test, in the database named by `WAYMARK_TEST_DATABASE_URL`.
//!
//! Without that variable the PostgreSQL tests skip (and say so), so that `cargo test` works on
//! a machine with no PostgreSQL; with `WAYMARK_TEST_REQUIRE_POSTGRES=1` (CI) a missing or
//! unreachable database fails them instead.

use std::sync::atomic::{AtomicU64, Ordering};

use ::postgres::{Client, NoTls};

use super::PgStore;

pub(crate) struct TestDatabase {
    base_url: String,
    schema: String,
}

impl TestDatabase {
    /// A new empty schema, or `None` when PostgreSQL tests are not configured here.
    pub(crate) fn create(name: &str) -> Option<TestDatabase> {
        let required = std::env::var_os("WAYMARK_TEST_REQUIRE_POSTGRES").is_some();
        let Some(base_url) = std::env::var("WAYMARK_TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            assert!(
                !required,
                "WAYMARK_TEST_REQUIRE_POSTGRES is set but WAYMARK_TEST_DATABASE_URL is not"
            );
            eprintln!(
                "skipped on PostgreSQL: set WAYMARK_TEST_DATABASE_URL=postgres://... to run it"
            );
            return None;
        };
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let schema = format!(
            "waymark_test_{}_{}_{}",
            name.to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .take(24)
                .collect::<String>(),
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut client = Client::connect(&base_url, NoTls)
            .unwrap_or_else(|e| panic!("cannot connect to WAYMARK_TEST_DATABASE_URL: {e}"));
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"
            ))
            .expect("create the test schema");
        Some(TestDatabase { base_url, schema })
    }

    /// A URL whose connections use this schema.
    pub(crate) fn url(&self) -> String {
        super::inspect::schema_url(&self.base_url, &self.schema)
    }

    pub(crate) fn open(&self) -> PgStore {
        PgStore::open(&self.url()).expect("open the test schema")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.base_url, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}
