//! `berth`: publish images into a berth store. Thin clap verbs over the library.

mod access_commands;
mod lifecycle_commands;
mod publish_commands;
mod signing_commands;
mod site_commands;
mod webhook_commands;

use std::process::ExitCode;

use berth_core::store::{S3Options, StoreArgs};
use berth_registry::ServeArgs;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container registry that lives in a bucket"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    upload: UploadArgs,
    #[command(subcommand)]
    command: Command,
}

/// Upload tuning; `push`, `copy` and `sign` use it.
#[derive(Args)]
pub struct UploadArgs {
    /// Blobs and upload parts in flight at once.
    #[arg(long, env = "BERTH_JOBS", default_value_t = 8, global = true)]
    jobs: usize,
    /// Multipart part size in MiB for S3 uploads (blobs up to this size go in one PUT).
    #[arg(long, env = "BERTH_PART_SIZE_MIB", default_value_t = 16, global = true)]
    part_size_mib: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Publish an image from a docker save tarball, an OCI layout or the Docker engine.
    Push(publish_commands::PushArgs),
    /// Copy an image from another registry (docker://HOST/NAME:TAG) into the store.
    Copy(publish_commands::CopyArgs),
    /// Serve the store as a registry (the read API) on a local port.
    Serve(ServeArgs),
    /// Manage users (who may log in).
    #[command(subcommand)]
    User(access_commands::UserCommand),
    /// Manage access tokens (passwords for CI).
    #[command(subcommand)]
    Token(access_commands::TokenCommand),
    /// Manage organisations (namespaces for teams).
    #[command(subcommand)]
    Org(access_commands::OrgCommand),
    /// Manage teams and what they may pull.
    #[command(subcommand)]
    Team(access_commands::TeamCommand),
    /// Make repositories public or private, or remove one.
    #[command(subcommand)]
    Repo(access_commands::RepoCommand),
    /// Remove tags.
    #[command(subcommand)]
    Tag(lifecycle_commands::TagCommand),
    /// Remove a manifest by digest (REPO@DIGEST).
    Rm(lifecycle_commands::RmArgs),
    /// Remove manifests and blobs no tag reaches; safe while others publish.
    Gc(lifecycle_commands::GcArgs),
    /// Inspect the access configuration.
    #[command(subcommand)]
    Access(access_commands::AccessCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Key(signing_commands::KeyCommand),
    /// Sign an image (cosign's format): adds a signature to its `sha256-<hex>.sig` tag.
    Sign(signing_commands::SignArgs),
    /// Check that an image has a signature made with a key.
    Verify(signing_commands::VerifyArgs),
    /// Manage webhooks: URLs told about every publish to matching repositories.
    #[command(subcommand)]
    Webhook(webhook_commands::WebhookCommand),
    /// The catalog site the store serves (index.html, r/<repo>/).
    #[command(subcommand)]
    Site(site_commands::SiteCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    berth_registry::server::init_logging();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store = &cli.store;
    match cli.command {
        Command::Push(args) => publish_commands::push(store, &cli.upload, args).await,
        Command::Copy(args) => publish_commands::copy(store, &cli.upload, args).await,
        Command::Serve(args) => Ok(berth_registry::server::run(store, &args).await?),
        Command::User(c) => access_commands::user(&*open(store).await?, c).await,
        Command::Token(c) => access_commands::token(&*open(store).await?, c).await,
        Command::Org(c) => access_commands::org(&*open(store).await?, c).await,
        Command::Team(c) => access_commands::team(&*open(store).await?, c).await,
        Command::Repo(c) => access_commands::repo(&*open(store).await?, c).await,
        Command::Tag(c) => lifecycle_commands::tag(&*open(store).await?, c).await,
        Command::Rm(args) => lifecycle_commands::rm(&*open(store).await?, args).await,
        Command::Gc(args) => lifecycle_commands::gc(&*open(store).await?, args).await,
        Command::Access(c) => access_commands::access(&*open(store).await?, c).await,
        Command::Key(c) => signing_commands::key(c),
        Command::Sign(args) => {
            signing_commands::sign(&*open(store).await?, cli.upload.jobs, args).await
        }
        Command::Verify(args) => signing_commands::verify(&*open(store).await?, args).await,
        Command::Webhook(c) => webhook_commands::webhook(&*open(store).await?, c).await,
        Command::Site(c) => site_commands::site(&*open(store).await?, c).await,
    }
}

async fn open(store: &StoreArgs) -> anyhow::Result<std::sync::Arc<dyn berth_core::store::Store>> {
    Ok(store.open(S3Options::default()).await?)
}
