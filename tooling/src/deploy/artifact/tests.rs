//! Unit tests of the Flux artifact: layout, reproducibility, names, links and unpacking.

use super::tree::is_ignored;
use super::ustar::{set_checksum, ustar_header};
use super::*;
use std::fs;
use std::io::{Read, Write};

const SOURCE: &str = "https://example.test/acme/istio-demo.git";
const REVISION: &str = "main@sha1:0123456789abcdef0123456789abcdef01234567";

fn tree(dir: &Path) {
    fs::create_dir_all(dir.join("a")).unwrap();
    fs::create_dir_all(dir.join("empty")).unwrap();
    fs::write(dir.join("kustomization.yaml"), "resources: [a/cm.yaml]\n").unwrap();
    fs::write(dir.join("a/cm.yaml"), "kind: ConfigMap\n").unwrap();
    fs::write(dir.join("a-b"), "x").unwrap();
}

fn files(layer: &[u8]) -> Vec<(String, u8, u32, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(layer));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                h.entry_type().as_byte(),
                h.mode().unwrap(),
                data,
            )
        })
        .collect()
}

#[test]
fn entries_come_in_walkdir_order_with_flux_headers() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let a = build(t.path(), SOURCE, REVISION).unwrap();
    // Per directory, names sorted bytewise: "a" then "a-b" (a full-path sort would put a-b
    // before a/cm.yaml).
    assert_eq!(
        a.entries,
        [".", "a", "a/cm.yaml", "a-b", "empty", "kustomization.yaml"]
    );
    let got = files(&a.layer);
    let summary: Vec<(&str, u8, u32)> = got
        .iter()
        .map(|(n, t, m, _)| (n.as_str(), *t, *m))
        .collect();
    assert_eq!(
        summary,
        [
            (".", b'5', 0o755),
            ("a", b'5', 0o755),
            ("a/cm.yaml", b'0', 0o644),
            ("a-b", b'0', 0o644),
            ("empty", b'5', 0o755),
            ("kustomization.yaml", b'0', 0o644),
        ]
    );
    assert_eq!(got[2].3, b"kind: ConfigMap\n");
    // gzip header: no name, mtime 0, default level, OS unknown (what Go's gzip.NewWriter writes).
    assert_eq!(&a.layer[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
}

#[test]
fn header_bytes_are_gos() {
    let h = ustar_header("a/cm.yaml", 0o644, 16, b'0').unwrap();
    assert_eq!(&h[0..10], b"a/cm.yaml\0");
    assert_eq!(&h[100..108], b"0000644\0");
    assert_eq!(&h[108..124], b"0000000\x000000000\x00");
    assert_eq!(&h[124..136], b"00000000020\0");
    assert_eq!(&h[136..148], b"00000000000\0");
    assert_eq!(h[156], b'0');
    assert_eq!(&h[257..265], b"ustar\x0000");
    assert!(h[265..329].iter().all(|&c| c == 0), "no user or group name");
    assert_eq!(&h[329..345], b"0000000\x000000000\x00");
    // Checksum: six octal digits, NUL, space; the sum with the field read as spaces.
    assert_eq!(h[154], 0);
    assert_eq!(h[155], b' ');
    let sum: u32 = h
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(c)
            }
        })
        .sum();
    assert_eq!(
        std::str::from_utf8(&h[148..154]).unwrap(),
        format!("{sum:06o}")
    );
    // The tar crate reads it back as the same entry.
    let parsed = tar::Header::from_byte_slice(&h);
    assert_eq!(parsed.cksum().unwrap(), sum);
    assert_eq!(parsed.size().unwrap(), 16);

    // Long names split at a slash as Go splits them; unsplittable ones are refused.
    let dir = "d".repeat(120);
    let long = format!("{dir}/file.yaml");
    let h = ustar_header(&long, 0o644, 0, b'0').unwrap();
    assert_eq!(&h[0..10], b"file.yaml\0");
    assert_eq!(&h[345..465], dir.as_bytes());
    assert_eq!(
        tar::Header::from_byte_slice(&h).path().unwrap(),
        Path::new(&long)
    );
    assert!(ustar_header(&"x".repeat(101), 0o644, 0, b'0').is_err());
}

