//! A scripted API conversation over kube's `tower-test` mock service, in the style of kube-rs's own
//! tests: each expected request is matched in order (method and path), answered with canned JSON,
//! and recorded, so tests assert the order and shape of every call. Not an API server: a request
//! the script does not expect fails the test.

pub mod registry;

use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use std::time::Duration;

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request as the client sent it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The request's `Content-Type` (e.g. `application/merge-patch+json`), empty when absent.
    pub content_type: String,
    pub body: Value,
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("percent escape"));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("utf-8 query")
}

impl Exchange {
    /// The query parameters, decoded, in wire order (repeated names kept).
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (decode(k), decode(v))
            })
            .collect()
    }

    /// The query parameters, decoded, sorted by name (order on the wire is the client's business).
    pub fn params(&self) -> std::collections::BTreeMap<String, String> {
        self.pairs().into_iter().collect()
    }

    /// True when the parameters are exactly `want`.
    pub fn params_are(&self, want: &[(&str, &str)]) -> bool {
        let want: std::collections::BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.params() == want
    }

    pub fn line(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// One expected request and its answer.
pub struct Step {
    pub method: &'static str,
    pub path: String,
    pub status: u16,
    pub reply: Value,
    /// A reply that is not JSON (a pod's log, a proxy's Prometheus text), sent as is instead of `reply`.
    pub text: Option<String>,
    /// A reply that depends on what the client sent before (a digest it computed, a Secret it
    /// wrote), made from the exchanges so far, this one last; used instead of `reply`.
    pub computed: Option<Computed>,
}

/// Makes a reply from the exchanges so far (the current one last).
pub type Computed = Box<dyn FnOnce(&[Exchange]) -> Value + Send>;

/// A `GET` whose answer is made from the conversation so far.
pub fn get_computed(
    path: impl Into<String>,
    f: impl FnOnce(&[Exchange]) -> Value + Send + 'static,
) -> Step {
    Step {
        computed: Some(Box::new(f)),
        ..step("GET", path, 200, Value::Null)
    }
}

pub fn step(method: &'static str, path: impl Into<String>, status: u16, reply: Value) -> Step {
    Step {
        method,
        path: path.into(),
        status,
        reply,
        text: None,
        computed: None,
    }
}

/// A `GET` answered with plain text (`text/plain`): a pod's log, a proxy's Prometheus text.
pub fn text(path: impl Into<String>, status: u16, body: &str) -> Step {
    Step {
        text: Some(body.to_string()),
        ..step("GET", path, status, Value::Null)
    }
}

/// A 404 as the API server words it.
pub fn not_found(path: impl Into<String>) -> Step {
    let path = path.into();
    let reply = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
                       "message": format!("{path} not found")});
    Step {
        method: "GET",
        path,
        status: 404,
        reply,
        text: None,
        computed: None,
    }
}

/// A 404 to any method (a DELETE or PATCH of an object that is not there).
pub fn not_found_on(method: &'static str, path: impl Into<String>) -> Step {
    Step {
        method,
        ..not_found(path)
    }
}

/// A `DELETE` the server accepts (the object may still be finalizing).
pub fn delete(path: impl Into<String>) -> Step {
    step(
        "DELETE",
        path,
        200,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
}

pub fn get(path: impl Into<String>, reply: Value) -> Step {
    step("GET", path, 200, reply)
}

/// `PATCH` that echoes the applied object back (as a server-side apply does).
pub fn apply(path: impl Into<String>) -> Step {
    step("PATCH", path, 200, Value::Null)
}

/// An APIResourceList for discovery: (kind, plural, namespaced).
pub fn resources(group_version: &str, list: &[(&str, &str, bool)]) -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
        "resources": list.iter().map(|(k, p, n)| json!({
            "name": p, "singularName": "", "namespaced": n, "kind": k, "verbs": ["get", "list", "patch", "delete"]
        })).collect::<Vec<_>>()
    })
}

/// The discovery `GET` of a group-version (`/api/v1` for the core group, `/apis/<group>/<version>`
/// otherwise), answered with `list`: (kind, plural, namespaced).
pub fn discovery(group_version: &str, list: &[(&str, &str, bool)]) -> Step {
    let path = if group_version.contains('/') {
        format!("/apis/{group_version}")
    } else {
        format!("/api/{group_version}")
    };
    get(path, resources(group_version, list))
}

/// Asserts that `text` (a command's output) holds every one of `wants`.
pub fn assert_mentions(text: &str, wants: &[&str]) {
    for want in wants {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}

pub fn mock() -> (Client, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(svc, "default"), handle)
}

/// Serves `steps` in order; returns what the client sent. Panics on an unexpected request.
pub fn serve(mut handle: Handle, steps: Vec<Step>) -> tokio::task::JoinHandle<Vec<Exchange>> {
    tokio::spawn(async move {
        let mut log = Vec::new();
        let total = steps.len();
        for (i, s) in steps.into_iter().enumerate() {
            let (req, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!(
                    "step {i}/{total}: no request came; expected {} {}\nso far: {log:#?}",
                    s.method, s.path
                )
            });
            let method = req.method().to_string();
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            let content_type = req
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let bytes = req.into_body().collect_bytes().await.expect("request body");
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            let ex = Exchange {
                method,
                path,
                query,
                content_type,
                body,
            };
            assert!(
                ex.method == s.method && ex.path == s.path,
                "step {i}: expected {} {}, got {}\nso far:\n{}",
                s.method,
                s.path,
                ex.line(),
                log.iter()
                    .map(Exchange::line)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            log.push(ex);
            // A PATCH with a null reply echoes the applied object (plus what a server adds).
            let ex = log.last().expect("just pushed");
            let reply = if let Some(f) = s.computed {
                f(&log)
            } else if s.reply.is_null() {
                let mut o = ex.body.clone();
                o["metadata"]["resourceVersion"] = json!("2");
                o
            } else {
                s.reply
            };
            let resp = match s.text {
                Some(text) => Response::builder()
                    .status(s.status)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(Body::from(text.into_bytes())),
                None => Response::builder()
                    .status(s.status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap())),
            }
            .unwrap();
            send.send_response(resp);
        }
        log
    })
}

/// Awaits the scenario (bounded), so a missing call fails instead of hanging.
pub async fn finish(task: tokio::task::JoinHandle<Vec<Exchange>>) -> Vec<Exchange> {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("scenario did not complete: the client made fewer calls than expected")
        .expect("scenario panicked")
}

/// The preflight conversation: version, three access reviews (allowed), three product CRDs (absent),
/// no LoadBalancer.
pub fn preflight_steps(allowed: bool) -> Vec<Step> {
    let mut v = vec![get(
        "/version",
        json!({"major": "1", "minor": "34", "gitVersion": "v1.34.2", "gitCommit": "", "gitTreeState": "", "buildDate": "", "goVersion": "", "compiler": "", "platform": ""}),
    )];
    for _ in 0..3 {
        v.push(step(
            "POST",
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            201,
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}, "status": {"allowed": allowed}}),
        ));
    }
    for crd in [
        "kustomizations.kustomize.toolkit.fluxcd.io",
        "wasmplugins.extensions.istio.io",
        "canaries.flagger.app",
    ] {
        v.push(not_found(format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd}"
        )));
    }
    v.push(get(
        "/api/v1/services",
        json!({"kind": "ServiceList", "apiVersion": "v1", "metadata": {}, "items": []}),
    ));
    v
}
