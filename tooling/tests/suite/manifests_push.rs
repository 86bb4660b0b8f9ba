//! `istio-demo manifests push` end to end against a real registry on loopback (Debian's
//! `docker-registry`, see support/registry.rs): the Flux artifact is read back over HTTP (media
//! types, annotations, Flux's config), its layer unpacked and built with `kubectl kustomize`; the
//! same tree gives the same digest on a second push and from a copy with other file times; a layer
//! that climbs out of its directory is refused; and the repository's own manifest directories
//! travel in one artifact and build the same after the trip.

use crate::support::registry::{get, pull_blob, sha256, start_registry};
use istio_demo::deploy::artifact;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_istio-demo");
const SOURCE: &str = "https://example.test/acme/istio-demo.git";
const REVISION: &str = "main@sha1:4b825dc642cb6eb9a060e54bf8d69288fbee4904";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A small kustomization: a ConfigMap and a Service in a base directory, plus what Flux leaves out.
fn demo_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("base")).unwrap();
    std::fs::write(
        dir.join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: demo\nresources:\n  - base\n  - settings.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo-settings\ndata:\n  greeting: hello\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("base/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - service.yaml\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("base/service.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: httpbin\nspec:\n  ports:\n    - port: 8000\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join(".git")).unwrap();
    std::fs::write(dir.join(".git/config"), "[core]\n").unwrap();
    std::fs::write(dir.join("diagram.png"), b"\x89PNG").unwrap();
}

/// `istio-demo manifests push REF --dir DIR EXTRA...` with an empty Docker config.
fn push(reference: &str, dir: &Path, extra: &[&str]) -> Output {
    let docker = tempfile::tempdir().unwrap();
    Command::new(BIN)
        .args(["manifests", "push", reference, "--dir"])
        .arg(dir)
        .args(extra)
        .env("DOCKER_CONFIG", docker.path())
        .output()
        .unwrap()
}

fn pushed(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "push failed: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout is the digest alone: {stdout:?}");
    let digest = lines[0];
    let hex = digest.strip_prefix("sha256:").unwrap_or_default();
    assert!(
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "not a sha256 digest: {digest:?}"
    );
    digest.to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// The manifest under `reference` (tag or digest), checked against the registry's digest header.
fn manifest(addr: &str, repo: &str, reference: &str) -> (String, Value) {
    let (status, headers, body) = get(
        &format!("http://{addr}/v2/{repo}/manifests/{reference}"),
        OCI_MANIFEST,
        None,
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers.get("content-type").unwrap(), OCI_MANIFEST);
    let digest = headers
        .get("docker-content-digest")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(sha256(&body), digest);
    (digest, serde_json::from_slice(&body).unwrap())
}

