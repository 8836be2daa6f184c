//! Which blobs a repository holds, remembered briefly. A blob object never changes
//! while it exists (its key is its digest), so a positive answer stays true until
//! the blob is deleted; caching it for a short time turns repeated blob HEADs and
//! redirects (every layer of every pull) into no store request at all, as
//! distribution's blob descriptor cache does. Misses are never cached, so a blob
//! published a moment ago is found at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_core::{Digest, Repository};

/// Entries kept at most; the map is cleared when full (simple, and bounded).
const CAPACITY: usize = 100_000;

#[derive(Debug)]
pub struct MembershipCache {
    ttl: Duration,
    sizes: Mutex<HashMap<(Repository, Digest), (u64, Instant)>>,
}

impl MembershipCache {
    pub fn new(ttl: Duration) -> Self {
        MembershipCache {
            ttl,
            sizes: Mutex::new(HashMap::new()),
        }
    }

    /// The blob's size if the repository was seen holding it within the TTL.
    pub fn get(&self, repository: &Repository, digest: &Digest) -> Option<u64> {
        let sizes = self.sizes.lock().expect("membership cache lock");
        let (size, seen) = sizes.get(&(repository.clone(), digest.clone()))?;
        (seen.elapsed() < self.ttl).then_some(*size)
    }

    pub fn insert(&self, repository: &Repository, digest: &Digest, size: u64) {
        if self.ttl.is_zero() {
            return;
        }
        let mut sizes = self.sizes.lock().expect("membership cache lock");
        if sizes.len() >= CAPACITY {
            sizes.clear();
        }
        sizes.insert((repository.clone(), digest.clone()), (size, Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_positive_answers_until_the_ttl() {
        let repository: Repository = "acme/web".parse().unwrap();
        let digest = Digest::of(b"x");
        let cache = MembershipCache::new(Duration::from_millis(50));
        assert_eq!(cache.get(&repository, &digest), None);
        cache.insert(&repository, &digest, 7);
        assert_eq!(cache.get(&repository, &digest), Some(7));
        assert_eq!(cache.get(&"acme/other".parse().unwrap(), &digest), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&repository, &digest), None);
        let off = MembershipCache::new(Duration::ZERO);
        off.insert(&repository, &digest, 7);
        assert_eq!(off.get(&repository, &digest), None);
    }
}
