//! Workloads and their containers: pinned images, requests and limits, security contexts (and
//! their waivers), no host namespaces, read-only hostPath mounts, credentials from Secrets, STRICT
//! mTLS in `demo`.

use super::{Copy, expect_error};

#[test]
fn unpinned_images_and_missing_limits_are_caught() {
    let c = Copy::of(&["demo"]);
    c.edit(
        "demo/sleep.yaml",
        "docker.io/curlimages/curl:8.11.1",
        "docker.io/curlimages/curl:latest",
    );
    c.edit(
        "demo/httpbin.yaml",
        "docker.io/mccutchen/go-httpbin:v2.18.1",
        "docker.io/mccutchen/go-httpbin",
    );
    c.edit("demo/httpbin.yaml", "              memory: 128Mi\n", "");
    let (code, out) = c.validate(&["demo"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[image-pinned]",
            "Deployment/demo/sleep",
            "containers[0].image",
            "moving tag `latest`",
        ],
    );
    expect_error(
        &out,
        &[
            "error[image-pinned]",
            "Deployment/demo/httpbin",
            "is not pinned",
        ],
    );
    expect_error(
        &out,
        &[
            "error[resources]",
            "Deployment/demo/httpbin",
            "resources.limits.memory",
            "no memory limits",
        ],
    );
}

#[test]
fn security_context_rules_are_enforced() {
    let c = Copy::of(&["demo", "elk", "istio"]);
    c.edit(
        "demo/sleep.yaml",
        "            allowPrivilegeEscalation: false\n",
        "",
    );
    c.edit(
        "demo/sleep.yaml",
        "              drop: [\"ALL\"]",
        "              drop: [\"NET_RAW\"]",
    );
    c.edit(
        "demo/httpbin.yaml",
        "            runAsNonRoot: true\n            runAsUser: 65532",
        "            runAsUser: 0",
    );
    c.edit(
        "demo/httpbin.yaml",
        "            readOnlyRootFilesystem: true\n",
        "",
    );
    c.edit("demo/httpbin.yaml", "      automountServiceAccountToken: false\n      securityContext:", "      automountServiceAccountToken: false\n      hostNetwork: true\n      securityContext:");
    c.edit(
        "elk/filebeat.yaml",
        "              mountPath: /var/log/pods\n              readOnly: true\n",
        "              mountPath: /var/log/pods\n",
    );
    c.edit(
        "elk/elasticsearch.yaml",
        "            - name: ELASTIC_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: elastic-credentials\n                  key: elastic-password\n",
        "            - name: ELASTIC_PASSWORD\n              value: changeme\n",
    );
    c.edit("elk/kibana.yaml", "    lint.istio-demo.dev/reason: \"Kibana writes optimizer and plugin state under its install directory.\"\n", "");
    c.edit(
        "istio/peer-authentication.yaml",
        "mode: STRICT",
        "mode: PERMISSIVE",
    );
    let (code, out) = c.validate(&["demo", "elk", "istio"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "Deployment/demo/sleep",
            "securityContext.allowPrivilegeEscalation",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/sleep",
            "securityContext.capabilities.drop",
            "drop ALL",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/httpbin",
            "securityContext.runAsNonRoot",
            "non-root",
        ],
    );
    expect_error(
        &out,
        &[
            "Deployment/demo/httpbin",
            "securityContext.readOnlyRootFilesystem",
        ],
    );
    expect_error(
        &out,
        &[
            "error[host-network]",
            "Deployment/demo/httpbin",
            "spec.template.spec.hostNetwork",
        ],
    );
    expect_error(
        &out,
        &[
            "error[hostpath-readonly]",
            "DaemonSet/logging/filebeat",
            "volumeMounts[3].readOnly",
            "varlogpods",
        ],
    );
    expect_error(
        &out,
        &[
            "error[secret-env]",
            "StatefulSet/logging/elasticsearch",
            "ELASTIC_PASSWORD",
        ],
    );
    expect_error(
        &out,
        &[
            "error[elastic-password-secret]",
            "StatefulSet/logging/elasticsearch",
        ],
    );
    expect_error(
        &out,
        &[
            "error[security-context]",
            "Deployment/logging/kibana",
            "needs a reason",
        ],
    );
    expect_error(
        &out,
        &[
            "error[peer-authentication-strict]",
            "PeerAuthentication/demo/default",
            "spec.mtls.mode",
            "PERMISSIVE",
        ],
    );
    assert!(
        !out.contains("changeme"),
        "a literal password must not be echoed:\n{out}"
    );
}
