//! Renders the Envoy bootstrap (JSON) that loads the filter in front of httpbin.
//!
//! One HTTP connection manager, used by every listener:
//! `envoy.filters.http.wasm` (V8, the module from a local file, the plugin configuration as a
//! `google.protobuf.StringValue`) → router → the `httpbin` cluster, plus a file access log that
//! writes the ECS record with the shipped format, `filter/access-log-format.json`, exactly as
//! the mesh's access-log provider does. Listeners: a plain-text one (HTTP/1.1 and h2c, codec `AUTO`), optionally a
//! TLS one that requires a client certificate signed by a given CA (the peer's URI SAN is what
//! the filter matches `principals` against), either static or served from a watched file
//! (file-based LDS, how a control plane such as istiod pushes listener updates). The stats
//! configuration adds the mesh's extra stat tag (`token`, the per-token counter's) as Istio does.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The access record's one definition: an Envoy `json_format` object (ECS fields, command
/// operators as values). The mesh's copy in `istio/system/istiod.yaml` is checked against it.
pub const ACCESS_LOG_FORMAT_JSON: &str = include_str!("../../filter/access-log-format.json");

/// The `log_format` (a `SubstitutionFormatString`) that writes the record: the shipped
/// `json_format`, with absent values left out rather than printed as `null`/`-`.
pub fn record_log_format() -> Value {
    let format: Value = serde_json::from_str(ACCESS_LOG_FORMAT_JSON)
        .unwrap_or_else(|e| panic!("filter/access-log-format.json is not JSON: {e}"));
    json!({ "json_format": format, "omit_empty_values": true })
}
/// The Wasm plugin's name: Envoy's own plugin stats are `wasm.<name>.*`.
pub const PLUGIN_NAME: &str = "rfma";
/// Name of the plain-text listener.
pub const PLAIN_LISTENER: &str = "rfma_plain";
/// Name of the TLS listener.
pub const TLS_LISTENER: &str = "rfma_tls";
/// Name of the upstream cluster.
pub const HTTPBIN_CLUSTER: &str = "httpbin";

/// The stat tags the mesh's proxies extract beyond Istio's own: ProxyConfig `extraStatTags` on
/// the gated workload (`demo/httpbin.yaml`). `token` is the per-token counter's tag (the filter
/// defines `token=.=<name>;.;rfma_token_allowed_total`), so `/stats/prometheus` shows
/// `rfma_token_allowed_total{token="<name>"}`.
pub const EXTRA_STAT_TAGS: [&str; 1] = ["token"];

/// The tag-extraction rule Istio 1.30 renders for one `extraStatTags` entry (its bootstrap
/// template, `tools/packaging/common/envoy_bootstrap.json`): Envoy cuts the first group out of
/// the stat name and takes the second as the tag's value.
pub fn istio_extra_stat_tag(tag: &str) -> Value {
    json!({ "regex": format!("({tag}=\\.=(.*?);\\.;)"), "tag_name": tag })
}

/// The bootstrap's `stats_config`: Envoy's default tags, plus the mesh's extra ones rendered as
/// Istio renders them, so the sandbox and the end-to-end tests name stats as the mesh does.
pub fn stats_config() -> Value {
    let tags: Vec<Value> = EXTRA_STAT_TAGS
        .iter()
        .map(|tag| istio_extra_stat_tag(tag))
        .collect();
    json!({ "stats_tags": tags })
}

/// What Envoy does when the Wasm VM fails (a trap, or `on_configure` returning false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailurePolicy {
    /// `fail_open: false`: every request through a dead VM gets a 503, until Envoy reloads the
    /// filter (a new listener config). Istio's `failStrategy: FAIL_CLOSE`.
    FailClosed,
    /// `fail_open: true`: a failed VM lets every request through unfiltered. Never for a
    /// security gate; here so the tests can show what it would do.
    FailOpen,
    /// `failure_policy: FAIL_RELOAD`: the request that trapped gets a 503; a later request
    /// after the back-off (in milliseconds) creates a fresh VM.
    FailReload { backoff_ms: u32 },
}

/// The TLS listener's files (PEM): the server's chain and key, and the CA that client
/// certificates must chain to.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
    pub client_ca: PathBuf,
}

/// Where the plain-text listener's configuration lives.
#[derive(Debug, Clone)]
pub enum ListenerSource {
    /// In the bootstrap's `static_resources`.
    Static,
    /// In `file` (inside a watched directory), loaded through file-based LDS; the file is
    /// replaced atomically with [`write_lds_file`].
    Dynamic { file: PathBuf },
}

/// Everything the bootstrap needs.
#[derive(Debug, Clone)]
pub struct BootstrapSpec {
    /// Port of the plain-text listener (0: let the kernel pick; read it back from the admin API).
    pub listener_port: u16,
    /// Port of the admin API (0: picked by the kernel, written to `--admin-address-path`).
    pub admin_port: u16,
    /// httpbin's port on 127.0.0.1.
    pub upstream_port: u16,
    pub wasm: PathBuf,
    /// The plugin configuration, passed to the filter byte for byte.
    pub plugin_config: String,
    pub failure: FailurePolicy,
    pub access_log: PathBuf,
    pub tls: Option<(u16, TlsFiles)>,
    pub listener_source: ListenerSource,
}

