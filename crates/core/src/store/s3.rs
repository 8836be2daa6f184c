//! A store in an S3 bucket (AWS S3, MinIO, Garage, any S3-compatible server).
//!
//! Credentials, region and endpoint come from the standard AWS configuration chain
//! (`AWS_ACCESS_KEY_ID`, `AWS_REGION`, `AWS_ENDPOINT_URL`, profiles, instance roles).
//! With a custom endpoint the client uses path-style addressing unless told otherwise.
//! Transient faults (5xx, throttling, timeouts, uploads that arrived damaged) are
//! retried with backoff by the SDK's standard retry strategy. The SDK computes
//! checksums only where S3 requires them (Garage rejects its default streaming
//! checksums); uploads carry berth's own CRC32C header instead (see [`crc32c`]).

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use bytes::Bytes;
use futures::TryStreamExt;
use tokio::sync::Semaphore;

use super::credential_expiry::ExpiryRecorder;
use super::damaged_upload::DamagedUpload;
use super::{
    FileSegment, ListEntry, Object, ObjectMeta, ObjectReader, Progress, Store, StoreError,
    WriteMeta,
};
use crate::digest::{Digest, Hasher};

/// The base64 CRC32C of bytes berth uploads. Uploads (PUTs and parts) are sent
/// unsigned (`UNSIGNED-PAYLOAD`) with this checksum, which S3, MinIO and Garage
/// verify: berth has already checked the bytes' SHA-256 against their digest, and
/// SigV4's payload signature would hash every byte once more (on a CPU-bound upload,
/// that pass is what separated berth from a raw PUT; docs/bench.md), where CRC32C
/// costs next to nothing. Multipart uploads do not declare the algorithm up front:
/// that would give the object a composite checksum, and Garage then re-reads the
/// whole object on each copy onto itself (every `touch` of a re-publish).
fn crc32c(body: &[u8]) -> String {
    let crc = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, body) as u32;
    aws_smithy_types::base64::encode(crc.to_be_bytes())
}

/// S3 caps multipart uploads at 10,000 parts of at least 5 MiB (but the last), and a
/// single CopyObject at 5 GiB.
const MAX_PARTS: u64 = 10_000;
const MIN_PART: u64 = 5 << 20;
const MAX_SINGLE_COPY: u64 = 5 << 30;
const COPY_PART_SIZE: u64 = 512 << 20;

#[derive(Debug, Clone)]
pub struct S3Options {
    /// Requests carrying bytes (PUTs, parts) in flight at once, store-wide.
    pub jobs: usize,
    /// Size of multipart parts; blobs up to this size go in one PUT.
    pub part_size: u64,
    /// Force path-style (`true`) or virtual-host (`false`) addressing; by default
    /// path-style exactly when a custom endpoint is configured.
    pub path_style: Option<bool>,
    /// Endpoint written into presigned URLs, when clients reach S3 by another address
    /// than this process does (see docs/deploy.md on redirects).
    pub public_endpoint: Option<String>,
    /// Give up on one S3 request after this long (the registry sets it so a stuck
    /// bucket becomes a 503, not a hung pull).
    pub request_timeout: Option<Duration>,
    /// Give up waiting for the answer to one attempt after this long (it is then
    /// retried); covers sending the body, so a part upload on a slow link needs it long.
    pub read_timeout: Duration,
    /// Objects larger than this are copied part by part (S3's CopyObject limit);
    /// lowered only by tests, to exercise that path without 5 GiB objects.
    pub single_copy_limit: u64,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            jobs: 8,
            part_size: 16 << 20,
            path_style: None,
            public_endpoint: None,
            request_timeout: None,
            read_timeout: Duration::from_secs(60),
            single_copy_limit: MAX_SINGLE_COPY,
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    /// Signs presigned URLs; differs from `client` only by its endpoint.
    presigner: Client,
    /// The presigner's credentials, to cap URL lifetimes at theirs.
    credentials: Option<ExpiryRecorder>,
    bucket: String,
    /// Key prefix inside the bucket, with a trailing '/' when not empty.
    prefix: String,
    part_size: u64,
    single_copy_limit: u64,
    uploads: Arc<Semaphore>,
}

