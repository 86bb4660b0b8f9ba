//! Renders the Envoy bootstrap (JSON) that loads the filter in front of httpbin.
//!
//! One HTTP connection manager, used by every listener:
//! `envoy.filters.http.wasm` (V8, the module from a local file, the plugin configuration as a
//! `google.protobuf.StringValue`) → router → the `httpbin` cluster, plus a file access log that
//! writes the ECS record with the shipped format, `filter/access-log-format.json`, exactly as
//! the mesh's access-log provider does. Listeners: a plain-text one (HTTP/1.1 and h2c, codec `AUTO`), optionally a
//! TLS one that requires a client certificate signed by a given CA (the peer's URI SAN is what
//! the filter matches `principals` against), either static or served from a watched file
//! (file-based LDS, how a control plane such as istiod pushes listener updates). The Wasm
//! filter's configuration is either inline in the listener or served from a watched file of its
//! own (file-based ECDS, how Istio delivers a WasmPlugin), so it can change without a new
//! listener. The stats
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
/// The name of the Wasm filter entry, and of its ECDS resource, when its configuration comes by
/// ECDS ([`FilterSource::Discovered`]). Envoy's ECDS stats are named after it ([`ecds_stat`]).
pub const ECDS_FILTER: &str = "rfma";
/// The Wasm filter's configuration type.
pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
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

/// Where the Wasm HTTP filter's configuration lives.
#[derive(Debug, Clone, Default)]
pub enum FilterSource {
    /// Inline in the listener's HTTP connection manager: replacing it means replacing the
    /// listener, and a connection keeps the filter it was accepted with until it is drained.
    #[default]
    Inline,
    /// In `file` (inside a watched directory), loaded through file-based ECDS (Extension Config
    /// Discovery, how Istio delivers a WasmPlugin): an update reaches the next request on every
    /// connection, with no listener drain. The file is replaced atomically with
    /// [`write_ecds_file`].
    Discovered { file: PathBuf },
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
    /// Where the Wasm filter's configuration comes from (`wasm`, `plugin_config` and `failure`
    /// render it either way).
    pub filter_source: FilterSource,
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
            filter_source: FilterSource::Inline,
        }
    }
}

fn socket_address(port: u16) -> Value {
    json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } })
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The Wasm HTTP filter's configuration: an `envoy.extensions.filters.http.wasm.v3.Wasm` with its
/// `@type`, what the listener carries inline or an ECDS resource carries as its `typed_config`.
pub fn wasm_typed_config(wasm: &Path, plugin_config: &str, failure: FailurePolicy) -> Value {
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
    json!({ "@type": WASM_TYPE_URL, "config": config })
}

/// The Wasm HTTP filter entry, its configuration inline.
pub fn wasm_filter(wasm: &Path, plugin_config: &str, failure: FailurePolicy) -> Value {
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": wasm_typed_config(wasm, plugin_config, failure),
    })
}

/// The Wasm HTTP filter entry whose configuration comes by file-based ECDS from `file` (in a
/// watched directory), as Istio delivers a WasmPlugin (there over ADS). Only a Wasm
/// configuration is taken (`type_urls`). There is no `default_config`: the listener warms
/// until the first configuration has arrived, so it never serves without the gate.
pub fn ecds_wasm_filter(file: &Path) -> Value {
    let dir = file.parent().unwrap_or(Path::new("."));
    json!({
        "name": ECDS_FILTER,
        "config_discovery": {
            "config_source": {
                "resource_api_version": "V3",
                "path_config_source": {
                    "path": path_str(file),
                    "watched_directory": { "path": path_str(dir) },
                },
            },
            "type_urls": [WASM_TYPE_URL],
        },
    })
}

/// The filter entry `spec` asks for: inline, or by ECDS.
fn http_wasm_filter(spec: &BootstrapSpec) -> Value {
    match &spec.filter_source {
        FilterSource::Inline => wasm_filter(&spec.wasm, &spec.plugin_config, spec.failure),
        FilterSource::Discovered { file } => ecds_wasm_filter(file),
    }
}

/// A file-based ECDS document: a `DiscoveryResponse` holding one `TypedExtensionConfig` named
/// [`ECDS_FILTER`] (the name the filter entry subscribes to) around `typed_config`.
pub fn ecds_document(typed_config: &Value) -> Value {
    json!({
        "version_info": "0",
        "resources": [{
            "@type": "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig",
            "name": ECDS_FILTER,
            "typed_config": typed_config,
        }],
    })
}

/// Replaces an ECDS file atomically (a sibling, then a rename), so Envoy's directory watch never
/// sees a half-written file. `typed_config` is the filter's configuration, as
/// [`wasm_typed_config`] renders it.
pub fn write_ecds_file(file: &Path, typed_config: &Value) -> std::io::Result<()> {
    replace_file(file, &ecds_document(typed_config))
}

/// Writes `document` to a sibling of `file`, then renames it over `file`: a watcher of the
/// directory sees the old file or the new one, never a half-written one.
fn replace_file(file: &Path, document: &Value) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(document)?)?;
    std::fs::rename(&tmp, file)
}

