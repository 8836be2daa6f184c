//! The AWS calls' TLS verifies servers: berth's SDK client (berth_core::aws, rustls
//! on ring with the system's roots) reads the token signing key from a Secrets
//! Manager endpoint whose certificate comes from a CA of this test's own
//! (tests/tls_secret_server.py). It refuses the server while that CA is unknown and
//! reads the key once `SSL_CERT_FILE` trusts the CA.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use berth_e2e::server::Server;
use berth_e2e::{Backend, TestStore, failure, openssl, openssl_p256_key};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode};

const ARN: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:berth/token-key";

/// The TLS Secrets Manager stand-in, stopped when dropped.
struct SecretServer {
    child: Child,
    endpoint: String,
}

impl SecretServer {
    fn start(dir: &Path) -> SecretServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tls_secret_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["leaf.pem", "leaf.key", "token-key.pem"].map(|f| dir.join(f)))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        assert!(!port.trim().is_empty(), "the TLS server did not start");
        SecretServer {
            child,
            endpoint: format!("https://127.0.0.1:{}", port.trim()),
        }
    }
}

impl Drop for SecretServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA, a server certificate for 127.0.0.1 that it signed, and a token key.
fn make_keys(dir: &Path) {
    let path = |name: &str| dir.join(name).display().to_string();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=berth test CA"];
    ca.extend(ec);
    let (ca_key, ca_pem) = (path("ca.key"), path("ca.pem"));
    ca.extend(["-keyout", &ca_key, "-out", &ca_pem]);
    openssl(&ca);
    let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
    csr.extend(ec);
    let (leaf_key, leaf_csr) = (path("leaf.key"), path("leaf.csr"));
    csr.extend(["-keyout", &leaf_key, "-out", &leaf_csr]);
    openssl(&csr);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &leaf_csr,
        "-CA",
        &ca_pem,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-extfile",
        &path("leaf.ext"),
        "-out",
        &path("leaf.pem"),
    ]);
    openssl_p256_key(&path("token-key.pem"));
    openssl(&[
        "pkey",
        "-in",
        &path("token-key.pem"),
        "-pubout",
        "-out",
        &path("token-key.pub"),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_key_is_read_over_tls_only_from_a_trusted_server() {
    let t = TestStore::new(Backend::Dir, "aws-tls").await;
    let dir = tempfile::tempdir().unwrap();
    make_keys(dir.path());
    let server = SecretServer::start(dir.path());
    let env = [
        ("BERTH_TOKEN_KEY_SECRET", ARN),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.endpoint.as_str()),
    ];

    // The test CA is not among the system's roots: no key, no registry.
    let mut untrusted = t.command(&["serve", "--listen", "127.0.0.1:0"]);
    untrusted
        .envs(env)
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    let error = failure(&untrusted.output().unwrap());
    assert!(
        error.contains("invalid peer certificate: UnknownIssuer"),
        "{error}"
    );

    // Trusting it (as a private CA is trusted), the key is read and the registry serves.
    let ca = dir.path().join("ca.pem").display().to_string();
    let mut trusted = env.to_vec();
    trusted.push(("SSL_CERT_FILE", &ca));
    let registry = Server::start(&t.url, &trusted);
    let answer = registry.get_json("/token?service=berth").await;
    let token = answer["token"].as_str().expect("a token");
    // Signed with the key the TLS server holds.
    let public = std::fs::read(dir.path().join("token-key.pub")).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["berth"]);
    decode::<serde_json::Value>(
        token,
        &DecodingKey::from_ec_pem(&public).unwrap(),
        &validation,
    )
    .unwrap();
}
