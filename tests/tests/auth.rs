//! Token auth from the user's side: real `docker login`/`pull` against `berth serve`
//! over Garage, and the token protocol's security properties request by request.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_e2e::docker::{build_image, docker_as, save};
use berth_e2e::oci::Layout;
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, success, unique};
use berth_registry::auth::signing_key::{SigningKey, generate_pem};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

fn admin(t: &TestStore, args: &[&str]) -> String {
    success(&t.berth(args))
}

/// `berth token create USER --name LABEL [--expires EXPIRES]`: the token, which the
/// command prints on its last line.
fn create_token(t: &TestStore, user: &str, label: &str, expires: Option<&str>) -> String {
    let mut args = vec!["token", "create", user, "--name", label];
    args.extend(expires.iter().flat_map(|e| ["--expires", *e]));
    let created = admin(t, &args);
    created.lines().last().unwrap().trim().to_owned()
}

fn add_user(t: &TestStore, name: &str) {
    success(&t.berth_with_input(
        &["user", "add", name, "--password-stdin"],
        &format!("{PASSWORD}\n"),
    ));
}

/// alice is in acme/dev, which may pull acme/private; bob is a user outside it;
/// acme/public is public.
fn configure_acme(t: &TestStore) {
    add_user(t, "alice");
    add_user(t, "bob");
    admin(t, &["org", "add", "acme"]);
    admin(t, &["team", "add", "acme/dev", "--member", "alice"]);
    admin(t, &["team", "grant", "acme/dev", "acme/private", "pull"]);
    admin(t, &["repo", "public", "acme/public"]);
}

fn serve(t: &TestStore, key_dir: &Path) -> Server {
    serve_with(t, key_dir, &[])
}

/// [`serve`] with more variables (they win over the defaults here).
fn serve_with(t: &TestStore, key_dir: &Path, env: &[(&str, &str)]) -> Server {
    let key_file = key_dir.join("token-key.pem");
    let mut all = vec![
        ("BERTH_TOKEN_KEY_FILE", key_file.to_str().unwrap()),
        ("BERTH_ACCESS_CACHE_SECS", "1"),
        ("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900"),
    ];
    all.extend_from_slice(env);
    Server::start(&t.url, &all)
}

/// The server logs each load of the access configuration at debug level, with why.
const LOAD_LOG: &str = "warn,berth_registry::auth=debug";

