//! The catalog site: published into the store, read by a real browser (Debian's
//! chromium driven by Playwright, `tests/browser/site.mjs`) from Garage's web endpoint,
//! and served by `berth serve` at `/`. Private repositories never show.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::oci::Layout;
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, garage_var, success, unique};
use serde_json::Value;

const HOST: &str = "registry.example.test";

const README: &str = r#"# Web frontend

Serves the **acme** web site. Run it with:

```sh
docker run -p 8080:8080 registry.example.test/acme/web:v2
```

<script>window.pwned = "script"</script>
<img src="missing.png" onerror="window.pwnedImg = 'img'; alert('img')">

[Documentation](javascript:window.pwnedLink='link';alert('link'))
"#;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// An OCI layout with one image (`archs` = 1) or an index of images, one per arch.
fn layout(dir: &Path, archs: &[&str], text: &str) -> String {
    let layout = Layout::create(dir);
    if let [arch] = archs {
        layout.set_index(vec![layout.image(arch, &format!("{text} on {arch}"))]);
    } else {
        layout.set_index(vec![layout.platform_index(archs, text)]);
    }
    dir.display().to_string()
}

/// Publishes the fixture: public acme/web (an image, then a two-platform index, with
/// a README that tries to inject script), acme/api and tools/lint, and a private
/// acme/secret-vault, in a store with a user (so not everything is public).
fn publish_fixture(t: &TestStore, dir: &Path) {
    let single = layout(&dir.join("single"), &["amd64"], "web v1");
    let multi = layout(&dir.join("multi"), &["amd64", "arm64"], "web v2");
    let other = layout(&dir.join("other"), &["amd64"], "other");
    t.push(&single, "acme/web:v1", &[]);
    t.push(&multi, "acme/web:v2", &[]);
    t.push(&other, "acme/api:1.0", &[]);
    t.push(&other, "tools/lint:latest", &[]);
    t.push(&other, "acme/secret-vault:v1", &[]);
    success(&t.berth_with_input(&["user", "add", "admin", "--password-stdin"], "pw\n"));
    for public in ["acme/web", "acme/api", "tools/lint"] {
        success(&t.berth(&["repo", "public", public]));
    }
    let readme = dir.join("README.md");
    std::fs::write(&readme, README).unwrap();
    success(&t.berth(&[
        "repo",
        "describe",
        "acme/web",
        "--summary",
        "The web frontend <b>of acme</b>",
        "--readme",
        readme.to_str().unwrap(),
    ]));
    success(&t.berth(&[
        "repo",
        "describe",
        "tools/lint",
        "--summary",
        "Lints Dockerfiles",
    ]));
    success(&t.berth(&["repo", "describe", "acme/secret-vault", "--summary", "hush"]));
}

