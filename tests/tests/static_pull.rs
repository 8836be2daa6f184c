//! The static-site path: an image published into the Garage bucket is pulled by the
//! real `docker pull` from Garage's web endpoint, with no berth process running.

use berth_e2e::docker::{build_image, docker, save};
use berth_e2e::{TestStore, garage_var, success, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_pulls_and_runs_an_image_straight_from_the_bucket_web_endpoint() {
    let t = TestStore::garage_bucket_root().await;
    let message = unique("static pull works");
    let local = format!("berth-e2e/static:{}", unique("v"));
    build_image(&local, &message);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("image.tar");
    save(&local, &archive);

    let repo = format!("static/{}", unique("hello"));
    let report: serde_json::Value = serde_json::from_str(&success(&t.berth(&[
        "push",
        archive.to_str().unwrap(),
        &format!("{repo}:v1"),
        "--json",
    ])))
    .unwrap();
    let web = garage_var("BERTH_TEST_WEB");

    let by_tag = format!("{web}/{repo}:v1");
    success(&docker(&["pull", &by_tag]));
    let output = success(&docker(&["run", "--rm", "--network", "none", &by_tag]));
    assert_eq!(output.trim(), message);

    let by_digest = format!("{web}/{repo}@{}", report["digest"].as_str().unwrap());
    success(&docker(&["pull", &by_digest]));

    let missing = docker(&["pull", &format!("{web}/{repo}:nope")]);
    assert!(!missing.status.success(), "pulling a missing tag must fail");
}
