//! `berth key generate`, `berth sign`, `berth verify`: clap verbs over `signing`.

use std::path::PathBuf;

use anyhow::Context;
use berth_core::ImageRef;
use berth_core::store::Store;
use berth_publisher::signing::{self, PrivateKey, PublicKey};
use berth_publisher::{PublishOptions, observer};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Write a new ECDSA P-256 key pair: PREFIX.key (PKCS#8 PEM, mode 0600) and
    /// PREFIX.pub (public key PEM). Existing files are never overwritten.
    Generate {
        /// Path prefix of the two files, e.g. `keys/release`.
        #[arg(long, env = "BERTH_KEY_OUT", default_value = "berth")]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct SignArgs {
    /// The image to sign: REPO:TAG or REPO@DIGEST (what is signed is the digest).
    image: String,
    /// Private key, PEM: PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), ECDSA P-256.
    #[arg(long, env = "BERTH_SIGNING_KEY")]
    key: PathBuf,
    /// Registry host clients pull from (e.g. registry.example.com); the signature
    /// names the image as HOST/REPO (just REPO without it).
    #[arg(long, env = "BERTH_SIGNING_REGISTRY")]
    registry: Option<String>,
    /// Print one JSON object describing the result on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// The image to check: REPO:TAG or REPO@DIGEST.
    image: String,
    /// Public key, PEM (`PUBLIC KEY`, as `berth key generate` and cosign write it).
    #[arg(long, env = "BERTH_VERIFY_KEY")]
    key: PathBuf,
    /// Print one JSON object describing the signature that verified on stdout.
    #[arg(long)]
    json: bool,
}

pub fn key(command: KeyCommand) -> anyhow::Result<()> {
    let KeyCommand::Generate { out } = command;
    let (key_path, pub_path) = signing::key::generate_files(&out)?;
    println!(
        "private key: {} (keep it secret)\npublic key: {}",
        key_path.display(),
        pub_path.display()
    );
    Ok(())
}

pub async fn sign(store: &dyn Store, jobs: usize, args: SignArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.image.parse()?;
    let password = std::env::var("COSIGN_PASSWORD").ok();
    let key = PrivateKey::load(&args.key, password.as_deref().map(str::as_bytes))?;
    let docker_reference = match &args.registry {
        Some(host) => format!("{}/{}", host.trim_end_matches('/'), image.repository),
        None => image.repository.to_string(),
    };
    let observer = observer::for_stderr();
    let report = signing::sign(
        store,
        &image,
        &key,
        &docker_reference,
        &PublishOptions { jobs },
        &*observer,
    )
    .await
    .with_context(|| format!("signing {image} in {} failed", store.location()))?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.added {
        println!(
            "{}@{}: signed ({} signature(s) in {})",
            report.repository, report.digest, report.signatures, report.signature_tag
        );
    } else {
        println!(
            "{}@{}: already signed with this key; nothing written",
            report.repository, report.digest
        );
    }
    Ok(())
}

pub async fn verify(store: &dyn Store, args: VerifyArgs) -> anyhow::Result<()> {
    let image: ImageRef = args.image.parse()?;
    let key = PublicKey::load(&args.key)?;
    let verified = signing::verify(store, &image, &key)
        .await
        .with_context(|| format!("verification of {image} failed"))?;
    if args.json {
        println!("{}", serde_json::to_string(&verified)?);
    } else {
        println!(
            "{}@{}: verified: signature over payload {} (identity {}) matches {}",
            verified.repository,
            verified.digest,
            verified.payload,
            verified.docker_reference,
            args.key.display()
        );
    }
    Ok(())
}
