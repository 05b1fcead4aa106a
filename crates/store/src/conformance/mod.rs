//! The conformance suite: one set of test functions, each taking `&dyn Store`, run against
//! every backend: SQLite in a temporary directory and PostgreSQL in a fresh schema (skipped,
//! with a note, when `WAYMARK_TEST_DATABASE_URL` is not set; see `postgres::test_support`).
//! A behaviour the engine relies on is tested here once, so both backends keep it alike.
//!
//! Each file lists its tests in `conformance_tests!`, which makes `on_sqlite::<test>` and
//! `on_postgres::<test>` of every one.

/// Makes, for each listed function `fn(&dyn Store)`, one test per backend.
macro_rules! conformance_tests {
    ($($test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $test() {
                    let dir = crate::sqlite::test_support::TempDir::new(stringify!($test));
                    let store = crate::sqlite::SqliteStore::open(&dir.0).expect("open SQLite");
                    super::$test(&store);
                }
            )*
        }

        mod on_postgres {
            $(
                #[test]
                fn $test() {
                    if let Some(db) = crate::postgres::test_support::TestDatabase::create(stringify!($test)) {
                        super::$test(&db.open());
                    }
                }
            )*
        }
    };
}

mod support;

mod audiences;
mod broadcasts;
mod consent;
mod contacts;
mod enrollments;
mod events;
mod experiments;
mod journeys;
mod meta;
mod outbox;
mod privacy;
mod read_ahead;
mod reporting;
mod templates;
mod timers;