fn loads(server: &Server, reason: &str) -> usize {
    server
        .logs()
        .lines()
        .filter(|l| l.contains("loaded the access configuration") && l.contains(reason))
        .count()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_login_and_pull_follow_the_access_rules() {
    let t = TestStore::new(Backend::Garage, "auth-docker").await;
    let dir = tempfile::tempdir().unwrap();
    let mut messages = Vec::new();
    for repo in ["acme/private", "acme/public"] {
        let message = unique(repo);
        let local = format!("berth-e2e/auth:{}", unique("v"));
        build_image(&local, &message);
        let archive = dir.path().join("image.tar");
        save(&local, &archive);
        t.push(archive.to_str().unwrap(), &format!("{repo}:v1"), &[]);
        messages.push(message);
    }
    configure_acme(&t);
    let server = serve(&t, dir.path());
    let config = dir.path().join("docker-config");
    std::fs::create_dir(&config).unwrap();
    let docker = |args: &[&str], stdin: &str| docker_as(&config, args, stdin);
    let private = format!("{}/acme/private:v1", server.address);
    let public = format!("{}/acme/public:v1", server.address);
    let login = |user: &str, secret: &str| {
        docker(
            &["login", &server.address, "-u", user, "--password-stdin"],
            &format!("{secret}\n"),
        )
    };

    // Anonymous: the public repository pulls, the private one does not.
    success(&docker(&["pull", &public], ""));
    let run = success(&docker(&["run", "--rm", "--network", "none", &public], ""));
    assert_eq!(run.trim(), messages[1]);
    let denied = docker(&["pull", &private], "");
    assert!(!denied.status.success());
    assert!(
        stderr(&denied).contains("unauthorized") || stderr(&denied).contains("denied"),
        "{}",
        stderr(&denied)
    );

    // A wrong password is refused at login.
    let wrong = login("alice", "not the password");
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("incorrect username or password"),
        "{}",
        stderr(&wrong)
    );

    // bob may log in but not pull what his teams were not granted.
    success(&login("bob", PASSWORD));
    assert!(!docker(&["pull", &private], "").status.success());

    // alice, a member of acme/dev, pulls and runs it.
    success(&login("alice", PASSWORD));
    success(&docker(&["pull", &private], ""));
    let run = success(&docker(&["run", "--rm", "--network", "none", &private], ""));
    assert_eq!(run.trim(), messages[0]);

    // An access token works as the password until it is revoked.
    let token = create_token(&t, "alice", "ci", Some("1h"));
    success(&docker(&["logout", &server.address], ""));
    success(&login("alice", &token));
    success(&docker(&["rmi", &private], ""));
    success(&docker(&["pull", &private], ""));
    admin(&t, &["token", "revoke", "alice", "ci"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let revoked = docker(&["pull", &private], "");
    assert!(!revoked.status.success(), "a revoked token still pulls");
    assert!(!login("alice", &token).status.success());

    // A token logs in the moment it is created, and stops once it expires (6 s:
    // time for one pull first on a busy machine).
    let short = create_token(&t, "alice", "short", Some("6s"));
    let short_made = std::time::Instant::now();
    success(&login("alice", &short));
    success(&docker(&["rmi", &private], ""));
    success(&docker(&["pull", &private], ""));
    std::thread::sleep(std::time::Duration::from_secs(6).saturating_sub(short_made.elapsed()));
    // The stored credential no longer pulls, and no longer logs in.
    success(&docker(&["rmi", &private], ""));
    let expired = docker(&["pull", &private], "");
    assert!(!expired.status.success(), "an expired token still pulls");
    assert!(
        stderr(&expired).contains("incorrect username or password"),
        "{}",
        stderr(&expired)
    );
    assert!(
        !login("alice", &short).status.success(),
        "an expired token still logs in"
    );
}

/// A server over a directory store with acme configured, an image pushed to both
/// acme/private and acme/public, and the key the server signs with.
struct Fixture {
    _dir: tempfile::TempDir,
    _store: TestStore,
    server: Server,
    key_pem: String,
    blob: String,
}

async fn fixture() -> Fixture {
    fixture_with(&[]).await
}

async fn fixture_with(env: &[(&str, &str)]) -> Fixture {
    let t = TestStore::new(Backend::Dir, "auth-protocol").await;
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(&dir.path().join("layout"));
    let manifest = layout.image("amd64", "shared layer");
    layout.set_index(vec![manifest.clone()]);
    let source = layout.dir.to_str().unwrap().to_owned();
    t.push(&source, "acme/private:v1", &[]);
    t.push(&source, "acme/public:v1", &[]);
    t.push(&source, "bob/own:v1", &[]);
    configure_acme(&t);
    let server = serve_with(&t, dir.path(), env);
    // The server wrote its key when it started.
    let key_pem = std::fs::read_to_string(dir.path().join("token-key.pem")).unwrap();
    let body: Value =
        serde_json::from_slice(&std::fs::read(layout.blob_path(&manifest)).unwrap()).unwrap();
    let blob = body["layers"][0]["digest"].as_str().unwrap().to_owned();
    Fixture {
        _dir: dir,
        _store: t,
        server,
        key_pem,
        blob,
    }
}

impl Fixture {
    async fn token(&self, user: Option<&str>, scopes: &[&str]) -> reqwest::Response {
        let mut url = self.server.url("/token?service=berth");
        for scope in scopes {
            url.push_str(&format!("&scope={scope}"));
        }
        let request = http().get(url);
        let request = match user {
            Some(user) => request.basic_auth(user, Some(PASSWORD)),
            None => request,
        };
        request.send().await.unwrap()
    }

    async fn token_for(&self, user: Option<&str>, scopes: &[&str]) -> String {
        let response = self.token(user, scopes).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token"], body["access_token"]);
        assert!(body["expires_in"].as_u64().unwrap() >= 60);
        assert!(body["issued_at"].as_str().unwrap().ends_with('Z'));
        body["token"].as_str().unwrap().to_owned()
    }

    async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let request = http().get(self.server.url(path));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        request.send().await.unwrap()
    }

    /// `GET /token` with a raw `Authorization` header.
    async fn token_with_header(&self, value: &[u8]) -> reqwest::Response {
        http()
            .get(self.server.url("/token?service=berth"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(value).unwrap(),
            )
            .send()
            .await
            .unwrap()
    }

    /// `POST /token` with this form.
    async fn post_token(&self, form: &[(&str, &str)]) -> reqwest::Response {
        http()
            .post(self.server.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    fn signing_key(&self) -> SigningKey {
        SigningKey::from_pem(&self.key_pem).unwrap()
    }

    /// Claims as the server would issue them for alice on acme/private.
    fn claims(&self) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        json!({
            "iss": "berth", "sub": "alice", "aud": "berth", "exp": now + 300, "nbf": now, "iat": now,
            "jti": "test", "access": [{ "type": "repository", "name": "acme/private", "actions": ["pull"] }]
        })
    }

    fn sign(&self, claims: &Value, pem: &str, kid: &str) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_owned());
        encode(
            &header,
            claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

/// The public half of a PEM private key, as `openssl pkey -pubout` writes it: SPKI
/// PEM text and DER bytes.
fn public_key_of(private_pem: &str) -> (String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let private = dir.path().join("key.pem");
    std::fs::write(&private, private_pem).unwrap();
    let (pem, der) = (dir.path().join("pub.pem"), dir.path().join("pub.der"));
    for (out, form) in [(&pem, "PEM"), (&der, "DER")] {
        berth_e2e::openssl(&[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-outform",
            form,
            "-out",
            out.to_str().unwrap(),
        ]);
    }
    (
        std::fs::read_to_string(pem).unwrap(),
        std::fs::read(der).unwrap(),
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn assert_unauthorized(response: reqwest::Response, error: Option<&str>) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer realm=\"http://127.0.0.1:"),
        "{challenge}"
    );
    assert!(
        challenge.contains("/token\",service=\"berth\""),
        "{challenge}"
    );
    match error {
        Some(error) => assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        ),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn the_api_root_challenges_and_tokens_grant_only_what_is_allowed() {
    let f = fixture().await;
    assert_unauthorized(f.get("/v2/", None).await, None).await;

    // Asking too much is never an error: the token holds the intersection.
    let scopes = [
        "repository:acme/private:pull,push",
        "repository:acme/public:pull",
        "repository:bob/own:pull",
    ];
    let anonymous = f.token_for(None, &scopes).await;
    assert_eq!(
        claims_of(&anonymous)["access"],
        json!([{ "type": "repository", "name": "acme/public", "actions": ["pull"] }])
    );
    let alice = f.token_for(Some("alice"), &scopes).await;
    let names: Vec<Value> = claims_of(&alice)["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, [json!("acme/private"), json!("acme/public")]);
    assert_eq!(claims_of(&alice)["access"][0]["actions"], json!(["pull"]));
    let bob = f
        .token_for(Some("bob"), &["repository:localhost:5000/bob/own:pull"])
        .await;
    assert_eq!(
        claims_of(&bob)["access"][0]["name"],
        "bob/own",
        "own namespace, host prefix stripped"
    );

    // docker login asks with no scope; the token then opens /v2/.
    let login = f.token_for(Some("alice"), &[]).await;
    assert_eq!(f.get("/v2/", Some(&login)).await.status(), StatusCode::OK);

    let wrong = http()
        .get(f.server.url("/token?service=berth"))
        .basic_auth("alice", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["message"],
        "incorrect username or password"
    );
    assert_eq!(
        f.token(Some("nobody"), &[]).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let other_service = http()
        .get(f.server.url("/token?service=elsewhere"))
        .send()
        .await
        .unwrap();
    assert_eq!(other_service.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tokens_open_only_the_repository_they_name() {
    let f = fixture().await;
    let blob_path = |repo: &str| format!("/v2/{repo}/blobs/{}", f.blob);
    let manifest = "/v2/acme/private/manifests/v1";

    // Anonymous: public reads work without a token; private ones are challenged.
    assert_eq!(
        f.get(&blob_path("acme/public"), None).await.status(),
        StatusCode::OK
    );
    let response = f.get(manifest, None).await;
    assert!(
        response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("scope=\"repository:acme/private:pull\"")
    );
    assert_unauthorized(response, None).await;

    let alice_private = f
        .token_for(Some("alice"), &["repository:acme/private:pull"])
        .await;
    assert_eq!(
        f.get(manifest, Some(&alice_private)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        f.get(&blob_path("acme/private"), Some(&alice_private))
            .await
            .status(),
        StatusCode::OK
    );

    // A token for one repository does not open another, not even with the same blob.
    let public_token = f.token_for(None, &["repository:acme/public:pull"]).await;
    assert_unauthorized(
        f.get(&blob_path("acme/private"), Some(&public_token)).await,
        Some("insufficient_scope"),
    )
    .await;
    let bob_own = f.token_for(Some("bob"), &["repository:bob/own:pull"]).await;
    assert_unauthorized(
        f.get(manifest, Some(&bob_own)).await,
        Some("insufficient_scope"),
    )
    .await;
    assert_unauthorized(
        f.get("/v2/acme/private/tags/list", Some(&bob_own)).await,
        Some("insufficient_scope"),
    )
    .await;

    // The catalog lists what the caller may pull.
    assert_eq!(catalog(&f, None).await, json!(["acme/public"]));
    // The static copy for the bucket's web host never names a private repository.
    assert_eq!(
        f._store.get_json("v2/_catalog").await,
        json!({ "repositories": ["acme/public"] })
    );
    assert_eq!(
        catalog(&f, Some(&alice_private)).await,
        json!(["acme/private", "acme/public"])
    );
    assert_eq!(
        catalog(&f, Some(&bob_own)).await,
        json!(["acme/public", "bob/own"])
    );
}

async fn catalog(f: &Fixture, token: Option<&str>) -> Value {
    let body: Value = f.get("/v2/_catalog", token).await.json().await.unwrap();
    body["repositories"].clone()
}

#[tokio::test]
async fn forged_tampered_expired_and_garbage_tokens_are_refused() {
    let f = fixture().await;
    let manifest = "/v2/acme/private/manifests/v1";
    let key = f.signing_key();
    let good = f.sign(&f.claims(), &f.key_pem, &key.kid);
    assert_eq!(
        f.get(manifest, Some(&good)).await.status(),
        StatusCode::OK,
        "the test signs like the server"
    );

    let header = |value: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&value).unwrap());
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&f.claims()).unwrap());
    let none = format!(
        "{}.{payload}.",
        header(json!({ "alg": "none", "typ": "JWT", "kid": key.kid }))
    );
    let mut forged = vec![("alg none", none)];

    // HS256 "signed" with the server's public key (the classic algorithm confusion:
    // SPKI PEM and DER, as a verifier handed the public key would use it as the HMAC
    // secret), with the kid, or with an empty secret.
    let (spki_pem, spki_der) = public_key_of(&f.key_pem);
    for (what, secret) in [
        ("HS256 with the public key's PEM", spki_pem.into_bytes()),
        ("HS256 with the public key's DER", spki_der),
        ("HS256 with the kid as secret", key.kid.as_bytes().to_vec()),
        ("HS256 empty key", Vec::new()),
    ] {
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some(key.kid.clone());
        forged.push((
            what,
            encode(&hs, &f.claims(), &EncodingKey::from_secret(&secret)).unwrap(),
        ));
    }
    // Our own key and claims, naming another key: the kid is checked.
    forged.push((
        "our key, wrong kid",
        f.sign(&f.claims(), &f.key_pem, "0123456789abcdef"),
    ));
    // Tampered claims under the real signature.
    let parts: Vec<&str> = good.split('.').collect();
    let mut claims = f.claims();
    claims["sub"] = json!("mallory");
    forged.push((
        "tampered",
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
            parts[2]
        ),
    ));
    // Another key, with our kid or its own.
    let other = generate_pem().unwrap();
    forged.push(("other key, our kid", f.sign(&f.claims(), &other, &key.kid)));
    forged.push((
        "other key, its kid",
        f.sign(
            &f.claims(),
            &other,
            &SigningKey::from_pem(&other).unwrap().kid,
        ),
    ));
    // Our key, wrong claims.
    for (what, field, value) in [
        ("wrong aud", "aud", json!("elsewhere")),
        ("wrong iss", "iss", json!("someone")),
        (
            "expired beyond leeway",
            "exp",
            json!(f.claims()["nbf"].as_u64().unwrap() - 60),
        ),
        (
            "not yet valid",
            "nbf",
            json!(f.claims()["nbf"].as_u64().unwrap() + 120),
        ),
    ] {
        let mut claims = f.claims();
        claims[field] = value;
        forged.push((what, f.sign(&claims, &f.key_pem, &key.kid)));
    }
    for (what, field) in [
        ("no exp", "exp"),
        ("no nbf", "nbf"),
        ("no aud", "aud"),
        ("no iss", "iss"),
        ("no sub", "sub"),
    ] {
        let mut missing = f.claims();
        missing.as_object_mut().unwrap().remove(field);
        forged.push((what, f.sign(&missing, &f.key_pem, &key.kid)));
    }
    // Expiry has 10 s of leeway (tokens::LEEWAY_SECS): 11 s past is refused, 9 s
    // past (below) still accepted.
    let mut expired = f.claims();
    expired["exp"] = json!(f.claims()["nbf"].as_u64().unwrap() - 11);
    forged.push(("expired 11 s ago", f.sign(&expired, &f.key_pem, &key.kid)));
    // A refresh token is not an access token.
    let refresh = http()
        .post(f.server.url("/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", PASSWORD),
            ("service", "berth"),
            ("client_id", "test"),
            ("access_type", "offline"),
            ("scope", "repository:acme/private:pull"),
        ])
        .send()
        .await
        .unwrap();
    let refresh: Value = refresh.json().await.unwrap();
    forged.push((
        "refresh token",
        refresh["refresh_token"].as_str().unwrap().to_owned(),
    ));
    forged.push(("garbage", "not.a.jwt".to_owned()));
    forged.push(("oversized", "a".repeat(20_000)));

    for (what, token) in forged {
        let response = f.get(manifest, Some(&token)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        let challenge = response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
    }
    let mut recent = f.claims();
    recent["exp"] = json!(f.claims()["nbf"].as_u64().unwrap() - 9);
    let recent = f.sign(&recent, &f.key_pem, &key.kid);
    assert_eq!(
        f.get(manifest, Some(&recent)).await.status(),
        StatusCode::OK,
        "expired 9 s ago is within the leeway"
    );

    // Garbage and oversized Basic credentials at /token: a client error, with the
    // registry's error JSON, never a 500.
    let oversized = format!("Basic {}", "QUFB".repeat(5_000));
    for (what, value) in [
        ("oversized", oversized.as_bytes()),
        ("not base64", b"Basic !!!not*base64!!!".as_slice()),
        ("no colon", b"Basic bm9jb2xvbg==".as_slice()), // "nocolon"
        ("not UTF-8 inside", b"Basic //79".as_slice()), // ff fe fd
        ("not ASCII", b"Basic \xff\xfe".as_slice()),
        ("no credentials", b"Basic".as_slice()),
    ] {
        let response = f.token_with_header(value).await;
        let status = response.status();
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED,
            "{what}: {status}"
        );
        let body: Value = response.json().await.unwrap();
        assert!(body["errors"][0]["code"].is_string(), "{what}: {body}");
    }

    let raw = http()
        .get(f.server.url(manifest))
        .header(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe garbage").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_oauth2_form_issues_and_refreshes_tokens_until_the_password_changes() {
    let f = fixture().await;
    let post = |form: Vec<(&'static str, String)>| {
        let url = f.server.url("/token");
        async move { http().post(url).form(&form).send().await.unwrap() }
    };
    let scope = "repository:acme/private:pull".to_owned();
    let login = post(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", PASSWORD.into()),
        ("service", "berth".into()),
        ("client_id", "containerd".into()),
        ("scope", scope.clone()),
        ("access_type", "offline".into()),
    ])
    .await;
    assert_eq!(login.status(), StatusCode::OK);
    let login: Value = login.json().await.unwrap();
    let access = login["access_token"].as_str().unwrap();
    assert_eq!(
        f.get("/v2/acme/private/manifests/v1", Some(access))
            .await
            .status(),
        StatusCode::OK
    );
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();

    let refreshed = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh.clone()),
        ("service", "berth".into()),
        ("client_id", "containerd".into()),
        ("scope", scope.clone()),
    ])
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_eq!(
        claims_of(refreshed["access_token"].as_str().unwrap())["access"][0]["name"],
        "acme/private"
    );

    let no_offline = post(vec![
        ("grant_type", "password".into()),
        ("username", "alice".into()),
        ("password", PASSWORD.into()),
        ("service", "berth".into()),
        ("client_id", "containerd".into()),
    ])
    .await;
    assert!(
        no_offline
            .json::<Value>()
            .await
            .unwrap()
            .get("refresh_token")
            .is_none()
    );

    let bad_grant = post(vec![
        ("grant_type", "client_credentials".into()),
        ("service", "berth".into()),
    ])
    .await;
    assert_eq!(bad_grant.status(), StatusCode::BAD_REQUEST);

    success(&f._store.berth_with_input(
        &["user", "passwd", "alice", "--password-stdin"],
        "a new password\n",
    ));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let stale = post(vec![
        ("grant_type", "refresh_token".into()),
        ("refresh_token", refresh),
        ("service", "berth".into()),
        ("client_id", "containerd".into()),
    ])
    .await;
    assert_eq!(
        stale.status(),
        StatusCode::UNAUTHORIZED,
        "a password change ends refresh tokens"
    );
}

