//! A slow network in front of a real server: a TCP relay on a free loopback port
//! that passes requests through at once and answers at a set rate, so a test can
//! interrupt a download half-way on a machine where loopback is instant.

use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct SlowLink {
    /// `127.0.0.1:PORT`: connect here instead of to the server.
    pub address: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl SlowLink {
    /// Relays to `upstream` (`HOST:PORT`), its answers at `bytes_per_sec` per
    /// connection. Runs on its own thread, so a test blocking its runtime (sleeping,
    /// waiting for a child process) does not stall it.
    pub fn start(upstream: &str, bytes_per_sec: usize) -> SlowLink {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let upstream = upstream.to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                let accept = async {
                    while let Ok((client, _)) = listener.accept().await {
                        tokio::spawn(relay(client, upstream.clone(), bytes_per_sec));
                    }
                };
                tokio::select! {
                    _ = accept => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime here cuts every open relay.
        });
        SlowLink {
            address,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for SlowLink {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
