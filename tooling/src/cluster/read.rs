//! Reading: one object, a list of a kind, and the newest Events about an object.

use super::{Cluster, is_not_found};
use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, DynamicObject, ListParams};

impl Cluster {
    /// Reads an object; `None` when it (or its kind) does not exist.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<DynamicObject>> {
        let Some(api) = self.api_for(api_version, kind, namespace).await? else {
            return Ok(None);
        };
        match api.get(name).await {
            Ok(o) => Ok(Some(o)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {kind}/{name}")),
        }
    }

    /// Lists objects of a kind (all namespaces when `namespace` is `None` for a namespaced kind).
    /// A list's items need not carry `apiVersion`/`kind` (built-in kinds' do not, so `types` may
    /// be `None`): the caller, who named the kind, knows them.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Vec<DynamicObject>> {
        let Some(r) = self.resolve(api_version, kind).await? else {
            return Ok(Vec::new());
        };
        let api: Api<DynamicObject> = match (r.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            _ => Api::all_with(self.client.clone(), &r.resource),
        };
        let mut lp = ListParams::default();
        if let Some(l) = labels {
            lp = lp.labels(l);
        }
        Ok(api
            .list(&lp)
            .await
            .with_context(|| format!("listing {kind}"))?
            .items)
    }

    /// The newest Events about an object (at most `limit`), one line each.
    pub async fn events(
        &self,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        limit: usize,
    ) -> Result<Vec<String>> {
        let api: Api<Event> = match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let lp = ListParams::default().fields(&format!(
            "involvedObject.kind={kind},involvedObject.name={name}"
        ));
        let mut events = api.list(&lp).await.context("listing events")?.items;
        let when = |e: &Event| {
            e.last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default()
        };
        events.sort_by_key(when);
        let skip = events.len().saturating_sub(limit);
        Ok(events
            .iter()
            .skip(skip)
            .map(|e| {
                format!(
                    "{} {} {} (x{}): {}",
                    when(e),
                    e.type_.as_deref().unwrap_or("?"),
                    e.reason.as_deref().unwrap_or("?"),
                    e.count.unwrap_or(1),
                    e.message.as_deref().unwrap_or("").trim()
                )
            })
            .collect())
    }
}
