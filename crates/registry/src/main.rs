//! `berth-registry`: the registry function, for Lambda or a local port.

use std::process::ExitCode;

use berth_core::store::StoreArgs;
use berth_registry::ServeArgs;
use berth_registry::server::{init_logging, run};
use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth-registry",
    version,
    about = "Serve a berth store as a registry (read API)"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    serve: ServeArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match run(&cli.store, &cli.serve).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
