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
    let key_file = key_dir.join("token-key.pem");
    Server::start(
        &t.url,
        &[
            ("BERTH_TOKEN_KEY_FILE", key_file.to_str().unwrap()),
            ("BERTH_ACCESS_CACHE_SECS", "1"),
            ("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900"),
        ],
    )
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
    let created = admin(
        &t,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "ci",
            "--expires",
            "1h",
        ],
    );
    let token = created.lines().last().unwrap().trim().to_owned();
    success(&docker(&["logout", &server.address], ""));
    success(&login("alice", &token));
    success(&docker(&["rmi", &private], ""));
    success(&docker(&["pull", &private], ""));
    admin(&t, &["token", "revoke", "alice", "ci"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let revoked = docker(&["pull", &private], "");
    assert!(!revoked.status.success(), "a revoked token still pulls");
    assert!(!login("alice", &token).status.success());

    // A token logs in the moment it is created, and stops once it expires.
    let created = admin(
        &t,
        &[
            "token",
            "create",
            "alice",
            "--name",
            "short",
            "--expires",
            "4s",
        ],
    );
    let short = created.lines().last().unwrap().trim().to_owned();
    success(&login("alice", &short));
    std::thread::sleep(std::time::Duration::from_secs(4));
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
    let server = serve(&t, dir.path());
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

    // HS256 "signed" with the public key's bytes, or with an empty secret.
    for (what, secret) in [
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
    let mut no_exp = f.claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    forged.push(("no exp", f.sign(&no_exp, &f.key_pem, &key.kid)));
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
    let line = berth_e2e::failure(&t.berth(&["user", "add", "Bad Name", "--password-stdin"]));
    assert!(line.contains("invalid name"), "{line}");
}
