//! A later `istio-demo up` renders what the token Secrets record: a rotation under way keeps both
//! entries (and its Secret keeps the new token and the record), a finished one keeps the new
//! name; the placeholder and orphan-digest checks accept both.

use super::*;
use istio_demo::commands::up;

fn up_args() -> up::UpArgs {
    use clap::Parser;
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        up: up::UpArgs,
    }
    let wasm = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wasm.path(), b"\0asm\x01\0\0\0").unwrap();
    let (_, path) = wasm.keep().unwrap();
    Cli::parse_from([
        "up",
        "--profile",
        "minimal",
        "--wasm",
        path.to_str().unwrap(),
    ])
    .up
}

#[tokio::test]
async fn a_later_up_renders_the_rotated_state_and_keeps_its_record() {
    // sleep: under way (step 1); loadtester: rotated to loadtester-r2 and finished.
    let (mut t, _) = switched();
    t[1].finish_rotation().unwrap();
    let next = istio_demo::commands::token::generate().unwrap();
    t[0].begin_rotation("sleep-r2", &next, Some("2027-01-01T00:00:00Z".into()))
        .unwrap();
    let mut steps = vec![discovery("v1", &[("Secret", "secrets", true)])];
    steps.extend(t.iter().map(|t| get(secret_path(t), t.secret(false))));
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let p = up::prepare(
        &up_args(),
        &istio_demo::manifests::repo_root(),
        Some(&cluster),
        vec![],
    )
    .await
    .unwrap();
    finish(server).await;

    let plugin = p
        .inputs
        .synced
        .iter()
        .flat_map(|s| &s.objects)
        .find(|o| o["kind"] == "WasmPlugin")
        .unwrap();
    let list: Vec<(&str, &str, Option<&str>)> = plugin["spec"]["pluginConfig"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["sha256"].as_str().unwrap(),
                e["not_after"].as_str(),
            )
        })
        .collect();
    let (sleep, loadtester) = (&t[0].rotation.as_ref().unwrap(), &t[1]);
    assert_eq!(
        list,
        [
            (
                "sleep",
                sleep.old.sha256.as_str(),
                Some("2027-01-01T00:00:00Z")
            ),
            ("sleep-r2", sleep.new.sha256.as_str(), None),
            ("loadtester-r2", loadtester.sha256.as_str(), None),
            ("external", t[2].sha256.as_str(), None),
        ]
    );
    // The principals of the template's slot go with each of its entries.
    assert_eq!(
        plugin["spec"]["pluginConfig"]["tokens"][1]["principals"],
        json!(["spiffe://cluster.local/ns/demo/sa/sleep"])
    );
    // The Secrets `up` applies are the ones it read: the rotation's record and its new token kept.
    assert_eq!(p.inputs.secrets[0], t[0].secret(false));
    assert_eq!(
        data(&p.inputs.secrets[0], "next").as_deref(),
        Some(next.as_str())
    );
    assert_eq!(
        p.inputs.secrets[1]["metadata"]["annotations"][tokens::NAME_ANNOTATION],
        "loadtester-r2"
    );
}