impl S3Store {
    pub async fn connect(bucket: &str, prefix: &str, options: S3Options) -> Self {
        let sdk = crate::aws::config_loader().load().await;
        let custom_endpoint = sdk.endpoint_url().is_some();
        let mut timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(options.read_timeout);
        if let Some(limit) = options.request_timeout {
            timeouts = timeouts.operation_timeout(limit);
        }
        let mut config = aws_sdk_s3::config::Builder::from(&sdk)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(5))
            .retry_classifier(DamagedUpload)
            .timeout_config(timeouts.build())
            .force_path_style(options.path_style.unwrap_or(custom_endpoint));
        if sdk.region().is_none() {
            config = config.region(Region::new("us-east-1"));
        }
        let credentials = sdk.credentials_provider().map(ExpiryRecorder::new);
        let mut presigning = config.clone();
        if let Some(endpoint) = &options.public_endpoint {
            presigning = presigning
                .endpoint_url(endpoint)
                .force_path_style(options.path_style.unwrap_or(true));
        }
        if let Some(recorder) = &credentials {
            presigning = presigning.credentials_provider(recorder.clone());
        }
        let presigner = Client::from_conf(presigning.build());
        let client = Client::from_conf(config.build());
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        S3Store {
            client,
            presigner,
            credentials,
            bucket: bucket.to_owned(),
            prefix,
            part_size: options.part_size.max(MIN_PART),
            single_copy_limit: options.single_copy_limit.min(MAX_SINGLE_COPY),
            uploads: Arc::new(Semaphore::new(options.jobs.max(1))),
        }
    }

    /// `wanted`, shortened so a presigned URL never outlives the credentials that
    /// sign it (temporary credentials last hours, not days).
    async fn presign_lifetime(&self, wanted: Duration) -> Duration {
        let Some(recorder) = &self.credentials else {
            return wanted;
        };
        let expiry = recorder.expiry().await;
        match expiry.and_then(|at| at.duration_since(SystemTime::now()).ok()) {
            Some(left) => wanted.min(left),
            None => wanted,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The bucket key of a store key.
    pub fn object_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Part size for a blob of `len` bytes: the configured size, grown so the upload
    /// fits in S3's part limit.
    fn part_size_for(&self, len: u64) -> u64 {
        let needed = len.div_ceil(MAX_PARTS).next_multiple_of(1 << 20);
        self.part_size.max(needed)
    }

    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, percent_encode(&self.object_key(key)))
    }

    async fn put_single(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let _permit = self
            .uploads
            .acquire()
            .await
            .expect("semaphore never closes");
        let (chunk, hasher) = read_and_hash(source, 0, source.len, Hasher::default()).await?;
        check_digest(hasher, expected, source.len)?;
        let len = chunk.len() as u64;
        self.put_object(key, chunk, meta).await?;
        progress(len);
        Ok(())
    }

    async fn put_object(&self, key: &str, body: Bytes, meta: &WriteMeta) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type(&meta.content_type)
            .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
            .checksum_crc32_c(crc32c(&body))
            .body(ByteStream::from(body))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| s3_error("PutObject", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .content_type(&meta.content_type)
            .set_metadata(Some(meta.metadata.clone().into_iter().collect()))
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", key, e))?
            .upload_id
            .unwrap_or_default();
        let uploaded = self
            .upload_parts(key, &upload_id, source, expected, progress)
            .await;
        match uploaded {
            Ok(parts) => self.complete_multipart(key, &upload_id, parts).await,
            Err(e) => {
                self.abort_multipart(key, &upload_id).await;
                Err(e)
            }
        }
    }

    /// Reads and hashes parts in order while up to `jobs` of them upload; the digest
    /// is checked before the caller completes the upload, so wrong bytes never
    /// become an object.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        source: &FileSegment,
        expected: &Digest,
        progress: Progress,
    ) -> Result<Vec<CompletedPart>, StoreError> {
        let part_size = self.part_size_for(source.len);
        let mut hasher = Hasher::default();
        let mut uploads = Vec::new();
        let mut offset = 0;
        let mut part_number = 1;
        while offset < source.len {
            let permit = self
                .uploads
                .clone()
                .acquire_owned()
                .await
                .expect("semaphore never closes");
            let len = part_size.min(source.len - offset);
            let (chunk, next) = read_and_hash(source, offset, len, hasher).await?;
            hasher = next;
            let request = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(self.object_key(key))
                .upload_id(upload_id)
                .part_number(part_number)
                .checksum_crc32_c(crc32c(&chunk))
                .body(ByteStream::from(chunk));
            let (key, progress) = (key.to_owned(), progress.clone());
            uploads.push(tokio::spawn(async move {
                let output = request
                    .customize()
                    .disable_payload_signing()
                    .send()
                    .await
                    .map_err(|e| s3_error("UploadPart", &key, e))?;
                drop(permit);
                progress(len);
                Ok::<_, StoreError>(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(output.e_tag)
                        .build(),
                )
            }));
            offset += len;
            part_number += 1;
        }
        let mut parts = Vec::with_capacity(uploads.len());
        for upload in uploads {
            parts.push(upload.await.expect("part upload task panicked")?);
        }
        check_digest(hasher, expected, source.len)?;
        Ok(parts)
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), StoreError> {
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = completed {
            self.abort_multipart(key, upload_id).await;
            return Err(s3_error("CompleteMultipartUpload", key, e));
        }
        Ok(())
    }

    /// Best effort: an upload left behind holds no visible object, and the bucket's
    /// abort-incomplete-multipart lifecycle rule reclaims it.
    async fn abort_multipart(&self, key: &str, upload_id: &str) {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            tracing::warn!(key, error = %describe(&e), "could not abort multipart upload");
        }
    }

    /// CopyObject stops at 5 GiB; larger objects are copied part by part.
    async fn copy_multipart(&self, from: &str, to: &str, size: u64) -> Result<bool, StoreError> {
        let Some(meta) = self.head(from).await? else {
            return Ok(false);
        };
        let upload_id = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.object_key(to))
            .set_content_type(meta.content_type)
            .set_metadata(Some(meta.metadata.into_iter().collect()))
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", to, e))?
            .upload_id
            .unwrap_or_default();
        let mut parts = Vec::new();
        let part_size = COPY_PART_SIZE.min(size.div_ceil(2)).max(MIN_PART);
        for (index, start) in (0..size).step_by(part_size as usize).enumerate() {
            let end = (start + part_size).min(size) - 1;
            let part_number = index as i32 + 1;
            let copied = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(self.object_key(to))
                .upload_id(&upload_id)
                .part_number(part_number)
                .copy_source(self.copy_source(from))
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await;
            match copied {
                Ok(output) => parts.push(
                    CompletedPart::builder()
                        .part_number(part_number)
                        .set_e_tag(output.copy_part_result.and_then(|r| r.e_tag))
                        .build(),
                ),
                Err(e) => {
                    self.abort_multipart(to, &upload_id).await;
                    return if is_not_found(&e) {
                        Ok(false)
                    } else {
                        Err(s3_error("UploadPartCopy", to, e))
                    };
                }
            }
        }
        self.complete_multipart(to, &upload_id, parts).await?;
        Ok(true)
    }
}