#[test]
fn reproducible_across_mtimes_modes_and_copies() {
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    tree(one.path());
    tree(two.path());
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    for p in ["kustomization.yaml", "a/cm.yaml", "a-b"] {
        fs::File::options()
            .write(true)
            .open(one.path().join(p))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(
            two.path().join("a/cm.yaml"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        fs::set_permissions(two.path().join("a"), fs::Permissions::from_mode(0o700)).unwrap();
    }
    let a = build(one.path(), SOURCE, REVISION).unwrap();
    let b = build(two.path(), SOURCE, REVISION).unwrap();
    assert_eq!(a.layer, b.layer);
    assert_eq!(a.digest, b.digest);
    assert_eq!(a.digest, oci::sha256_digest(&a.manifest));
    // What is in the tree and its annotations do change the digest.
    let c = build(
        one.path(),
        SOURCE,
        "main@sha1:1123456789abcdef0123456789abcdef01234567",
    )
    .unwrap();
    assert_ne!(a.digest, c.digest);
    assert_eq!(a.layer_digest, c.layer_digest);
    fs::write(two.path().join("a-b"), "y").unwrap();
    assert_ne!(
        a.layer_digest,
        build(two.path(), SOURCE, REVISION).unwrap().layer_digest
    );
}

#[test]
fn manifest_and_config_are_fluxs() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    let a = build(t.path(), "https://example.test/x?a=1&b=<2>", "v1.2.3").unwrap();
    let text = std::str::from_utf8(&a.manifest).unwrap();
    assert!(
        text.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.flux.config.v1+json","size":115,"digest":"sha256:"#),
        "{text}"
    );
    assert!(text.ends_with(r#""annotations":{"org.opencontainers.image.created":"1970-01-01T00:00:00Z","org.opencontainers.image.revision":"v1.2.3","org.opencontainers.image.source":"https://example.test/x?a=1\u0026b=\u003c2\u003e"}}"#), "{text}");
    let m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
    assert_eq!(
        m["annotations"][SOURCE_ANNOTATION],
        "https://example.test/x?a=1&b=<2>"
    );
    assert_eq!(m["layers"][0]["mediaType"], CONTENT_MEDIA_TYPE);
    assert_eq!(m["layers"][0]["size"], a.layer.len());
    assert_eq!(m["layers"][0]["digest"], a.layer_digest);
    assert_eq!(a.config, FLUX_CONFIG.as_bytes());
    assert_eq!(
        m["config"]["digest"],
        oci::sha256_digest(FLUX_CONFIG.as_bytes())
    );
    oci::check_parts(&a.parts()).unwrap();
}

#[test]
fn skips_what_flux_skips() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    fs::create_dir_all(d.join(".git/objects")).unwrap();
    fs::write(d.join(".git/config"), "x").unwrap();
    fs::create_dir_all(d.join("sub/.git")).unwrap();
    fs::write(d.join("sub/.git/HEAD"), "x").unwrap();
    fs::write(d.join("sub/.gitignore"), "x").unwrap();
    fs::write(d.join(".gitattributes"), "x").unwrap();
    fs::write(d.join("logo.png"), "x").unwrap();
    fs::write(d.join("bundle.tar.gz"), "x").unwrap();
    fs::create_dir_all(d.join("old.zip")).unwrap();
    fs::write(d.join("old.zip/inside.yaml"), "x").unwrap();
    fs::write(d.join("keep.yaml"), "x").unwrap();
    fs::write(d.join("notes.png.txt"), "x").unwrap();
    // A `.git` file (a worktree's pointer) is not a directory: Flux's `.git/` keeps it.
    fs::write(d.join("sub/.git-file"), "x").unwrap();
    let a = build(d, SOURCE, REVISION).unwrap();
    assert_eq!(
        a.entries,
        [".", "keep.yaml", "notes.png.txt", "sub", "sub/.git-file"]
    );
    assert!(is_ignored(".git", true) && !is_ignored(".git", false));
    assert!(is_ignored(".png", false) && !is_ignored("png", false));
}

#[cfg(unix)]
#[test]
fn links_inside_are_followed_and_links_outside_refused() {
    use std::os::unix::fs::symlink;
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "s3cret").unwrap();
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    symlink("a/cm.yaml", t.path().join("link.yaml")).unwrap();
    symlink("a", t.path().join("linkdir")).unwrap();
    let a = build(t.path(), SOURCE, REVISION).unwrap();
    assert!(a.entries.contains(&"link.yaml".to_string()));
    assert!(a.entries.contains(&"linkdir/cm.yaml".to_string()));
    let got = files(&a.layer);
    let link = got.iter().find(|f| f.0 == "link.yaml").unwrap();
    assert_eq!(
        (link.1, link.3.as_slice()),
        (b'0', &b"kind: ConfigMap\n"[..])
    );

    symlink(outside.path().join("secret"), t.path().join("leak")).unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(
        err.contains("outside the tree") && err.contains("leak"),
        "{err}"
    );
    fs::remove_file(t.path().join("leak")).unwrap();

    symlink("../..", t.path().join("a/up")).unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(err.contains("outside the tree"), "{err}");
    fs::remove_file(t.path().join("a/up")).unwrap();

    symlink("..", t.path().join("a/loop")).unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(err.contains("loop"), "{err}");
    fs::remove_file(t.path().join("a/loop")).unwrap();

    symlink("missing", t.path().join("dangling")).unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(err.contains("leads nowhere"), "{err}");
}

#[test]
fn refuses_names_flux_cannot_carry() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("a\\b.yaml"), "x").unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(err.contains("backslash"), "{err}");
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("caf\u{e9}.yaml"), "x").unwrap();
    let err = format!("{:#}", build(t.path(), SOURCE, REVISION).unwrap_err());
    assert!(err.contains("ASCII"), "{err}");
    let err = build(Path::new("/nonexistent/tree"), SOURCE, REVISION).unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/tree"), "{err:#}");
}

