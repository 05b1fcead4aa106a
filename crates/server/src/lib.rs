//! The Waymark server: the HTTP API around the engine, and the command-line tools.

pub mod api;
pub mod bench;
pub mod cli;
pub mod config_file;
pub mod connections;
pub mod import;
pub mod migrate;
pub mod secrets;
pub mod serve;
pub mod session;
pub mod simulate;
pub mod ui;
