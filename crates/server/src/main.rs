//! The `waymark` binary: a thin entry point that parses the command line and reports which
//! command failed and why.

use clap::{CommandFactory, Parser, Subcommand};
use waymark::{bench, cli, config_file, migrate, serve, simulate};

#[derive(Parser)]
#[command(
    name = "waymark",
    version,
    about = "Self-hosted marketing automation: journeys, email and SMS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: tracking API, management API and the journey engine.
    Serve(Box<serve::ServeArgs>),
    /// Validate journey files or deploy them to a running server.
    #[command(subcommand)]
    Journeys(cli::JourneysCommand),
    /// Import data into a running server.
    #[command(subcommand)]
    Import(cli::ImportCommand),
    /// Work on the outbox of a running server.
    #[command(subcommand)]
    Messages(cli::MessagesCommand),
    /// Export or erase a contact's data on a running server (data-protection requests).
    #[command(subcommand)]
    Contacts(cli::ContactsCommand),
    /// Save, send, follow, pause, resume or cancel broadcasts on a running server.
    #[command(subcommand)]
    Broadcasts(cli::broadcasts::BroadcastsCommand),
    /// Move an installation from its SQLite file to PostgreSQL: copies every row, ids kept,
    /// into an empty database, then prints the row counts of both.
    Migrate(migrate::MigrateArgs),
    /// Predict what a journey will do: run it on a population for a period on a private
    /// simulated clock (nothing is sent, live data is untouched) and print the funnel,
    /// messages per day, suppressions, conversions and the busiest hour as JSON.
    Simulate(Box<simulate::SimulateArgs>),
    /// Measure ingest, stepping, latency and timer capacity; prints one JSON line per figure.
    Bench(bench::BenchArgs),
    /// Print the OpenAPI document the server serves at /v1/openapi.json (the web app's API
    /// types are generated from it).
    Openapi,
}

fn main() -> std::process::ExitCode {
    let command = Cli::command();
    let serve = command.find_subcommand("serve").expect("serve subcommand");
    let argv = match config_file::expand(std::env::args_os().collect(), serve) {
        Ok(argv) => argv,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let cli = Cli::parse_from(argv);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,waymark=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await.map(|_| true),
            Command::Journeys(cmd) => cli::journeys(cmd).await,
            Command::Import(cmd) => cli::import(cmd).await,
            Command::Messages(cmd) => cli::messages(cmd).await,
            Command::Contacts(cmd) => cli::contacts(cmd).await,
            Command::Broadcasts(cmd) => cli::broadcasts::run(cmd).await,
            Command::Migrate(args) => migrate::run(args).await,
            Command::Simulate(args) => simulate::run(*args).await,
            Command::Bench(args) => bench::run(args).await.map(|_| true),
            Command::Openapi => {
                let doc = waymark::api::openapi::document();
                println!("{}", serde_json::to_string_pretty(&doc)?);
                Ok(true)
            }
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