#[async_trait]
impl Store for S3Store {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix.trim_end_matches('/'))
            .trim_end_matches('/')
            .to_owned()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(object_meta(
                output.content_length,
                output.content_type,
                output.metadata,
                output.last_modified,
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(s3_error("HeadObject", key, e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let Some(reader) = self.read(key, None).await? else {
            return Ok(None);
        };
        let chunks: Vec<Bytes> = reader
            .body
            .try_collect()
            .await
            .map_err(|e| StoreError::S3 {
                operation: "GetObject",
                key: key.to_owned(),
                message: e.to_string(),
            })?;
        Ok(Some(Object {
            meta: reader.meta,
            body: Bytes::from(chunks.concat()),
        }))
    }

    async fn read(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<ObjectReader>, StoreError> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .set_range(range.map(|r| format!("bytes={}-{}", r.start, r.end.saturating_sub(1))))
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(s3_error("GetObject", key, e)),
        };
        let meta = object_meta(
            output.content_length,
            output.content_type,
            output.metadata,
            output.last_modified,
        );
        let body = tokio_util::io::ReaderStream::new(output.body.into_async_read());
        Ok(Some(ObjectReader {
            meta,
            body: Box::pin(body),
        }))
    }

    async fn presign_get(
        &self,
        key: &str,
        expires: Duration,
    ) -> Result<Option<String>, StoreError> {
        let expires = self.presign_lifetime(expires).await;
        let config = PresigningConfig::expires_in(expires).map_err(|e| StoreError::S3 {
            operation: "presign GetObject",
            key: key.to_owned(),
            message: e.to_string(),
        })?;
        let request = self
            .presigner
            .get_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign GetObject", key, e))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn put(&self, key: &str, body: Bytes, meta: &WriteMeta) -> Result<(), StoreError> {
        self.put_object(key, body, meta).await
    }

    async fn put_verified(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError> {
        if source.len <= self.part_size {
            self.put_single(key, source, expected, meta, progress).await
        } else {
            self.put_multipart(key, source, expected, meta, progress)
                .await
        }
    }

    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<bool, StoreError> {
        if size > self.single_copy_limit {
            return self.copy_multipart(from, to, size).await;
        }
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.object_key(to))
            .copy_source(self.copy_source(from))
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(s3_error("CopyObject", from, e)),
        }
    }

    async fn list_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListEntry>, StoreError> {
        let mut entries = Vec::new();
        let mut continuation = None;
        while entries.len() < limit {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(self.object_key(prefix))
                .set_start_after(start_after.map(|s| self.object_key(s)))
                .set_continuation_token(continuation.take())
                .max_keys((limit - entries.len()).min(1000) as i32)
                .send()
                .await
                .map_err(|e| s3_error("ListObjectsV2", prefix, e))?;
            entries.extend(page.contents().iter().filter_map(|o| {
                Some(ListEntry {
                    key: o.key()?.strip_prefix(&self.prefix)?.to_owned(),
                    size: o.size().unwrap_or_default().max(0) as u64,
                    // A listing without times would make every object look new, which
                    // only ever keeps more.
                    modified: o
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok())
                        .unwrap_or_else(SystemTime::now),
                })
            }));
            match page.next_continuation_token {
                Some(token) if page.is_truncated == Some(true) => continuation = Some(token),
                _ => break,
            }
        }
        entries.truncate(limit);
        Ok(entries)
    }

    async fn touch(&self, key: &str) -> Result<bool, StoreError> {
        let Some(meta) = self.head(key).await? else {
            return Ok(false);
        };
        if meta.size > self.single_copy_limit {
            return self.copy_multipart(key, key, meta.size).await;
        }
        // S3 refuses a copy onto itself that changes nothing; replacing the metadata
        // with the same metadata is the documented way to renew an object.
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .copy_source(self.copy_source(key))
            .metadata_directive(MetadataDirective::Replace)
            .set_content_type(meta.content_type)
            .set_metadata(Some(meta.metadata.into_iter().collect()))
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(s3_error("CopyObject", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", key, e))?;
        Ok(())
    }
}

/// Reads `len` bytes at `offset` of the segment and feeds them to `hasher`, off the
/// async runtime.
async fn read_and_hash(
    source: &FileSegment,
    offset: u64,
    len: u64,
    mut hasher: Hasher,
) -> Result<(Bytes, Hasher), StoreError> {
    let path = source.path.clone();
    let at = source.offset + offset;
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let mut chunk = vec![0; len as usize];
        file.read_exact_at(&mut chunk, at)
            .map_err(|e| StoreError::io(&path, e))?;
        hasher.update(&chunk);
        Ok((Bytes::from(chunk), hasher))
    })
    .await
    .expect("read task panicked")
}

