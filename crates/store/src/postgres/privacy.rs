//! Exporting and erasing a contact on PostgreSQL (see `sqlite::privacy` for what is kept).
//!
//! Being ported from the SQLite backend, one concern at a time.
#![allow(unused_imports, dead_code)]
