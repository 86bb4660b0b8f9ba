//! Principal-bound tokens over a TLS listener that requires client certificates: the peer's
//! URI SAN (a SPIFFE ID, as under Istio mTLS) is what the filter checks.

use crate::e2e_support::*;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::json;
use std::path::Path;

const SLEEP: &str = "spiffe://cluster.local/ns/demo/sa/sleep";
const OTHER: &str = "spiffe://cluster.local/ns/demo/sa/other";
const BOUND: &str = "bound-token-e2e-3";

struct Ca {
    cert: Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "rfma e2e test CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// Writes `<name>.pem` and `<name>.key`, signed by `ca`, with the given SANs and usage.
fn leaf(ca: &Ca, dir: &Path, name: &str, sans: Vec<SanType>, usage: ExtendedKeyUsagePurpose) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.subject_alt_names = sans;
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn spiffe(id: &str) -> SanType {
    SanType::URI(id.to_owned().try_into().unwrap())
}

/// A CA, Envoy's server certificate for 127.0.0.1, and two client certificates.
fn make_certs(dir: &Path) -> TlsFiles {
    let ca = ca();
    std::fs::write(dir.join("ca.pem"), ca.cert.pem()).unwrap();
    leaf(
        &ca,
        dir,
        "server",
        vec![SanType::IpAddress([127, 0, 0, 1].into())],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    leaf(
        &ca,
        dir,
        "sleep",
        vec![spiffe(SLEEP)],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    leaf(
        &ca,
        dir,
        "other",
        vec![spiffe(OTHER)],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    TlsFiles {
        cert_chain: dir.join("server.pem"),
        private_key: dir.join("server.key"),
        client_ca: dir.join("ca.pem"),
    }
}

fn config() -> serde_json::Value {
    let mut c = base_config();
    c["tokens"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "bound", "value": BOUND, "principals": [SLEEP] }));
    c
}

/// curl over TLS with the client certificate `who` (`sleep` or `other`).
fn tls_curl(stack: &Stack, who: &str, extra: &[&str], path: &str) -> CurlResponse {
    let dir = stack.dir.path();
    let (ca, cert, key) = (
        dir.join("ca.pem"),
        dir.join(format!("{who}.pem")),
        dir.join(format!("{who}.key")),
    );
    let url = format!("https://{}{path}", stack.tls().unwrap());
    let mut args = vec![
        "--cacert",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(dir, &args)
}

#[test]
fn listed_identity_passes_and_another_gets_principal_mismatch() {
    let stack = start_with(wasm(), &config(), |spec, dir| {
        spec.tls = Some((0, make_certs(dir)));
        Ok(())
    });
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let bound = format!("x-rfma-token: {BOUND}");
    let alpha = format!("x-rfma-token: {ALPHA}");

    // The listed identity, over HTTP/1.1 and over HTTP/2 (ALPN).
    let ok = tls_curl(&stack, "sleep", &["--http1.1", "-H", &bound], "/headers");
    assert_eq!(
        echoed_header(&assert_upstream(&ok.response), "x-rfma-token"),
        None
    );
    let ok2 = tls_curl(&stack, "sleep", &["--http2", "-H", &bound], "/get");
    assert_eq!((ok2.response.status, ok2.http_version.as_str()), (200, "2"));
    // Another identity with the bound token: 403 principal_mismatch.
    let other = tls_curl(&stack, "other", &["--http1.1", "-H", &bound], "/headers");
    assert_deny(&other.response, 403, "principal_mismatch");
    // A token without principals passes from any authenticated peer; a wrong one does not.
    assert_upstream(&tls_curl(&stack, "other", &["--http1.1", "-H", &alpha], "/get").response);
    let wrong = tls_curl(
        &stack,
        "sleep",
        &["--http1.1", "-H", &format!("x-rfma-token: {WRONG}")],
        "/get",
    );
    assert_deny(&wrong.response, 403, "invalid_token");
    // The bound token over the plain-text listener has no peer identity at all.
    assert_deny(
        &get_with_token(&stack, "/get", BOUND),
        403,
        "principal_mismatch",
    );

    let recs = next_records(&mut log, 6);
    let summary: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r["rfma"]["decision"].as_str().unwrap().to_owned(),
                r["rfma"]["reason"]
                    .as_str()
                    .or(r["rfma"]["token"]["name"].as_str())
                    .unwrap()
                    .to_owned(),
                r["rfma"]["principal"].as_str().map(str::to_owned),
            )
        })
        .collect();
    let s = |d: &str, x: &str, p: Option<&str>| (d.to_owned(), x.to_owned(), p.map(str::to_owned));
    assert_eq!(
        summary,
        [
            s("allow", "bound", Some(SLEEP)),
            s("allow", "bound", Some(SLEEP)),
            s("deny", "principal_mismatch", Some(OTHER)),
            s("allow", "alpha", Some(OTHER)),
            s("deny", "invalid_token", Some(SLEEP)),
            s("deny", "principal_mismatch", None),
        ]
    );
    assert_eq!(recs[1]["http"]["version"], "2");
}

#[test]
fn a_client_without_a_certificate_never_reaches_the_filter_or_httpbin() {
    let stack = start_with(wasm(), &config(), |spec, dir| {
        spec.tls = Some((0, make_certs(dir)));
        Ok(())
    });
    let dir = stack.dir.path();
    let url = format!("https://{}/anything/no-cert", stack.tls().unwrap());
    let out = std::process::Command::new("curl")
        .args(["--silent", "--max-time", "30", "--cacert"])
        .arg(dir.join("ca.pem"))
        .args(["-H", &format!("x-rfma-token: {BOUND}"), &url])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the TLS handshake must fail without a client certificate"
    );
    // The listener still serves clients with certificates.
    assert_upstream(
        &tls_curl(
            &stack,
            "sleep",
            &["-H", &format!("x-rfma-token: {BOUND}")],
            "/get",
        )
        .response,
    );
    assert!(
        !stack
            .httpbin
            .served_paths()
            .unwrap()
            .iter()
            .any(|p| p.contains("no-cert"))
    );
}
