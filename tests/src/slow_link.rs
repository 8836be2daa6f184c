//! A slow network in front of a real server: a TCP relay on a free loopback port
//! that passes requests through at once and answers at a set rate, so a test can
//! interrupt a download half-way on a machine where loopback is instant.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::background::Background;

pub struct SlowLink {
    server: Background,
}

impl SlowLink {
    /// Relays to `upstream` (`HOST:PORT`), its answers at `bytes_per_sec` per
    /// connection.
    pub fn start(upstream: &str, bytes_per_sec: usize) -> SlowLink {
        let upstream = upstream.to_owned();
        let server = Background::serve(move |listener| async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), bytes_per_sec));
            }
        });
        SlowLink { server }
    }

    /// `127.0.0.1:PORT`: connect here instead of to the server.
    pub fn address(&self) -> &str {
        &self.server.address
    }
}

async fn relay(client: TcpStream, upstream: String, bytes_per_sec: usize) {
    let Ok(server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let answers = async {
        // 20 slices a second: smooth enough that a kill lands mid-body.
        let mut buffer = vec![0; (bytes_per_sec / 20).max(1)];
        while let Ok(n) = server_read.read(&mut buffer).await {
            if n == 0 || client_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs_f64(n as f64 / bytes_per_sec as f64)).await;
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(requests, answers);
}