/// The parts of a HEAD or GET answer a store caller sees.
fn object_meta(
    content_length: Option<i64>,
    content_type: Option<String>,
    metadata: Option<std::collections::HashMap<String, String>>,
    last_modified: Option<aws_smithy_types::DateTime>,
) -> ObjectMeta {
    ObjectMeta {
        size: content_length.unwrap_or_default().max(0) as u64,
        content_type,
        metadata: metadata.unwrap_or_default().into_iter().collect(),
        modified: last_modified.and_then(|t| SystemTime::try_from(t).ok()),
    }
}

fn check_digest(hasher: Hasher, expected: &Digest, expected_len: u64) -> Result<(), StoreError> {
    let len = hasher.len();
    let actual = hasher.finish();
    if &actual == expected && len == expected_len {
        Ok(())
    } else {
        Err(StoreError::DigestMismatch {
            expected: expected.clone(),
            actual,
            len,
        })
    }
}

/// Whether S3 said the object is absent. A missing bucket (`NoSuchBucket`) is a
/// fault of the store, not an absent object: the registry must answer 503, never
/// "unknown". A HEAD answer has no body to name its error, so there a 404 is taken
/// for an absent object.
fn is_not_found<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> bool {
    match error {
        SdkError::ServiceError(e) => match e.err().code() {
            Some(code) => matches!(code, "NoSuchKey" | "NotFound"),
            None => e.raw().status().as_u16() == 404,
        },
        _ => false,
    }
}

fn s3_error<E>(operation: &'static str, key: &str, error: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    StoreError::S3 {
        operation,
        key: key.to_owned(),
        message: describe(&error),
    }
}

/// What went wrong, in one line: S3's error code, status and message, or the chain of
/// causes of a failure to get an answer (connection, timeout). Never the request, so
/// never a signature.
fn describe<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    if let SdkError::ServiceError(e) = error {
        let status = e.raw().status().as_u16();
        return match (e.err().code(), e.err().message()) {
            (Some(code), Some(message)) => format!("{code} (HTTP {status}): {message}"),
            (Some(code), None) => format!("{code} (HTTP {status})"),
            _ => format!("HTTP {status}"),
        };
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// Percent-encodes a key for `x-amz-copy-source`, keeping '/' as the separator.
fn percent_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_source_keys_are_percent_encoded() {
        assert_eq!(
            percent_encode("v2/a/blobs/sha256:ab"),
            "v2/a/blobs/sha256%3Aab"
        );
    }

    #[tokio::test]
    async fn part_size_grows_only_past_the_part_limit() {
        let store = S3Store::connect("bucket", "", S3Options::default()).await;
        let default = S3Options::default().part_size;
        assert_eq!(store.part_size_for(5 << 30), default);
        assert_eq!(store.part_size_for(0), default);
        let huge = 200 << 30;
        let part = store.part_size_for(huge);
        assert!(part > default, "{part}");
        assert!(huge.div_ceil(part) <= MAX_PARTS, "{part}");
        assert_eq!(part % (1 << 20), 0, "whole MiB");
    }
}