impl BootstrapSpec {
    /// A spec with a static plain-text listener on a kernel-picked port and the filter failing
    /// closed.
    pub fn new(upstream_port: u16, wasm: &Path, plugin_config: &str, access_log: &Path) -> Self {
        BootstrapSpec {
            listener_port: 0,
            admin_port: 0,
            upstream_port,
            wasm: wasm.to_path_buf(),
            plugin_config: plugin_config.to_owned(),
            failure: FailurePolicy::FailClosed,
            access_log: access_log.to_path_buf(),
            tls: None,
            listener_source: ListenerSource::Static,
        }
    }
}

fn socket_address(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The Wasm HTTP filter entry.
pub fn wasm_filter(wasm: &Path, plugin_config: &str, failure: FailurePolicy) -> Value {
    let mut config = json!({
        "name": PLUGIN_NAME,
        "root_id": "rfma_token_gate",
        "vm_config": {
            "vm_id": "rfma",
            "runtime": "envoy.wasm.runtime.v8",
            "code": { "local": { "filename": path_str(wasm) } },
        },
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": plugin_config,
        },
    });
    match failure {
        FailurePolicy::FailClosed => {
            config["fail_open"] = json!(false);
        }
        FailurePolicy::FailOpen => {
            config["fail_open"] = json!(true);
        }
        FailurePolicy::FailReload { backoff_ms } => {
            let interval = format!("{}.{:03}s", backoff_ms / 1000, backoff_ms % 1000);
            config["failure_policy"] = json!("FAIL_RELOAD");
            config["reload_config"] =
                json!({ "backoff": { "base_interval": interval, "max_interval": interval } });
        }
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": config,
        },
    })
}

/// The HTTP connection manager shared by every listener.
pub fn connection_manager(spec: &BootstrapSpec, stat_prefix: &str) -> Value {
    json!({
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat_prefix,
            "codec_type": "AUTO",
            // The deny body carries Envoy's x-request-id; echo it so a client can correlate.
            "always_set_request_id_in_response": true,
            "access_log": [{
                "name": "envoy.access_loggers.file",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog",
                    "path": path_str(&spec.access_log),
                    "log_format": record_log_format(),
                },
            }],
            "route_config": {
                "name": "httpbin",
                "virtual_hosts": [{
                    "name": "httpbin",
                    "domains": ["*"],
                    "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": HTTPBIN_CLUSTER } }],
                }],
            },
            "http_filters": [
                wasm_filter(&spec.wasm, &spec.plugin_config, spec.failure),
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                },
            ],
        },
    })
}

/// The plain-text listener (HTTP/1.1, and HTTP/2 with prior knowledge).
pub fn plain_listener(spec: &BootstrapSpec) -> Value {
    json!({
        "name": PLAIN_LISTENER,
        "address": socket_address(spec.listener_port),
        "filter_chains": [{ "filters": [connection_manager(spec, "rfma_plain")] }],
    })
}

/// The TLS listener: client certificate required and verified against `client_ca`.
pub fn tls_listener(spec: &BootstrapSpec, port: u16, files: &TlsFiles) -> Value {
    json!({
        "name": TLS_LISTENER,
        "address": socket_address(port),
        "filter_chains": [{
            "transport_socket": {
                "name": "envoy.transport_sockets.tls",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                    "require_client_certificate": true,
                    "common_tls_context": {
                        "alpn_protocols": ["h2", "http/1.1"],
                        "tls_certificates": [{
                            "certificate_chain": { "filename": path_str(&files.cert_chain) },
                            "private_key": { "filename": path_str(&files.private_key) },
                        }],
                        "validation_context": { "trusted_ca": { "filename": path_str(&files.client_ca) } },
                    },
                },
            },
            "filters": [connection_manager(spec, "rfma_tls")],
        }],
    })
}

/// A file-based LDS document holding `listeners`.
pub fn lds_document(listeners: &[Value]) -> Value {
    let resources: Vec<Value> = listeners
        .iter()
        .map(|l| {
            let mut l = l.clone();
            l["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
            l
        })
        .collect();
    json!({ "version_info": "0", "resources": resources })
}

/// Replaces an LDS file atomically (write a sibling, then rename), so Envoy's directory watch
/// never sees a half-written file.
pub fn write_lds_file(file: &Path, listeners: &[Value]) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&lds_document(listeners))?)?;
    std::fs::rename(&tmp, file)
}