fn kustomize(dir: &Path) -> String {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl (scripts/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Pulls the artifact's layer by the manifest and unpacks it into a new directory under `into`.
fn pull_and_unpack(addr: &str, repo: &str, m: &Value, into: &Path) -> PathBuf {
    let layer = &m["layers"][0];
    let bytes = pull_blob(addr, repo, layer["digest"].as_str().unwrap(), None);
    assert_eq!(layer["size"].as_u64().unwrap(), bytes.len() as u64);
    let out = into.join("unpacked");
    artifact::unpack(&bytes, &out).unwrap();
    out
}

#[test]
fn push_a_kustomization_and_read_it_back() {
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    demo_tree(&tree);
    let reference = format!("oci://{}/demo/manifests:v1", reg.addr);

    let out = push(
        &reference,
        &tree,
        &["--insecure", "--source", SOURCE, "--revision", REVISION],
    );
    let digest = pushed(&out);
    assert!(
        stderr(&out).contains(&format!("oci://{}/demo/manifests@{digest}", reg.addr)),
        "{}",
        stderr(&out)
    );

    let (by_tag, m) = manifest(&reg.addr, "demo/manifests", "v1");
    assert_eq!(by_tag, digest, "printed digest must be the registry's");
    assert_eq!(m["schemaVersion"], 2);
    assert_eq!(m["mediaType"], OCI_MANIFEST);
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.cncf.flux.config.v1+json"
    );
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "a Flux artifact has one layer");
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.cncf.flux.content.v1.tar+gzip"
    );
    let annotations = &m["annotations"];
    assert_eq!(annotations["org.opencontainers.image.source"], SOURCE);
    assert_eq!(annotations["org.opencontainers.image.revision"], REVISION);
    assert_eq!(
        annotations["org.opencontainers.image.created"],
        "1970-01-01T00:00:00Z"
    );
    let config = pull_blob(
        &reg.addr,
        "demo/manifests",
        m["config"]["digest"].as_str().unwrap(),
        None,
    );
    assert_eq!(config, artifact::FLUX_CONFIG.as_bytes());

    // The layer unpacks to the tree less what Flux leaves out, and it builds as the original does.
    let unpacked = pull_and_unpack(&reg.addr, "demo/manifests", &m, work.path());
    for f in ["kustomization.yaml", "settings.yaml", "base/service.yaml"] {
        assert_eq!(
            std::fs::read(unpacked.join(f)).unwrap(),
            std::fs::read(tree.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!unpacked.join(".git").exists() && !unpacked.join("diagram.png").exists());
    let built = kustomize(&unpacked);
    assert!(built.contains("name: demo-settings") && built.contains("name: httpbin"));
    assert!(built.contains("namespace: demo"), "{built}");
    assert_eq!(built, kustomize(&tree));

    // Reproducible: again under the same tag (blobs already there) and under another tag.
    assert_eq!(
        pushed(&push(
            &reference,
            &tree,
            &["--insecure", "--source", SOURCE, "--revision", REVISION]
        )),
        digest
    );
    let other = format!("{}/demo/manifests:v1-again", reg.addr);
    assert_eq!(
        pushed(&push(
            &other,
            &tree,
            &["--insecure", "--source", SOURCE, "--revision", REVISION]
        )),
        digest
    );
    // The digest resolves (what an OCIRepository pinned by digest fetches).
    assert_eq!(manifest(&reg.addr, "demo/manifests", &digest).0, digest);
    // And it is the digest the library computes without a registry.
    assert_eq!(
        artifact::build(&tree, SOURCE, REVISION).unwrap().digest(),
        digest
    );
}

#[test]
fn same_digest_from_copies_with_different_file_times_and_modes() {
    let work = tempfile::tempdir().unwrap();
    let (one, two) = (work.path().join("one"), work.path().join("two"));
    demo_tree(&one);
    demo_tree(&two);
    let long_ago = std::time::UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 365);
    for f in [
        "kustomization.yaml",
        "settings.yaml",
        "base/service.yaml",
        "base/kustomization.yaml",
    ] {
        std::fs::File::options()
            .write(true)
            .open(one.join(f))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            two.join("settings.yaml"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::set_permissions(two.join("base"), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let a = artifact::build(&one, SOURCE, REVISION).unwrap();
    let b = artifact::build(&two, SOURCE, REVISION).unwrap();
    assert_eq!(a.layer(), b.layer());
    assert_eq!(a.digest(), b.digest());
    // The time and owner fields of every tar header are zero.
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(a.layer()));
    for entry in archive.entries().unwrap() {
        let e = entry.unwrap();
        let h = e.header();
        assert_eq!(
            (h.mtime().unwrap(), h.uid().unwrap(), h.gid().unwrap()),
            (0, 0, 0)
        );
        assert_eq!(
            (h.username_bytes(), h.groupname_bytes()),
            (Some(&b""[..]), Some(&b""[..]))
        );
    }
    // A different revision is a different artifact with the same layer.
    let c = artifact::build(&one, SOURCE, "v1.0.0").unwrap();
    assert_ne!(c.digest(), a.digest());
    assert_eq!(c.layer(), a.layer());
}

/// A gzip'd tar whose one entry is named `name` (written raw: the tar crate refuses `..`).
fn layer_named(name: &str) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_mode(0o644);
    header.set_size(5);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    tar.extend_from_slice(b"pwned");
    tar.resize(512 * 4, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn unpack_rejects_a_layer_that_climbs_out() {
    let base = tempfile::tempdir().unwrap();
    let into = base.path().join("into");
    let err = artifact::unpack(&layer_named("../x"), &into).unwrap_err();
    assert!(format!("{err:#}").contains(".."), "{err:#}");
    assert!(
        !base.path().join("x").exists(),
        "wrote outside the directory"
    );
    let err = artifact::unpack(
        &layer_named("/tmp/istio-demo-unpack-x"),
        &base.path().join("b"),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("absolute"), "{err:#}");
    assert!(!Path::new("/tmp/istio-demo-unpack-x").exists());
    // The same layer with a harmless name unpacks.
    artifact::unpack(&layer_named("x"), &base.path().join("c")).unwrap();
    assert_eq!(std::fs::read(base.path().join("c/x")).unwrap(), b"pwned");
}

#[test]
fn push_errors_are_clear_and_change_nothing() {
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    demo_tree(&tree);
    let reference = format!("{}/demo/broken:v1", reg.addr);
    let flags = ["--source", SOURCE, "--revision", REVISION];

    // HTTPS against a plain-HTTP registry: the error points at --insecure.
    let out = push(&reference, &tree, &flags);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--insecure"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("istio-demo manifests: error:"),
        "{}",
        stderr(&out)
    );

    // A link out of the tree is refused before anything is sent.
    #[cfg(unix)]
    {
        let outside = work.path().join("secret.yaml");
        std::fs::write(&outside, "kind: Secret\n").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("leak.yaml")).unwrap();
        let out = push(&reference, &tree, &[&flags[..], &["--insecure"]].concat());
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains("outside the tree"),
            "{}",
            stderr(&out)
        );
        std::fs::remove_file(tree.join("leak.yaml")).unwrap();
    }

    // A malformed revision, a missing directory, and no Git checkout to take defaults from.
    let out = push(
        &reference,
        &tree,
        &[
            "--insecure",
            "--source",
            SOURCE,
            "--revision",
            "main@sha1:123",
        ],
    );
    assert!(stderr(&out).contains("sha1:<40 hex>"), "{}", stderr(&out));
    let out = push(&reference, &work.path().join("nope"), &["--insecure"]);
    assert!(
        stderr(&out).contains("no such directory"),
        "{}",
        stderr(&out)
    );
    let out = push(&reference, &tree, &["--insecure", "--revision", REVISION]);
    assert!(
        stderr(&out).contains("--source is needed"),
        "{}",
        stderr(&out)
    );

    let (status, _, _) = get(
        &format!("http://{}/v2/demo/broken/tags/list", reg.addr),
        "*/*",
        None,
    );
    assert_eq!(
        status, 404,
        "the repository must not exist after failed pushes"
    );
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=test", "-c", "user.email=test@example.test"])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn source_and_revision_default_to_the_git_checkout() {
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    demo_tree(&repo.join("deploy"));
    std::fs::remove_dir_all(repo.join("deploy/.git")).unwrap();
    git(
        work.path(),
        &["init", "-q", "-b", "release", repo.to_str().unwrap()],
    );
    git(&repo, &["remote", "add", "origin", SOURCE]);
    git(&repo, &["add", "."]);
    git(&repo, &["commit", "-q", "-m", "manifests"]);
    let commit = git(&repo, &["rev-parse", "HEAD"]);

    let out = push(
        &format!("{}/demo/from-git:v1", reg.addr),
        &repo.join("deploy"),
        &["--insecure"],
    );
    let digest = pushed(&out);
    assert!(!stderr(&out).contains("uncommitted"), "{}", stderr(&out));
    let (_, m) = manifest(&reg.addr, "demo/from-git", &digest);
    assert_eq!(m["annotations"]["org.opencontainers.image.source"], SOURCE);
    assert_eq!(
        m["annotations"]["org.opencontainers.image.revision"],
        format!("release@sha1:{commit}")
    );

    // Uncommitted changes are pushed, with a warning that the revision does not describe them.
    std::fs::write(repo.join("deploy/settings.yaml"), "kind: ConfigMap\n").unwrap();
    let out = push(
        &format!("{}/demo/from-git:v2", reg.addr),
        &repo.join("deploy"),
        &["--insecure"],
    );
    assert_ne!(pushed(&out), digest);
    assert!(
        stderr(&out).contains("uncommitted changes"),
        "{}",
        stderr(&out)
    );
}

