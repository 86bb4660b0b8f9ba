//! Flux: exact chart versions, and wiring that resolves (paths, dependencies, sources).

use super::{Copy, expect_error};

#[test]
fn unpinned_charts_and_broken_flux_wiring_are_caught() {
    let c = Copy::whole();
    c.edit(
        "istio/system/istiod.yaml",
        "      version: 1.30.3",
        "      version: \">=1.30.0\"",
    );
    c.edit(
        "flux/apps/apps.yaml",
        "path: ./istio/authorization/stage-4-allow-get-with-token",
        "path: ./istio/authorization/stage-5",
    );
    c.edit(
        "flux/apps/apps.yaml",
        "    - name: flagger-system\n",
        "    - name: flagger\n",
    );
    // A git entry point whose self-sync names a directory that does not exist.
    c.edit(
        "flux/clusters/git-minimal/kustomization.yaml",
        "value: ./flux/clusters/git-minimal",
        "value: ./flux/clusters/git-minimall",
    );
    // A HelmRelease reading a HelmRepository that is not declared.
    c.edit(
        "istio/system/istiod.yaml",
        "        name: istio\n",
        "        name: istio-charts\n",
    );
    let (code, out) = c.validate(&["flux", "istio/system"]);
    assert_eq!(code, 1, "{out}");
    expect_error(
        &out,
        &[
            "error[chart-pinned]",
            "HelmRelease/istio-system/istiod",
            "spec.chart.spec.version",
            "`>=1.30.0` is not pinned",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-path]",
            "Kustomization/flux-system/istio-demo",
            "`./flux/clusters/git-minimall`",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-source]",
            "HelmRelease/istio-system/istiod",
            "spec.chart.spec.sourceRef",
            "HelmRepository/istio-system/istio-charts",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-path]",
            "flux/apps/apps.yaml",
            "Kustomization/flux-system/authorization",
            "spec.path",
            "./istio/authorization/stage-5",
        ],
    );
    expect_error(
        &out,
        &[
            "error[flux-dependency]",
            "Kustomization/flux-system/canary",
            "spec.dependsOn[0]",
            "Kustomization/flux-system/flagger",
        ],
    );
}
