//! The baseline `scripts/bench publish` compares `berth push` against: the same files
//! PUT into the same bucket with the same S3 client (built by `S3Store::connect`, so
//! the settings are berth's own), the same part size, the same multipart threshold and
//! the same concurrency (files at once, and a bucket-wide cap of `--jobs` parts in
//! flight), but with no hashing and no verification: a raw multipart upload per file.
//!
//! ```text
//! cargo run --release -p berth-publisher --example s3_put_baseline -- \
//!     --bucket berth-test --prefix bench-base FILE...
//! cargo run --release -p berth-publisher --example s3_put_baseline -- \
//!     --bucket berth-test --prefix bench- --delete
//! ```
//!
//! Each file goes to `PREFIX/<file name>`. Prints one JSON line: bytes, seconds
//! (from the first request to the last response), MB/s. `--delete` instead removes
//! every object whose key starts with `PREFIX` (no '/' added), to clean up after a run.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use berth_core::digest::Hasher;
use berth_core::store::{S3Options, S3Store};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

#[derive(Parser)]
struct Args {
    #[arg(long, env = "BERTH_TEST_BUCKET")]
    bucket: String,
    /// Key prefix; objects are written under `PREFIX/`.
    #[arg(long)]
    prefix: String,
    /// Parts in flight at once, bucket-wide (berth's `--jobs`); also files at once.
    #[arg(long, default_value_t = 8)]
    jobs: usize,
    /// Multipart part size in MiB; files up to this size go in one PUT.
    #[arg(long, default_value_t = 16)]
    part_size_mib: u64,
    /// Send `x-amz-content-sha256: UNSIGNED-PAYLOAD` instead of the body's SHA-256,
    /// sparing the client and the server a hash of every byte (not what berth does).
    #[arg(long)]
    unsigned_payload: bool,
    /// Diagnostic: also SHA-256 each file while reading it, as berth does; with a part's
    /// upload permit held (berth's order) or before taking it.
    #[arg(long, value_enum, default_value_t = HashMode::None)]
    hash: HashMode,
    /// Delete every object whose key starts with PREFIX, then exit.
    #[arg(long)]
    delete: bool,
    files: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HashMode {
    None,
    InPermit,
    BeforePermit,
}

struct Uploader {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: u64,
    permits: Arc<Semaphore>,
    unsigned_payload: bool,
    hash: HashMode,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let options = S3Options {
        jobs: args.jobs,
        part_size: args.part_size_mib << 20,
        ..S3Options::default()
    };
    // Only the client is used: it carries exactly the configuration berth runs with.
    let store = S3Store::connect(&args.bucket, "", options).await;
    let client = store.client().clone();
    if args.delete {
        let deleted = delete_prefix(&client, &args.bucket, &args.prefix).await?;
        println!("{{\"deleted\":{deleted}}}");
        return Ok(());
    }
    if args.files.is_empty() {
        bail!("no files to upload");
    }
    let uploader = Arc::new(Uploader {
        client,
        bucket: args.bucket,
        prefix: args.prefix.trim_end_matches('/').to_owned(),
        part_size: (args.part_size_mib << 20).max(5 << 20),
        permits: Arc::new(Semaphore::new(args.jobs.max(1))),
        unsigned_payload: args.unsigned_payload,
        hash: args.hash,
    });
    let start = Instant::now();
    let bytes: u64 = stream::iter(&args.files)
        .map(|path| uploader.clone().upload(path))
        .buffer_unordered(args.jobs.max(1))
        .try_fold(0, |total, len| async move { Ok(total + len) })
        .await?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{{\"bytes\":{bytes},\"seconds\":{seconds:.3},\"mb_per_s\":{:.1}}}",
        bytes as f64 / 1e6 / seconds
    );
    Ok(())
}

impl Uploader {
    async fn upload(self: Arc<Self>, path: &PathBuf) -> anyhow::Result<u64> {
        let name = path
            .file_name()
            .context("file has no name")?
            .to_string_lossy();
        let key = format!("{}/{name}", self.prefix);
        let len = std::fs::metadata(path)
            .with_context(|| path.display().to_string())?
            .len();
        if len <= self.part_size {
            let _permit = self.permits.acquire().await?;
            let (body, _) = read(path, 0, len, self.hasher()).await?;
            let request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(body))
                .customize();
            let request = if self.unsigned_payload {
                request.disable_payload_signing()
            } else {
                request
            };
            request
                .send()
                .await
                .with_context(|| format!("PutObject {key}"))?;
        } else {
            self.multipart(path, &key, len).await?;
        }
        Ok(len)
    }

    fn hasher(&self) -> Option<Hasher> {
        (self.hash != HashMode::None).then(Hasher::default)
    }

    /// Parts are read in order, each once a permit is free, and uploaded concurrently:
    /// berth's `upload_parts` without the hasher (unless `--hash`).
    async fn multipart(&self, path: &Path, key: &str, len: u64) -> anyhow::Result<()> {
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .with_context(|| format!("CreateMultipartUpload {key}"))?
            .upload_id
            .unwrap_or_default();
        let mut uploads = Vec::new();
        let mut offset = 0;
        let mut part_number = 1;
        let mut hasher = self.hasher();
        while offset < len {
            let part_len = self.part_size.min(len - offset);
            let (permit, body);
            if self.hash == HashMode::BeforePermit {
                (body, hasher) = read(path, offset, part_len, hasher).await?;
                permit = self.permits.clone().acquire_owned().await?;
            } else {
                permit = self.permits.clone().acquire_owned().await?;
                (body, hasher) = read(path, offset, part_len, hasher).await?;
            }
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .part_number(part_number)
                .body(ByteStream::from(body))
                .customize();
            let request = if self.unsigned_payload {
                request.disable_payload_signing()
            } else {
                request
            };
            uploads.push(tokio::spawn(async move {
                let output = request.send().await;
                drop(permit);
                output.map(|o| {
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(o.e_tag)
                        .build()
                })
            }));
            offset += part_len;
            part_number += 1;
        }
        let mut parts = Vec::with_capacity(uploads.len());
        for upload in uploads {
            parts.push(upload.await?.with_context(|| format!("UploadPart {key}"))?);
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("CompleteMultipartUpload {key}"))?;
        Ok(())
    }
}

/// Reads `len` bytes at `offset` (and hashes them, given a hasher) off the async
/// runtime, as berth does.
async fn read(
    path: &Path,
    offset: u64,
    len: u64,
    mut hasher: Option<Hasher>,
) -> anyhow::Result<(Bytes, Option<Hasher>)> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).with_context(|| path.display().to_string())?;
        let mut chunk = vec![0; len as usize];
        file.read_exact_at(&mut chunk, offset)
            .with_context(|| path.display().to_string())?;
        if let Some(hasher) = &mut hasher {
            hasher.update(&chunk);
        }
        Ok((Bytes::from(chunk), hasher))
    })
    .await?
}

async fn delete_prefix(client: &Client, bucket: &str, prefix: &str) -> anyhow::Result<usize> {
    if prefix.is_empty() {
        bail!("refusing to delete a whole bucket: give a non-empty --prefix");
    }
    let keys: Vec<String> = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .context("ListObjectsV2")?
        .into_iter()
        .flat_map(|page| page.contents.unwrap_or_default())
        .filter_map(|object| object.key)
        .collect();
    stream::iter(&keys)
        .map(|key| async move {
            client
                .delete_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .with_context(|| format!("DeleteObject {key}"))
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(keys.len())
}
