//! Discovery: which kinds the API server serves, by kube's discovery pinned to the group-versions
//! the manifests name (one `GET` per group-version, cached), and the dynamic `Api` for a kind.

use super::{Cluster, is_not_found};
use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersion;
use kube::discovery::{self, ApiGroup, ApiResource, Scope};
use std::sync::Arc;

/// A kind the API server serves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

impl Cluster {
    /// Forgets what discovery found, so kinds of newly established CRDs resolve.
    pub fn refresh_discovery(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Resolves `apiVersion` + `kind` to a served resource, or `None` when the server does not serve it.
    ///
    /// Pinned to `api_version` rather than the group's preferred version: the manifests say which
    /// version they are written against, and a kind is only "served" if that version is.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>> {
        let Some(group) = self.pinned_group(api_version).await? else {
            return Ok(None);
        };
        // The group holds only the pinned version, so its recommended kind is that version's.
        Ok(group
            .recommended_kind(kind)
            .map(|(resource, caps)| Resolved {
                resource,
                namespaced: caps.scope == Scope::Namespaced,
            }))
    }

    /// The group at `api_version` from the cache or the API server; `None` when it is not served
    /// (a 404, e.g. a CRD's group before the CRD is established). The lock is not held across
    /// the request, so two first lookups may both ask; the answer is the same.
    async fn pinned_group(&self, api_version: &str) -> Result<Option<Arc<ApiGroup>>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api_version)
            .cloned();
        if let Some(group) = cached {
            return Ok(group);
        }
        let gv: GroupVersion = api_version
            .parse()
            .with_context(|| format!("apiVersion {api_version:?}"))?;
        let group = match discovery::pinned_group(&self.client, &gv).await {
            Ok(g) => Some(Arc::new(g)),
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(e).with_context(|| format!("discovery of {api_version}")),
        };
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(api_version.to_string(), group.clone());
        Ok(group)
    }

    pub(super) async fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Result<Option<Api<DynamicObject>>> {
        let Some(r) = self.resolve(api_version, kind).await? else {
            return Ok(None);
        };
        Ok(Some(match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            (true, None) => bail!("{kind} is namespaced but the object has no metadata.namespace"),
            (false, _) => Api::all_with(self.client.clone(), &r.resource),
        }))
    }
}
