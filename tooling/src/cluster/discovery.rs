//! Discovery: which kinds the API server serves, per group-version and cached, and the
//! dynamic `Api` for an object of one.

use super::{Cluster, is_not_found};
use anyhow::{Context, Result, bail};
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;

/// A kind the API server serves.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// (kind, plural, namespaced) of a served resource.
pub(super) type ServedKind = (String, String, bool);

impl Cluster {
    /// Forgets what discovery found, so kinds of newly established CRDs resolve.
    pub fn refresh_discovery(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Resolves `apiVersion` + `kind` to a served resource, or `None` when the server does not serve it.
    pub async fn resolve(&self, api_version: &str, kind: &str) -> Result<Option<Resolved>> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(api_version)
            .cloned();
        let list = match cached {
            Some(l) => l,
            None => {
                let answer = if api_version.contains('/') {
                    self.client.list_api_group_resources(api_version).await
                } else {
                    self.client.list_core_api_resources(api_version).await
                };
                let list = match answer {
                    Ok(l) => Some(
                        l.resources
                            .into_iter()
                            .filter(|r| !r.name.contains('/'))
                            .map(|r| (r.kind, r.name, r.namespaced))
                            .collect::<Vec<_>>(),
                    ),
                    Err(e) if is_not_found(&e) => None,
                    Err(e) => return Err(e).with_context(|| format!("discovery of {api_version}")),
                };
                self.cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(api_version.to_string(), list.clone());
                list
            }
        };
        let Some(list) = list else { return Ok(None) };
        let Some((kind, plural, namespaced)) = list.into_iter().find(|(k, _, _)| k == kind) else {
            return Ok(None);
        };
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Ok(Some(Resolved {
            resource: ApiResource {
                group: group.to_string(),
                version: version.to_string(),
                api_version: api_version.to_string(),
                kind,
                plural,
            },
            namespaced,
        }))
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
