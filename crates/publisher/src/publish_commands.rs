//! `berth push` and `berth copy`: an image from a local source or another registry,
//! published into the store, webhooks told, a summary (or `--json`) printed.

use std::path::PathBuf;
use std::sync::Arc;

use berth_core::store::{S3Options, Store, StoreArgs, StoreError};
use berth_core::{ImageRef, Reference, Repository, Tag};
use berth_publisher::copy::{self, CopyReport};
use berth_publisher::platform::Platform;
use berth_publisher::source::registry::RemoteOptions;
use berth_publisher::{PublishError, PublishOptions, PublishReport, observer, publish, source};
use clap::Args;
use serde::Serialize;

use crate::UploadArgs;
use crate::webhook_commands::{self, NotifyArgs};

#[derive(Args)]
pub struct PushArgs {
    /// docker save tarball, OCI layout (dir or tar), or prefixed:
    /// docker-archive:PATH, oci:PATH[:REF], docker-daemon:IMAGE.
    source: String,
    #[command(flatten)]
    target: TargetArgs,
}

#[derive(Args)]
pub struct CopyArgs {
    /// The image on another registry: docker://HOST/NAME:TAG or docker://HOST/NAME@DIGEST.
    /// Credentials come from the docker config (`docker login`).
    source: String,
    #[command(flatten)]
    target: TargetArgs,
    /// Copy only this platform's image out of an index (OS/ARCH[/VARIANT]).
    #[arg(long, value_parser = platform, conflicts_with = "all_platforms")]
    platform: Option<Platform>,
    /// Copy an index with every platform's image (the default).
    #[arg(long)]
    all_platforms: bool,
    /// Reach the source registry over plain HTTP (registries on this machine always are).
    #[arg(long)]
    plain_http: bool,
    /// Where downloads wait until they are in the store; an interrupted copy resumes
    /// from here (default: ~/.cache/berth/copy).
    #[arg(long, env = "BERTH_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

/// Where a push or copy lands and how it reports.
#[derive(Args)]
struct TargetArgs {
    /// Destination repository and tag, e.g. acme/web:v1 (tag defaults to latest).
    target: String,
    /// Further tags to point at the same image.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Print one JSON object describing the result on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    notify: NotifyArgs,
}

fn platform(text: &str) -> Result<Platform, String> {
    text.parse()
}

impl TargetArgs {
    /// The repository and its tags, checked before anything is read or written.
    fn parse(&self, verb: &str) -> anyhow::Result<(Repository, Vec<Tag>)> {
        let target: ImageRef = self.target.parse()?;
        let Reference::Tag(first) = target.reference else {
            anyhow::bail!("{verb} needs REPO:TAG, not a digest: the digest comes from the image");
        };
        let mut tags = vec![first];
        for tag in &self.tags {
            let tag: Tag = tag.parse()?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok((target.repository, tags))
    }
}

pub async fn push(
    store_args: &StoreArgs,
    upload: &UploadArgs,
    args: PushArgs,
) -> anyhow::Result<()> {
    let (repository, tags) = args.target.parse("push")?;
    let store = open_for_upload(store_args, upload).await?;
    let bundle = source::open(&args.source).await?;
    let observer = observer::for_stderr();
    let mut report = publish(
        &*store,
        &bundle,
        &repository,
        &tags,
        &PublishOptions { jobs: upload.jobs },
        &*observer,
    )
    .await
    .map_err(|e| publish_failed(&*store, "push", e))?;
    report.webhooks = webhook_commands::notify(&*store, &report, &args.target.notify).await;
    print(&args.target, &report, &report)
}

pub async fn copy(
    store_args: &StoreArgs,
    upload: &UploadArgs,
    args: CopyArgs,
) -> anyhow::Result<()> {
    let (repository, tags) = args.target.parse("copy")?;
    let store = open_for_upload(store_args, upload).await?;
    let remote = RemoteOptions {
        platform: args.platform,
        plain_http: args.plain_http,
        cache_dir: args.cache_dir.unwrap_or_else(copy::default_cache_dir),
    };
    let observer = observer::for_stderr();
    let mut report: CopyReport = copy::copy(
        &*store,
        &args.source,
        &remote,
        &repository,
        &tags,
        &PublishOptions { jobs: upload.jobs },
        &*observer,
    )
    .await
    .map_err(|e| match e {
        PublishError::Store(StoreError::S3 { .. }) => publish_failed(&*store, "copy", e),
        e => e.into(),
    })?;
    report.publish.webhooks =
        webhook_commands::notify(&*store, &report.publish, &args.target.notify).await;
    print(&args.target, &report, &report.publish)
}

/// A failed publish, saying what to do when the store itself kept failing: publish
/// order leaves every tag naming a complete image, so running `verb` again is safe.
fn publish_failed(store: &dyn Store, verb: &str, error: PublishError) -> anyhow::Error {
    let failed = format!("publishing to {} failed", store.location());
    match error {
        PublishError::Store(StoreError::S3 { .. }) => anyhow::anyhow!(
            "{failed}: {error} (every tag still names a complete image: check the bucket \
             and its credentials, then run the {verb} again)"
        ),
        _ => anyhow::Error::new(error).context(failed),
    }
}

async fn open_for_upload(store: &StoreArgs, upload: &UploadArgs) -> anyhow::Result<Arc<dyn Store>> {
    Ok(store
        .open(S3Options {
            jobs: upload.jobs,
            part_size: upload.part_size_mib << 20,
            ..S3Options::default()
        })
        .await?)
}

/// `--json`: the whole report; otherwise one summary line.
fn print(target: &TargetArgs, json: &impl Serialize, report: &PublishReport) -> anyhow::Result<()> {
    if target.json {
        println!("{}", serde_json::to_string(json)?);
    } else {
        println!(
            "{}@{}: {} blobs uploaded ({}), {} already present, {} reused",
            report.repository,
            report.digest,
            report.blobs_uploaded,
            indicatif::HumanBytes(report.bytes_uploaded),
            report.blobs_skipped,
            report.blobs_copied
        );
    }
    Ok(())
}
