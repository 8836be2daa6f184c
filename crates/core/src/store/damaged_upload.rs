//! Uploads S3 refused because their bytes arrived damaged are sent again.
//!
//! Each upload carries a CRC32C (see `s3.rs`); when the bytes S3 received do not
//! match it, S3 answers 400, which the SDK's standard strategy never retries. A
//! damaged transfer is a fault of the link, not of the request, so this classifier
//! makes it one more transient error: the SDK resends the same bytes (held in
//! memory) within its usual attempts and backoff.

use aws_sdk_s3::config::interceptors::InterceptorContext;
use aws_sdk_s3::config::retry::{ClassifyRetry, RetryAction};
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::operation::upload_part::UploadPartError;

/// The codes S3 (`BadDigest`), Garage (`InvalidDigest`) and MinIO
/// (`XAmzContentChecksumMismatch`) answer a checksum mismatch with.
const MISMATCH: [&str; 3] = ["BadDigest", "InvalidDigest", "XAmzContentChecksumMismatch"];

#[derive(Debug)]
pub(super) struct DamagedUpload;

impl ClassifyRetry for DamagedUpload {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(error)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        let Some(error) = error.as_operation_error() else {
            return RetryAction::NoActionIndicated;
        };
        let code = match error.downcast_ref::<PutObjectError>() {
            Some(error) => error.code(),
            None => error
                .downcast_ref::<UploadPartError>()
                .and_then(|e| e.code()),
        };
        match code {
            Some(code) if MISMATCH.contains(&code) => RetryAction::transient_error(),
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "damaged upload"
    }
}
