//! `berth tag rm`, `berth rm`, `berth repo rm` and `berth gc`: clap verbs over the
//! `delete` and `gc` modules.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::bail;
use berth_core::store::Store;
use berth_core::{ImageRef, Reference, Repository};
use berth_publisher::access_admin::parse_duration;
use berth_publisher::delete;
use berth_publisher::gc::{self, GcOptions};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum TagCommand {
    /// Remove tags (REPO:TAG...); the images stay until `berth gc` finds them unreachable.
    Rm {
        #[arg(required = true)]
        tags: Vec<String>,
    },
}

#[derive(Args)]
pub struct RmArgs {
    /// The manifest to remove, as REPO@DIGEST.
    manifest: String,
    /// Remove it even while tags or indexes reference it (the tags pointing at it go too).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct RepoRmArgs {
    repository: String,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
}

#[derive(Args)]
pub struct GcArgs {
    /// List what would be removed, with sizes, and remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep unreachable objects younger than this (e.g. 30s, 1h); never shorter than
    /// the longest publish (docs/gc.md).
    #[arg(long, env = "BERTH_GC_GRACE", default_value = "1h")]
    grace: String,
    /// Print one JSON report on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn tag(store: &dyn Store, command: TagCommand) -> anyhow::Result<()> {
    let TagCommand::Rm { tags } = command;
    let mut parsed = Vec::new();
    for text in &tags {
        let image: ImageRef = text.parse()?;
        let Reference::Tag(tag) = image.reference else {
            bail!("{text} names a digest: remove manifests with `berth rm REPO@DIGEST`");
        };
        if !text.contains(':') {
            bail!("{text} names no tag: write REPO:TAG");
        }
        parsed.push((image.repository, tag));
    }
    delete::remove_tags(store, &parsed).await?;
    for (repository, tag) in parsed {
        eprintln!("removed tag {repository}:{tag}");
    }
    Ok(())
}

pub async fn rm(store: &dyn Store, args: RmArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.manifest.parse()?;
    let Reference::Digest(digest) = image.reference else {
        bail!(
            "{} is not REPO@DIGEST: remove tags with `berth tag rm`",
            args.manifest
        );
    };
    let removed = delete::remove_manifest(store, &image.repository, &digest, args.force).await?;
    for tag in &removed.tags {
        eprintln!("removed tag {}:{tag}", image.repository);
    }
    for index in &removed.dangling {
        eprintln!("warning: index {} {index} still lists it", image.repository);
    }
    eprintln!("removed {}@{digest}", image.repository);
    Ok(())
}

pub async fn repo_rm(store: &dyn Store, args: RepoRmArgs) -> anyhow::Result<()> {
    let repository: Repository = args.repository.parse()?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            bail!("refusing to remove repository {repository} without confirmation: pass --yes");
        }
        eprint!("Remove repository {repository}, all its tags, manifests and blobs? [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("not removed: confirmation declined");
        }
    }
    let objects = delete::remove_repository(store, &repository).await?;
    eprintln!("removed repository {repository} ({objects} objects)");
    Ok(())
}

pub async fn gc(store: &dyn Store, args: GcArgs) -> anyhow::Result<()> {
    let options = GcOptions {
        grace: parse_duration(&args.grace)?,
        dry_run: args.dry_run,
    };
    let report = gc::collect(store, &options).await?;
    for skipped in &report.skipped {
        eprintln!("warning: left alone: {skipped}");
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for object in &report.removed {
        println!(
            "{verb} {} ({})",
            object.key,
            indicatif::HumanBytes(object.bytes)
        );
    }
    println!(
        "{verb} {} manifests and {} blobs: {} objects, {} ({} bytes); kept {} unreachable younger than {}",
        report.manifests,
        report.blobs,
        report.objects,
        indicatif::HumanBytes(report.bytes),
        report.bytes,
        report.kept_recent,
        args.grace
    );
    Ok(())
}