/// Bad logins force a reload (the user might have been created a moment ago), but
/// however many arrive the store sees about one load per second; a token created
/// just before its first login still logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_floods_reload_at_most_once_a_second() {
    let f = fixture_with(&[("BERTH_LOG", LOAD_LOG)]).await;
    // Settle: the loads of the start and of the first requests are not the flood's.
    f.token_for(None, &[]).await;
    let (forced_before, expired_before) = (
        loads(&f.server, "failed login"),
        loads(&f.server, "expired"),
    );
    let started = std::time::Instant::now();
    let flood = (0..50).map(|i| {
        // Unknown users with passwords, and with token-shaped secrets (no argon2).
        let secret = if i % 2 == 0 {
            "x".to_owned()
        } else {
            format!("berth_{i:064}")
        };
        let request = http()
            .get(f.server.url("/token?service=berth"))
            .basic_auth(format!("nobody{i}"), Some(secret));
        // Arrivals spread over a second and more, all in flight together: without
        // the bound, nearly every arrival after a load would force another.
        let arrival = std::time::Duration::from_millis(25 * i);
        async move {
            tokio::time::sleep(arrival).await;
            request.send().await.unwrap()
        }
    });
    for response in futures::future::join_all(flood).await {
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["errors"][0]["message"],
            "incorrect username or password"
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let forced = loads(&f.server, "failed login") - forced_before;
    let expired = loads(&f.server, "expired") - expired_before;
    assert!(
        forced >= 1 && (forced as f64) <= elapsed + 1.0,
        "{forced} forced reloads in {elapsed:.1} s for 50 failed logins"
    );
    // The cache's own expiry (1 s here) adds at most one a second more.
    assert!(
        (expired as f64) <= elapsed + 1.0,
        "{expired} expiry reloads in {elapsed:.1} s"
    );

    // Right after the flood the cache is fresh, and still a new token logs in.
    let token = create_token(&f._store, "alice", "fresh", None);
    let login = http()
        .get(f.server.url("/token?service=berth"))
        .basic_auth("alice", Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
}

/// A token for `user` (with `secret`) asking for pull on `repository`, and the
/// status of that repository's manifest read with it.
async fn pull_status(server: &Server, login: Option<(&str, &str)>, repository: &str) -> StatusCode {
    let request = http().get(server.url(&format!(
        "/token?service=berth&scope=repository:{repository}:pull"
    )));
    let request = match login {
        Some((user, secret)) => request.basic_auth(user, Some(secret)),
        None => request,
    };
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "login {login:?}");
    let body: Value = response.json().await.unwrap();
    http()
        .get(server.url(&format!("/v2/{repository}/manifests/v1")))
        .bearer_auth(body["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .status()
}

async fn login_status(server: &Server, user: &str, secret: &str) -> StatusCode {
    http()
        .get(server.url("/token?service=berth"))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap()
        .status()
}

/// Longer than the servers' access cache (1 s here): edits have applied after it.
fn wait_for_cache() {
    std::thread::sleep(std::time::Duration::from_millis(1500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_edits_apply_to_logins_listings_and_pulls() {
    let t = TestStore::new(Backend::Garage, "auth-cli").await;
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(&dir.path().join("layout"));
    let manifest = layout.image("amd64", "cli edits");
    layout.set_index(vec![manifest]);
    let source = layout.dir.to_str().unwrap().to_owned();
    for repository in ["acme/x/y", "other/x", "acme/site"] {
        t.push(&source, &format!("{repository}:v1"), &[]);
    }
    add_user(&t, "alice");
    add_user(&t, "bob");
    admin(&t, &["org", "add", "acme"]);
    admin(
        &t,
        &[
            "team", "add", "acme/dev", "--member", "alice", "--member", "bob",
        ],
    );
    admin(&t, &["team", "grant", "acme/dev", "acme/*", "pull"]);
    let server = serve(&t, dir.path());

    // `acme/*` reaches any depth inside acme, and nothing outside it.
    assert_eq!(
        pull_status(&server, Some(("alice", PASSWORD)), "acme/x/y").await,
        StatusCode::OK
    );
    assert_eq!(
        pull_status(&server, Some(("alice", PASSWORD)), "other/x").await,
        StatusCode::UNAUTHORIZED
    );

    // token list: label, creation and expiry as RFC 3339, never the token.
    let token = create_token(&t, "alice", "ci", Some("30d"));
    let listed = admin(&t, &["token", "list", "alice"]);
    assert!(
        !listed.contains(&token) && !listed.contains("berth_"),
        "{listed}"
    );
    let fields: Vec<&str> = listed.trim().split('\t').collect();
    assert_eq!(fields[0], "ci", "{listed}");
    let time = |field: &str, prefix: &str| {
        let text = field
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{listed}"));
        humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    };
    let created_at = time(fields[1], "created ");
    let expires_at = time(fields[2], "expires ");
    let month = expires_at.duration_since(created_at).unwrap().as_secs();
    assert!((30 * 86_400..30 * 86_400 + 2).contains(&month), "{listed}");
    let age = std::time::SystemTime::now()
        .duration_since(created_at)
        .unwrap();
    assert!(age.as_secs() < 60, "{listed}");
    assert_eq!(login_status(&server, "alice", &token).await, StatusCode::OK);

    // user passwd: the new password logs in, the old one no longer does.
    success(&t.berth_with_input(&["user", "passwd", "bob", "--password-stdin"], "new pw\n"));
    assert_eq!(login_status(&server, "bob", "new pw").await, StatusCode::OK);
    assert_eq!(
        login_status(&server, "bob", PASSWORD).await,
        StatusCode::UNAUTHORIZED
    );

    // user remove: no login, gone from access show and from the team's members.
    admin(&t, &["user", "remove", "bob"]);
    wait_for_cache();
    assert_eq!(
        login_status(&server, "bob", "new pw").await,
        StatusCode::UNAUTHORIZED
    );
    let shown = admin(&t, &["access", "show"]);
    assert!(!shown.contains("bob"), "{shown}");
    assert!(
        shown.contains("team acme/dev: members [alice], pull [acme/*]"),
        "{shown}"
    );
    assert!(shown.contains("token ci: expires 20"), "{shown}");

    // repo public, then private again: anonymous reads stop after the cache time.
    let anonymous = || async {
        http()
            .get(server.url("/v2/acme/site/manifests/v1"))
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(anonymous().await, StatusCode::UNAUTHORIZED);
    admin(&t, &["repo", "public", "acme/site"]);
    wait_for_cache();
    assert_eq!(anonymous().await, StatusCode::OK);
    assert_eq!(
        pull_status(&server, None, "acme/site").await,
        StatusCode::OK
    );
    admin(&t, &["repo", "private", "acme/site"]);
    wait_for_cache();
    assert_eq!(anonymous().await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        pull_status(&server, None, "acme/site").await,
        StatusCode::UNAUTHORIZED
    );
}

/// `POST /token`: a wrong password is a 401 that says so; a refresh token ends with
/// the access token it came from (revoked or expired) and with its user.
#[tokio::test]
async fn refresh_tokens_end_with_their_access_token_or_user() {
    let f = fixture().await;
    let login = |user: &'static str, secret: String| {
        let f = &f;
        async move {
            f.post_token(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", &secret),
                ("service", "berth"),
                ("client_id", "containerd"),
                ("access_type", "offline"),
                ("scope", "repository:acme/private:pull"),
            ])
            .await
        }
    };
    let refresh_token = |response: reqwest::Response| async move {
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["refresh_token"].as_str().unwrap().to_owned()
    };
    let refresh = |token: String| {
        let f = &f;
        async move {
            f.post_token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("service", "berth"),
                ("client_id", "containerd"),
            ])
            .await
            .status()
        }
    };

    let wrong = login("alice", "not the password".into()).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
    assert_eq!(
        body["errors"][0]["message"],
        "incorrect username or password"
    );

    let ci = create_token(&f._store, "alice", "ci", None);
    let short = create_token(&f._store, "alice", "short", Some("4s"));
    let short_made = std::time::Instant::now();
    let from_ci = refresh_token(login("alice", ci).await).await;
    let from_short = refresh_token(login("alice", short).await).await;
    let from_bob = refresh_token(login("bob", PASSWORD.into()).await).await;
    for token in [&from_ci, &from_short, &from_bob] {
        assert_eq!(refresh(token.clone()).await, StatusCode::OK);
    }

    admin(&f._store, &["token", "revoke", "alice", "ci"]);
    admin(&f._store, &["user", "remove", "bob"]);
    wait_for_cache();
    assert_eq!(refresh(from_ci).await, StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(
        refresh(from_bob).await,
        StatusCode::UNAUTHORIZED,
        "user removed"
    );
    std::thread::sleep(std::time::Duration::from_secs(4).saturating_sub(short_made.elapsed()));
    assert_eq!(
        refresh(from_short).await,
        StatusCode::UNAUTHORIZED,
        "expired"
    );
}

/// The `kid` in a token's header.
fn kid_of(token: &str) -> String {
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Where the signing key comes from: a key file that outlives restarts (so issued
/// tokens stay good), the default file under HOME, or `BERTH_TOKEN_KEY` itself.
#[tokio::test]
async fn the_token_key_persists_across_restarts_and_follows_the_settings() {
    let f = fixture().await;
    let t = &f._store;
    let manifest = "/v2/acme/private/manifests/v1";
    let opens = |server: &Server, token: String| {
        let url = server.url(manifest);
        async move {
            http()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let alice_token = |server: &Server| {
        let url = server.url("/token?service=berth&scope=repository:acme/private:pull");
        async move {
            let response = http()
                .get(url)
                .basic_auth("alice", Some(PASSWORD))
                .send()
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap();
            body["token"].as_str().unwrap().to_owned()
        }
    };

    // BERTH_TOKEN_KEY_FILE: created 0600, and the same key after a restart.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("keys/token.pem");
    let file_env = [("BERTH_TOKEN_KEY_FILE", key_file.to_str().unwrap())];
    let first = Server::start(&t.url, &file_env);
    let token = alice_token(&first).await;
    assert_eq!(mode_of(&key_file), 0o600);
    let key = SigningKey::from_pem(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    assert_eq!(kid_of(&token), key.kid);
    drop(first);
    let second = Server::start(&t.url, &file_env);
    assert_eq!(
        opens(&second, token.clone()).await,
        StatusCode::OK,
        "token outlives a restart"
    );
    assert_eq!(kid_of(&alice_token(&second).await), key.kid);
    drop(second);

    // No key settings: a key under HOME's default path.
    let home = tempfile::tempdir().unwrap();
    let default = Server::start(&t.url, &[("HOME", home.path().to_str().unwrap())]);
    let default_file = home.path().join(".local/state/berth/token-key.pem");
    assert_eq!(mode_of(&default_file), 0o600);
    let default_key =
        SigningKey::from_pem(&std::fs::read_to_string(&default_file).unwrap()).unwrap();
    let default_token = alice_token(&default).await;
    assert_eq!(kid_of(&default_token), default_key.kid);
    assert_eq!(opens(&default, default_token).await, StatusCode::OK);
    assert_eq!(
        opens(&default, token.clone()).await,
        StatusCode::UNAUTHORIZED,
        "another key's token"
    );
    drop(default);

    // BERTH_TOKEN_KEY: tokens verify with that key's public half (openssl's).
    let pem_path = dir.path().join("given.pem");
    berth_e2e::openssl_p256_key(pem_path.to_str().unwrap());
    let pem = std::fs::read_to_string(&pem_path).unwrap();
    let given = Server::start(
        &t.url,
        &[
            ("BERTH_TOKEN_KEY", pem.as_str()),
            ("HOME", home.path().to_str().unwrap()),
        ],
    );
    let given_token = alice_token(&given).await;
    let (public_pem, _) = public_key_of(&pem);
    let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
    validation.set_audience(&["berth"]);
    let decoded = jsonwebtoken::decode::<Value>(
        &given_token,
        &jsonwebtoken::DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(decoded.claims["sub"], "alice");
    assert_eq!(
        kid_of(&given_token),
        SigningKey::from_pem(&pem).unwrap().kid
    );
    assert_eq!(opens(&given, given_token).await, StatusCode::OK);
}

/// A store without users serves everyone and says so at start; the first user
/// closes it while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_registry_says_so_and_closes_with_its_first_user() {
    let t = TestStore::new(Backend::Garage, "auth-open").await;
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(&dir.path().join("layout"));
    let manifest = layout.image("amd64", "open");
    layout.set_index(vec![manifest]);
    t.push(layout.dir.to_str().unwrap(), "acme/web:v1", &[]);
    let server = serve(&t, dir.path());
    assert!(
        server
            .logs()
            .contains("the registry is open (anyone may pull anything)"),
        "{}",
        server.logs()
    );
    let status = |path: &'static str| {
        let url = server.url(path);
        async move { http().get(url).send().await.unwrap().status() }
    };
    assert_eq!(status("/v2/").await, StatusCode::OK);
    assert_eq!(status("/v2/acme/web/manifests/v1").await, StatusCode::OK);

    add_user(&t, "alice");
    let added = std::time::Instant::now();
    while status("/v2/").await == StatusCode::OK {
        // The cache lives 1 s; allow for a load and a busy machine.
        assert!(
            added.elapsed().as_secs() < 3,
            "still open 3 s after the first user"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status("/v2/").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status("/v2/acme/web/manifests/v1").await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn concurrent_cli_edits_lose_nothing() {
    let t = TestStore::new(Backend::Garage, "auth-concurrent").await;
    add_user(&t, "root");
    admin(&t, &["org", "add", "acme"]);
    admin(&t, &["team", "add", "acme/all"]);
    let store = &t;
    std::thread::scope(|scope| {
        for i in 0..12 {
            scope.spawn(move || add_user(store, &format!("user{i}")));
            scope.spawn(move || {
                admin(
                    store,
                    &[
                        "team",
                        "grant",
                        "acme/all",
                        &format!("acme/repo{i}"),
                        "pull",
                    ],
                )
            });
        }
    });
    let shown = admin(&t, &["access", "show"]);
    for i in 0..12 {
        assert!(
            shown.contains(&format!("user user{i}\n")),
            "user{i} lost: {shown}"
        );
        assert!(
            shown.contains(&format!("acme/repo{i}")),
            "grant {i} lost: {shown}"
        );
    }
    assert!(!shown.contains("argon2"), "access show prints no secrets");
}

#[test]
fn bad_admin_input_is_refused_with_one_line() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let t = rt.block_on(TestStore::new(Backend::Dir, "auth-admin"));
    let line = berth_e2e::failure(&t.berth(&["user", "add", "alice"]));
    assert!(line.contains("--password-stdin"), "{line}");
    add_user(&t, "alice");
    let line = berth_e2e::failure(
        &t.berth_with_input(&["user", "add", "alice", "--password-stdin"], "x\n"),
    );
    assert!(line.contains("already"), "{line}");
    let line = berth_e2e::failure(&t.berth(&["org", "add", "alice"]));
    assert!(line.contains("already"), "{line}");
    let line = berth_e2e::failure(&t.berth(&["team", "add", "nope/dev"]));
    assert!(line.contains("no organisation nope"), "{line}");
    admin(&t, &["org", "add", "acme"]);
    admin(&t, &["team", "add", "acme/dev"]);
    let line = berth_e2e::failure(&t.berth(&["team", "grant", "acme/dev", "other/*", "pull"]));
    assert!(line.contains("must start with its organisation"), "{line}");
    let line = berth_e2e::failure(&t.berth(&["team", "grant", "acme/dev", "acme/*", "push"]));
    assert!(line.contains("only be granted pull"), "{line}");
    let line = berth_e2e::failure(&t.berth(&[
        "token",
        "create",
        "alice",
        "--name",
        "ci",
        "--expires",
        "soon",
    ]));
    assert!(line.contains("not a duration"), "{line}");
    let line = berth_e2e::failure(&t.berth(&[
        "token",
        "create",
        "alice",
        "--name",
        "ci",
        "--expires",
        "99999999999999999d",
    ]));
    assert!(line.contains("too long a duration"), "{line}");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    let line = berth_e2e::failure(&t.berth_with_env(
        &["serve", "--listen", "127.0.0.1:0"],
        &[
            ("BERTH_TOKEN_TTL_SECS", "30"),
            ("BERTH_TOKEN_KEY_FILE", key_file.to_str().unwrap()),
        ],
    ));
    assert!(
        line.contains("'30' for '--token-ttl-secs") && line.contains("60.."),
        "{line}"
    );
    let line = berth_e2e::failure(&t.berth(&["user", "add", "Bad Name", "--password-stdin"]));
    assert!(line.contains("invalid name"), "{line}");
}
