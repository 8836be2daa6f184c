//! The S3 requests Garage has answered, from its admin API's Prometheus metrics
//! (`scripts/garage-up` binds that API on 127.0.0.1:3903), so a test can count what
//! a berth process asked of the store. Counters are node-wide: only meaningful while
//! nothing else uses Garage, i.e. in a test binary with a single test.

use std::collections::BTreeMap;

const METRICS: &str = "http://127.0.0.1:3903/metrics";

/// Requests answered so far, by S3 operation (`GetObject`, `HeadObject`, ...).
pub async fn s3_requests() -> BTreeMap<String, u64> {
    let text = reqwest::get(METRICS).await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("api_s3_request_counter{api_endpoint=\"")?;
            let (operation, count) = rest.split_once("\"} ")?;
            Some((operation.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

/// The requests by operation made between two [`s3_requests`] readings.
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(op, n)| (op.clone(), n - before.get(op).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}