/// `dir/sub/name`, with `dir/sub` created: a file in a directory of its own for Envoy to watch.
fn watched_file(dir: &Path, sub: &str, name: &str) -> Result<PathBuf, String> {
    let watched = dir.join(sub);
    std::fs::create_dir_all(&watched)
        .map_err(|e| format!("cannot create {}: {e}", watched.display()))?;
    Ok(watched.join(name))
}

/// Moves the Wasm filter's configuration of `spec` to file-based ECDS: `filter.json` in a watched
/// directory `ecds` under `dir`, whose first version (the spec's configuration) is written now.
/// Works with a static or a file-based listener (call this before
/// [`serve_plain_listener_from_file`], which renders the listener). Returns the ECDS file, which
/// [`write_ecds_file`] replaces.
pub fn serve_filter_config_from_file(
    spec: &mut BootstrapSpec,
    dir: &Path,
) -> Result<PathBuf, String> {
    let file = watched_file(dir, "ecds", "filter.json")?;
    spec.filter_source = FilterSource::Discovered { file: file.clone() };
    write_ecds_file(
        &file,
        &wasm_typed_config(&spec.wasm, &spec.plugin_config, spec.failure),
    )
    .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    Ok(file)
}

/// The ECDS counters of the filter entry [`ecds_wasm_filter`] renders: `config_reload` counts
/// configurations every worker has taken, `config_fail` the ones Envoy refused (the previous one
/// serves on).
pub fn ecds_stat(counter: &str) -> String {
    format!("extension_config_discovery.http_filter.{ECDS_FILTER}.{counter}")
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
                http_wasm_filter(spec),
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
    replace_file(file, &lds_document(listeners))
}

/// Moves the plain-text listener of `spec` to file-based LDS: `listeners.json` in a watched
/// directory `lds` under `dir`, whose first version is written now. A listener that is to be
/// replaced keeps its address, so a kernel-picked port (0) is fixed here to a free one.
/// Returns the LDS file, which [`write_lds_file`] replaces.
pub fn serve_plain_listener_from_file(
    spec: &mut BootstrapSpec,
    dir: &Path,
) -> Result<PathBuf, String> {
    let file = watched_file(dir, "lds", "listeners.json")?;
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
    fn filter_config_moves_to_a_watched_ecds_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec();
        let file = serve_filter_config_from_file(&mut s, dir.path()).unwrap();
        assert_eq!(file, dir.path().join("ecds/filter.json"));
        assert!(matches!(&s.filter_source, FilterSource::Discovered { file: f } if *f == file));
        // The listener names the filter and where its configuration comes from, nothing more.
        let b = render(&s);
        let filter = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
            ["http_filters"][0];
        assert_eq!(filter["name"], ECDS_FILTER);
        assert!(filter.get("typed_config").is_none(), "{filter}");
        let discovery = &filter["config_discovery"];
        assert_eq!(discovery["type_urls"], json!([WASM_TYPE_URL]));
        assert!(discovery.get("default_config").is_none(), "{discovery}");
        let src = &discovery["config_source"];
        assert_eq!(src["resource_api_version"], "V3");
        assert_eq!(src["path_config_source"]["path"], path_str(&file));
        assert_eq!(
            src["path_config_source"]["watched_directory"]["path"],
            path_str(&dir.path().join("ecds"))
        );
        assert!(
            !b.to_string().contains("\"tokens\""),
            "no configuration inline"
        );
        // The file: one TypedExtensionConfig named like the filter, around the Wasm configuration.
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let resources = doc["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 1);
        let r = &resources[0];
        assert_eq!(
            r["@type"],
            "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
        );
        assert_eq!(r["name"], ECDS_FILTER);
        assert_eq!(r["typed_config"]["@type"], WASM_TYPE_URL);
        let wasm = &r["typed_config"]["config"];
        assert_eq!(wasm["configuration"]["value"], "{\"tokens\":[]}");
        assert_eq!(wasm["vm_config"]["code"]["local"]["filename"], "/m.wasm");
        assert_eq!(wasm["fail_open"], false);
        assert_eq!(
            ecds_stat("config_reload"),
            "extension_config_discovery.http_filter.rfma.config_reload"
        );

        // A replacement: the whole file at once, no sibling left behind.
        let typed = wasm_typed_config(&s.wasm, "{\"tokens\":[1]}", s.failure);
        write_ecds_file(&file, &typed).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(doc["resources"][0]["typed_config"], typed);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("ecds"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["filter.json"]);

        // With a file-based listener too, the listener in the LDS file subscribes the same way.
        let lds = serve_plain_listener_from_file(&mut s, dir.path()).unwrap();
        let doc: Value = serde_json::from_slice(&std::fs::read(&lds).unwrap()).unwrap();
        let filter = &doc["resources"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
            [0];
        assert_eq!(filter["config_discovery"], *discovery);
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
