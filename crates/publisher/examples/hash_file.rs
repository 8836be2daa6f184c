//! Hashes files with berth's hasher (`berth_core::digest::Hasher`, the sha2 crate) the
//! way a publish reads them, in 1 MiB chunks; `scripts/bench publish` compares it with
//! `sha256sum` on the same file.
//!
//! ```text
//! cargo run --release -p berth-publisher --example hash_file -- FILE...
//! ```
//!
//! Prints `<seconds> <hex digest>  <file>` per file, the seconds covering reading and
//! hashing (open to digest).

use std::io::Read;
use std::time::Instant;

use anyhow::Context;
use berth_core::digest::Hasher;

const CHUNK: usize = 1 << 20;

fn main() -> anyhow::Result<()> {
    let files: Vec<String> = std::env::args().skip(1).collect();
    anyhow::ensure!(!files.is_empty(), "usage: hash_file FILE...");
    let mut buffer = vec![0; CHUNK];
    for path in files {
        let start = Instant::now();
        let mut file = std::fs::File::open(&path).with_context(|| path.clone())?;
        let mut hasher = Hasher::default();
        loop {
            let n = file.read(&mut buffer).with_context(|| path.clone())?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        let digest = hasher.finish();
        let seconds = start.elapsed().as_secs_f64();
        println!("{seconds:.3} {}  {path}", digest.hex());
    }
    Ok(())
}
