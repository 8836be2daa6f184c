//! The local Docker engine as a source: `docker save` into a scratch file, then read
//! as an archive. Uses the `docker` CLI, so `DOCKER_HOST` and contexts apply.

use tokio::process::Command;

use super::{Bundle, Files, read_files};
use crate::error::PublishError;

pub async fn export(image: &str) -> Result<Bundle, PublishError> {
    let name = format!("docker-daemon:{image}");
    let scratch = tempfile::tempdir()
        .map_err(|e| PublishError::source(&name, format!("no scratch space: {e}")))?;
    let archive = scratch.path().join("image.tar");
    let output = Command::new("docker")
        .arg("save")
        .arg("--output")
        .arg(&archive)
        .arg(image)
        .output()
        .await
        .map_err(|e| PublishError::source(&name, format!("cannot run docker: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let reason = stderr.lines().last().unwrap_or("no message").trim();
        return Err(PublishError::source(
            &name,
            format!("docker save failed: {reason}"),
        ));
    }
    tokio::task::spawn_blocking(move || {
        let (files, _) = Files::open(&name, &archive)?;
        read_files(&name, files, Some(scratch), None, None)
    })
    .await
    .expect("source reader panicked")
}