/// Copies a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Every file under `dir` (relative path, bytes), and every directory holding a kustomization.
fn survey(dir: &Path, rel: &str, files: &mut Vec<(String, Vec<u8>)>, roots: &mut Vec<String>) {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let r = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        if path.is_dir() {
            survey(&path, &r, files, roots);
        } else {
            if ["kustomization.yaml", "kustomization.yml", "Kustomization"].contains(&name.as_str())
            {
                roots.push(rel.to_string());
            }
            files.push((r, std::fs::read(&path).unwrap()));
        }
    }
}

/// `kubectl kustomize DIR`: whether it built, and what it printed on stdout.
fn try_kustomize(dir: &Path) -> (bool, String) {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

/// The repository's manifest directories (as they are in this checkout) go out in one artifact
/// and come back the same: the same files byte for byte, and every kustomization in them builds,
/// or fails, exactly as it does from the directories that were pushed.
#[test]
fn the_repository_manifests_travel_in_one_artifact_and_build_the_same() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let dirs = ["flux", "istio", "demo", "flagger", "elk", "monitoring"];
    let reg = start_registry(|_| String::new());
    let work = tempfile::tempdir().unwrap();
    let staged = work.path().join("manifests");
    for d in dirs {
        copy_tree(&repo.join(d), &staged.join(d));
    }
    let digest = pushed(&push(
        &format!("{}/istio-demo/manifests:latest", reg.addr),
        &staged,
        &["--insecure", "--source", SOURCE, "--revision", REVISION],
    ));
    let (_, m) = manifest(&reg.addr, "istio-demo/manifests", &digest);
    let unpacked = pull_and_unpack(&reg.addr, "istio-demo/manifests", &m, work.path());

    let (mut sent, mut roots) = (Vec::new(), Vec::new());
    survey(&staged, "", &mut sent, &mut roots);
    let (mut back, mut _roots) = (Vec::new(), Vec::new());
    survey(&unpacked, "", &mut back, &mut _roots);
    // Flux leaves images and archives out; nothing else may change.
    let flux_skips = |name: &str| {
        [
            ".png", ".jpg", ".jpeg", ".gif", ".wmv", ".flv", ".tar.gz", ".zip",
        ]
        .iter()
        .any(|ext| name.ends_with(ext))
            || name.split('/').any(|p| p == ".git")
            || [".gitignore", ".gitmodules", ".gitattributes"]
                .contains(&name.rsplit('/').next().unwrap_or_default())
    };
    sent.retain(|(name, _)| !flux_skips(name));
    assert_eq!(sent.len(), back.len(), "the same number of files");
    for ((a, x), (b, y)) in sent.iter().zip(&back) {
        assert_eq!(a, b);
        assert!(x == y, "{a} changed on the way");
    }

    let mut built = 0;
    for root in &roots {
        let (ok, before) = try_kustomize(&staged.join(root));
        let (ok_after, after) = try_kustomize(&unpacked.join(root));
        assert_eq!(
            ok, ok_after,
            "{root}: builds before the push: {ok}, after: {ok_after}"
        );
        assert!(before == after, "{root} builds differently after the trip");
        built += usize::from(ok);
    }
    assert!(
        built > 0 && roots.iter().any(|r| r == "demo"),
        "no kustomization of the repository built (roots: {roots:?})"
    );
}
