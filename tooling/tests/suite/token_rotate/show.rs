//! `token show` after a rotation: a token is found by its current name, a retiring one is said
//! to be gone, an unknown name lists the names there are.

use super::*;

#[tokio::test]
async fn token_show_finds_a_rotated_name_and_lists_the_names_there_are() {
    let (t, secrets) = switched();
    let mut steps = vec![discovery("v1", &[("Secret", "secrets", true)])];
    for name in ["loadtester-r2", "loadtester", "nope"] {
        for (tok, s) in t.iter().zip(&secrets) {
            steps.push(get(secret_path(tok), s.clone()));
            // Found in the second Secret: no need to read the third.
            if name != "nope" && tok.spec.name == "loadtester" {
                break;
            }
        }
    }
    let (client, handle) = mock();
    let server = serve(handle, steps);
    let cluster = Cluster::new(client, false);
    let shown = istio_demo::commands::token::show(&cluster, "loadtester-r2")
        .await
        .unwrap();
    assert_eq!(shown, data(&secrets[1], "token").unwrap());
    let e = istio_demo::commands::token::show(&cluster, "loadtester")
        .await
        .unwrap_err()
        .to_string();
    assert_mentions(
        &e,
        &[
            "token loadtester is being retired",
            "it holds loadtester-r2",
        ],
    );
    let e = istio_demo::commands::token::show(&cluster, "nope")
        .await
        .unwrap_err()
        .to_string();
    assert_mentions(
        &e,
        &["no demo token named \"nope\" (the demo's tokens: sleep, loadtester-r2, external)"],
    );
    finish(server).await;
}
