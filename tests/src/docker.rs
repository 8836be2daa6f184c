//! The real Docker engine started by `scripts/docker-up`, skopeo and podman.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::success;

/// `DOCKER_HOST` of the private engine, from the environment or its env file.
pub fn docker_host() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::env::var("DOCKER_HOST").unwrap_or_else(|_| {
            let text = std::fs::read_to_string("/run/berth-docker/env").unwrap_or_else(|e| {
                panic!("Docker is not set up (/run/berth-docker/env: {e}); run scripts/docker-up")
            });
            text.lines()
                .find_map(|l| l.strip_prefix("export DOCKER_HOST="))
                .expect("env file names DOCKER_HOST")
                .to_owned()
        })
    })
}

pub fn docker(args: &[&str]) -> Output {
    crate::output_of(
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", docker_host()),
    )
}

/// `docker ARGS` with its own client configuration directory, so logins of one
/// test never leak into another.
pub fn docker_as(config: &Path, args: &[&str], stdin: &str) -> Output {
    let mut command = Command::new("docker");
    command
        .args(args)
        .env("DOCKER_HOST", docker_host())
        .env("DOCKER_CONFIG", config);
    crate::run_with_input(command, stdin)
}

/// Builds `FROM scratch` an image whose default command prints `message`: two
/// layers (busybox, then the message), so it has real content and runs anywhere.
pub fn build_image(tag: &str, message: &str) {
    let context = tempfile::tempdir().unwrap();
    std::fs::copy("/bin/busybox", context.path().join("busybox"))
        .expect("busybox-static is installed (scripts/docker-up)");
    std::fs::write(context.path().join("message.txt"), format!("{message}\n")).unwrap();
    std::fs::write(
        context.path().join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY message.txt /message.txt\nCMD [\"/bin/busybox\", \"cat\", \"/message.txt\"]\n",
    )
    .unwrap();
    success(&docker(&[
        "build",
        "-q",
        "-t",
        tag,
        context.path().to_str().unwrap(),
    ]));
}

/// `docker save IMAGE -o PATH`.
pub fn save(image: &str, path: &Path) {
    success(&docker(&["save", "-o", path.to_str().unwrap(), image]));
}

/// Runs `skopeo ARGS` (no signature policy checks: these are local test images).
pub fn skopeo(args: &[&str]) -> Output {
    crate::output_of(Command::new("skopeo").arg("--insecure-policy").args(args))
}

/// Runs `podman ARGS`.
pub fn podman(args: &[&str]) -> Output {
    crate::output_of(Command::new("podman").args(args))
}

/// A docker client configuration directory (for `DOCKER_CONFIG`) whose
/// `config.json` holds `user:password` for `address` (`HOST:PORT`), as
/// `docker login` writes it without a credential store.
pub fn client_config(address: &str, user: &str, password: &str) -> tempfile::TempDir {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = serde_json::json!({ "auths": { address: { "auth": auth } } });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        serde_json::to_vec_pretty(&config).unwrap(),
    )
    .unwrap();
    dir
}

/// `skopeo copy --all IMAGE dir:DEST`: every manifest and blob exactly as the
/// registry serves it (the `dir:` transport converts nothing), named by digest, so
/// two such directories compare byte for byte. `creds` is `user:password`.
pub fn pull_to_dir(image: &str, creds: Option<&str>, dest: &Path) {
    let dest = format!("dir:{}", dest.display());
    let mut args = vec!["copy", "--all", "--src-tls-verify=false"];
    if let Some(creds) = creds {
        args.extend(["--src-creds", creds]);
    }
    args.extend([image, &dest]);
    success(&skopeo(&args));
}