/// Moves the plain-text listener of `spec` to file-based LDS: `listeners.json` in a watched
/// directory `lds` under `dir`, whose first version is written now. A listener that is to be
/// replaced keeps its address, so a kernel-picked port (0) is fixed here to a free one.
/// Returns the LDS file, which [`write_lds_file`] replaces.
pub fn serve_plain_listener_from_file(
    spec: &mut BootstrapSpec,
    dir: &Path,
) -> Result<PathBuf, String> {
    let lds = dir.join("lds");
    std::fs::create_dir_all(&lds).map_err(|e| format!("cannot create {}: {e}", lds.display()))?;
    let file = lds.join("listeners.json");
    if spec.listener_port == 0 {
        spec.listener_port = crate::free_port()?;
    }
    spec.listener_source = ListenerSource::Dynamic { file: file.clone() };
    write_lds_file(&file, &[plain_listener(spec)])
        .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// The whole bootstrap.
pub fn render(spec: &BootstrapSpec) -> Value {
    let mut listeners = Vec::new();
    let mut bootstrap = json!({
        "node": { "id": "istio-demo-sandbox", "cluster": "istio-demo" },
        "admin": { "address": socket_address(spec.admin_port) },
        "stats_config": stats_config(),
        "static_resources": {
            "clusters": [{
                "name": HTTPBIN_CLUSTER,
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": HTTPBIN_CLUSTER,
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket_address(spec.upstream_port) } }] }],
                },
            }],
        },
    });
    match &spec.listener_source {
        ListenerSource::Static => listeners.push(plain_listener(spec)),
        ListenerSource::Dynamic { file } => {
            let dir = file.parent().unwrap_or(Path::new("."));
            bootstrap["dynamic_resources"] = json!({
                "lds_config": {
                    "resource_api_version": "V3",
                    "path_config_source": {
                        "path": path_str(file),
                        "watched_directory": { "path": path_str(dir) },
                    },
                },
            });
        }
    }
    if let Some((port, files)) = &spec.tls {
        listeners.push(tls_listener(spec, *port, files));
    }
    bootstrap["static_resources"]["listeners"] = Value::Array(listeners);
    bootstrap
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BootstrapSpec {
        BootstrapSpec::new(
            8000,
            Path::new("/m.wasm"),
            "{\"tokens\":[]}",
            Path::new("/a.log"),
        )
    }

    #[test]
    fn static_bootstrap_wires_filter_log_and_upstream() {
        let b = render(&spec());
        let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        let wasm = &hcm["http_filters"][0]["typed_config"]["config"];
        assert_eq!(wasm["vm_config"]["runtime"], "envoy.wasm.runtime.v8");
        assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "/m.wasm");
        assert_eq!(wasm["configuration"]["value"], "{\"tokens\":[]}");
        assert_eq!(wasm["fail_open"], false);
        assert_eq!(hcm["http_filters"][1]["name"], "envoy.filters.http.router");
        let log = &hcm["access_log"][0]["typed_config"];
        assert_eq!(log["log_format"]["omit_empty_values"], true);
        assert_eq!(
            log["log_format"]["json_format"]["rfma"]["decision"],
            "%FILTER_STATE(wasm.rfma_decision:PLAIN)%"
        );
        assert_eq!(log["path"], "/a.log");
        let ep = &b["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
            [0];
        assert_eq!(
            ep["endpoint"]["address"]["socket_address"]["port_value"],
            8000
        );
        assert!(b.get("dynamic_resources").is_none());
        assert_eq!(
            b["stats_config"]["stats_tags"],
            json!([{ "tag_name": "token", "regex": r"(token=\.=(.*?);\.;)" }])
        );
    }

    #[test]
    fn dynamic_listener_moves_to_watched_file() {
        let mut s = spec();
        s.listener_source = ListenerSource::Dynamic {
            file: PathBuf::from("/d/lds.json"),
        };
        s.failure = FailurePolicy::FailReload { backoff_ms: 1500 };
        let b = render(&s);
        assert_eq!(b["static_resources"]["listeners"], json!([]));
        let src = &b["dynamic_resources"]["lds_config"]["path_config_source"];
        assert_eq!(src["path"], "/d/lds.json");
        assert_eq!(src["watched_directory"]["path"], "/d");
        let doc = lds_document(&[plain_listener(&s)]);
        let l = &doc["resources"][0];
        assert_eq!(
            l["@type"],
            "type.googleapis.com/envoy.config.listener.v3.Listener"
        );
        let wasm = &l["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"][0]["typed_config"]
            ["config"];
        assert_eq!(wasm["failure_policy"], "FAIL_RELOAD");
        assert_eq!(wasm["reload_config"]["backoff"]["base_interval"], "1.500s");
        assert!(wasm.get("fail_open").is_none());
    }

    #[test]
    fn plain_listener_moves_to_a_file_with_a_fixed_port() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        let file = serve_plain_listener_from_file(&mut s, dir.path()).unwrap();
        assert_eq!(file, dir.path().join("lds/listeners.json"));
        assert_ne!(s.listener_port, 0);
        assert!(matches!(&s.listener_source, ListenerSource::Dynamic { file: f } if *f == file));
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(doc["resources"][0]["name"], PLAIN_LISTENER);
        assert_eq!(
            doc["resources"][0]["address"]["socket_address"]["port_value"],
            s.listener_port
        );
    }
}
