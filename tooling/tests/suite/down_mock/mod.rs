//! `istio-demo down` against kube's tower-test mock: the self-managing Kustomization is suspended
//! (JSON merge patch) before anything is deleted; Kustomizations go dependants first and the
//! self-managing one after them; every delete waits for the finalizers; namespaces that existed
//! before `up` are kept (and protected from Flux's pruning), and so are token Secrets in them that
//! istio-demo did not make; the registry's namespace goes with the others; a dry run deletes
//! nothing; Flux goes only when istio-demo installed it.
//!
//! By concern: the teardown's order from the plan (`order`), `down` against the scripted API
//! (`teardown`), and when Flux goes (`flux`); `fixtures` builds the plans' inputs and
//! `conversation` scripts the API's side.

mod conversation;
mod fixtures;
mod flux;
mod order;
mod teardown;