#[test]
fn a_single_file_is_packed_as_flux_stages_it() {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("all.yaml"), "kind: List\n").unwrap();
    let a = build(&t.path().join("all.yaml"), SOURCE, REVISION).unwrap();
    assert_eq!(a.entries, [".", "all.yaml"]);
}

#[test]
fn revisions_and_sources() {
    for ok in [
        REVISION,
        "v1.0.0@sha1:0123456789abcdef0123456789abcdef01234567",
        "sha1:0123456789abcdef0123456789abcdef01234567",
        &format!("main@sha256:{}", "ab".repeat(32)),
        "v1.0.0",
        "latest",
    ] {
        check_revision(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "",
        "main@sha1:abc",
        "main@md5:0123",
        "@sha1:0123456789abcdef0123456789abcdef01234567",
        "main@sha1:0123456789abcdef0123456789abcdef0123456z",
        "two words",
        "sha256:12",
    ] {
        assert!(check_revision(bad).is_err(), "{bad:?} accepted");
    }
    assert!(check_source("").is_err());
    assert!(check_source("https://x.test/a b").is_err());
    check_source("git@github.com:acme/istio-demo.git").unwrap();
    assert_eq!(
        go_json_string("a\n\"<&>\u{2028}"),
        r#""a\n\"\u003c\u0026\u003e\u2028""#
    );
}

#[test]
fn unpack_round_trips() {
    let t = tempfile::tempdir().unwrap();
    tree(t.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(t.path().join("a-b"), fs::Permissions::from_mode(0o700)).unwrap();
    }
    let a = build(t.path(), SOURCE, REVISION).unwrap();
    let out = tempfile::tempdir().unwrap();
    let into = out.path().join("tree");
    unpack(&a.layer, &into).unwrap();
    assert_eq!(
        fs::read(into.join("a/cm.yaml")).unwrap(),
        b"kind: ConfigMap\n"
    );
    assert!(into.join("empty").is_dir());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &str| fs::metadata(into.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("a-b"), 0o755);
        assert_eq!(mode("kustomization.yaml"), 0o644);
    }
    // The unpacked tree packs to the same artifact.
    assert_eq!(build(&into, SOURCE, REVISION).unwrap().digest, a.digest);
    // Not into a directory that already holds something.
    let err = unpack(&a.layer, &into).unwrap_err().to_string();
    assert!(err.contains("not empty"), "{err}");
}

/// A layer of raw entries (name, typeflag, data); names are written as given.
/// An entry of a hand-made layer: name, typeflag, content.
type RawEntry<'a> = (&'a str, u8, &'a [u8]);

fn raw_layer(entries: &[RawEntry]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (name, flag, data) in entries {
        // ustar_header writes any name it is given: the checks are the walk's, not the header's.
        let mut h = ustar_header(name, 0o644, data.len() as u64, *flag).unwrap();
        if *flag == b'2' {
            h[157..163].copy_from_slice(b"/etc/x");
            set_checksum(&mut h);
        }
        tar.extend_from_slice(&h);
        tar.extend_from_slice(data);
        tar.resize(tar.len().next_multiple_of(512), 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

#[test]
fn unpack_refuses_escapes_links_and_duplicates() {
    let cases: &[(&[RawEntry], &str)] = &[
        (&[("../x", b'0', b"pwned")], "'..'"),
        (&[("a/../../x", b'0', b"pwned")], "'..'"),
        (&[("/tmp/x", b'0', b"pwned")], "absolute"),
        (&[("a\\..\\x", b'0', b"pwned")], "backslash"),
        (&[("link", b'2', b"")], "only directories and regular files"),
        (&[("k.yaml", b'0', b"1"), ("k.yaml", b'0', b"2")], "twice"),
    ];
    for (entries, want) in cases {
        let base = tempfile::tempdir().unwrap();
        let into = base.path().join("out");
        let err = format!("{:#}", unpack(&raw_layer(entries), &into).unwrap_err());
        assert!(err.contains(want), "{entries:?}: {err}");
        assert!(
            !base.path().join("x").exists(),
            "wrote outside: {entries:?}"
        );
    }
    let base = tempfile::tempdir().unwrap();
    let err = unpack(b"not gzip", &base.path().join("o")).unwrap_err();
    assert!(format!("{err:#}").contains("gzip"), "{err:#}");
}