fn run_browser(site_url: &str) -> Value {
    let browser = workspace_root().join("tests/browser");
    assert!(
        Path::new("/usr/bin/chromium").exists()
            && browser.join("node_modules/playwright-core").exists(),
        "the browser tests need chromium and playwright-core: run scripts/chromium-up"
    );
    let mut command = Command::new("node");
    command
        .arg(browser.join("site.mjs"))
        .env("SITE_URL", site_url)
        .env("SITE_REPO", "acme/web")
        .env("SITE_FILTER", "frontend")
        .env("SITE_EXPECT_MATCH", "acme/web")
        .env("SITE_PUBLIC", "acme/web,acme/api,tools/lint")
        .env("SITE_PRIVATE", "secret-vault,hush")
        .env("SITE_HOST", HOST);
    if let Ok(shots) = std::env::var("BERTH_SCREENSHOTS") {
        // Relative to the workspace root, as typed there.
        command.env("BERTH_SCREENSHOTS", workspace_root().join(shots));
    }
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "site.mjs failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_reads_searches_and_opens_public_repositories_on_the_static_host() {
    let t = TestStore::new(Backend::Garage, "site").await;
    let dir = tempfile::tempdir().unwrap();
    publish_fixture(&t, dir.path());
    let built: Value = serde_json::from_str(&success(&t.berth(&[
        "site",
        "build",
        "--registry-host",
        HOST,
        "--json",
    ])))
    .unwrap();
    assert_eq!(built["repositories"], 3, "{built}");

    // The private repository left no trace in the store's site files.
    assert!(!t.exists("r/acme/secret-vault/index.html").await);
    let index = t.get_json("site/index.json").await;
    assert!(!index.to_string().contains("secret-vault"), "{index}");
    assert!(!index.to_string().contains("hush"), "{index}");

    let prefix = t.url.trim_start_matches("s3://").split_once('/').unwrap().1;
    let site_url = format!("http://{}/{prefix}/", garage_var("BERTH_TEST_WEB"));
    let seen = run_browser(&site_url);

    assert_eq!(seen["after"], serde_json::json!(["acme/web"]), "{seen}");
    assert_eq!(seen["count"], "1 repository");
    assert_eq!(seen["pull"], format!("docker pull {HOST}/acme/web:v2"));
    let tags = seen["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2, "{seen}");
    // Newest first: v2 (the index, with both platforms), then v1.
    assert_eq!(tags[0][0], "v2");
    let platforms = tags[0][2].as_str().unwrap();
    assert!(
        platforms.contains("linux/amd64")
            && platforms.contains("linux/arm64")
            && platforms.contains("index"),
        "{platforms}"
    );
    assert_eq!(tags[1][0], "v1");
    assert_eq!(tags[1][2], "linux/amd64");
    for row in tags {
        assert!(row[1].as_str().unwrap().starts_with("sha256:"), "{row}");
        assert!(row[3].as_str().unwrap().ends_with('B'), "size: {row}");
        assert!(
            row[4].as_str().unwrap().ends_with("UTC"),
            "pushed at: {row}"
        );
    }
    assert!(
        seen["readme"]
            .as_str()
            .unwrap()
            .contains("Serves the acme web site")
    );
    // Nothing from the README ran: no globals set, no dialog, no script left in the DOM.
    assert_eq!(
        seen["injected"],
        serde_json::json!([null, null, null]),
        "{seen}"
    );
    assert_eq!(
        seen["injectedAfterClicks"],
        serde_json::json!([null, null, null]),
        "{seen}"
    );
    assert_eq!(seen["dialogs"], serde_json::json!([]), "{seen}");
    assert_eq!(seen["scriptsInReadme"], 0);
    assert_eq!(
        seen["phoneOverflow"], false,
        "the home page scrolls sideways on a phone"
    );
    assert_eq!(
        seen["phoneRepoOverflow"], false,
        "the repository page scrolls sideways on a phone"
    );
    assert_eq!(
        seen["noJsListed"],
        serde_json::json!(["acme/api", "acme/web", "tools/lint"]),
        "without JavaScript the whole list is in the page"
    );

    // Turning a repository private removes its page and every mention of it.
    success(&t.berth(&["repo", "private", "acme/api"]));
    assert!(!t.exists("r/acme/api/index.html").await);
    assert!(
        !t.get_json("site/index.json")
            .await
            .to_string()
            .contains("acme/api")
    );
    let home = http()
        .get(&site_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        home.contains("acme/web") && !home.contains("acme/api"),
        "{home}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn berth_serve_answers_the_root_with_the_home_page() {
    let t = TestStore::new(Backend::Dir, "site-serve").await;
    let dir = tempfile::tempdir().unwrap();
    let image = layout(&dir.path().join("image"), &["amd64"], &unique("served"));
    t.push(&image, "acme/web:v1", &[]);
    let server = Server::start(&t.url, &[]);
    let client = http();

    let home = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(home.status(), 200);
    assert!(
        home.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let home = home.text().await.unwrap();
    assert!(
        home.contains("<h1>Container images</h1>") && home.contains("href=\"r/acme/web/\""),
        "{home}"
    );

    let page = client.get(server.url("/r/acme/web/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("docker pull REGISTRY-HOST/acme/web:v1")
    );
    let index = server.get_json("/site/index.json").await;
    assert_eq!(index["repositories"][0]["name"], "acme/web");

    let bare = client.get(server.url("/r/acme/web")).send().await.unwrap();
    assert_eq!(bare.status(), 308);
    assert_eq!(bare.headers()["location"], "/r/acme/web/");
    for outside in [
        "/r/acme/nope/",
        "/_berth/layout.json",
        "/r/../_berth/layout.json",
        "/elsewhere",
    ] {
        let response = client.get(server.url(outside)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{outside}");
    }
    let post = client.post(server.url("/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}
