//! Talking to the cluster for `up`, `status`, `verify` and `down`: discovery of dynamic kinds,
//! server-side apply with one field manager, waits with timeouts that explain themselves, deletes,
//! and exec into a named container.
//!
//! Objects are kube's `DynamicObject`: typed metadata, with the kind's own fields (`spec`,
//! `status`, a Secret's `data`) left as JSON. Discovery is kube's, pinned to the group-version a
//! manifest names (`/api/v1`, `/apis/<group>/<version>`) and cached; after new CRDs are
//! Established, [`Cluster::refresh_discovery`] drops the cache so their kinds resolve.
//!
//! Connecting (`connect.rs`: `--kubeconfig`/`--context`, the runtime, durations), discovery
//! (`discovery.rs`), reading objects and Events (`read.rs`), writing them (`write.rs`: apply,
//! merge patch, delete, what changed) and exec (`exec.rs`); the unit tests are in `tests.rs`.

mod connect;
mod discovery;
mod exec;
mod read;
#[cfg(test)]
mod tests;
mod write;

pub use connect::{KubeArgs, parse_duration, runtime};
pub use discovery::Resolved;
pub use exec::{EXEC_TIMEOUT, ExecOutput, exit_code};
pub use write::{Outcome, changed_paths, object_id};

use kube::Client;
use kube::discovery::ApiGroup;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The one field manager every write uses.
pub const FIELD_MANAGER: &str = "istio-demo";
/// Label put on namespaces `up` creates; `down` deletes only namespaces carrying it.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "istio-demo";

/// A cluster connection with a discovery cache.
pub struct Cluster {
    pub client: Client,
    pub dry_run: bool,
    /// How often waits poll.
    pub poll: Duration,
    /// Per apiVersion: the group pinned to it, or `None` when the server does not serve it.
    cache: Mutex<HashMap<String, Option<Arc<ApiGroup>>>>,
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Cluster {
    pub fn new(client: Client, dry_run: bool) -> Self {
        Cluster {
            client,
            dry_run,
            poll: Duration::from_secs(2),
            cache: Mutex::new(HashMap::new()),
        }
    }
}
