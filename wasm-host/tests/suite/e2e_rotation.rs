//! Rotating a token without downtime in a real Envoy 1.40 (issue #15), the way
//! `istio-demo token rotate` does it, with the filter's configuration delivered two ways:
//!
//! - through a listener update (file-based LDS, the listener with its filter replaced): a
//!   connection keeps the filter configuration it was accepted under until Envoy drains it, so a
//!   keep-alive client that switches its token opens a new connection;
//! - through ECDS (file-based, the filter's configuration alone, how Istio delivers a
//!   WasmPlugin): the next request on every connection meets the update, so keep-alive clients
//!   switch to the new token on their open connections right after Envoy has applied it.
//!
//! Either way:
//!
//! 1. update 1 adds `new` beside `old`; the test waits until Envoy has it and `new` is accepted;
//! 2. the clients switch from `old` to `new`;
//! 3. the test waits until `old`'s `rfma_token_allowed_total{token="old"}` stops moving;
//! 4. update 2 removes `old`: it is refused from then on, `new` keeps working.
//!
//! Client threads send a steady, bounded stream of requests the whole time, over kept-alive
//! connections and over a new connection per request. Not one may be lost or refused: every
//! response is httpbin's 200, and an error on the socket (a reset, a close before the whole
//! response) counts as a loss. Every request is tallied by token and status, so the per-token
//! counters and the access records can be checked to the request.

use crate::e2e_support::*;
use envoy_harness::http1::Connection;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const OLD: &str = "old-token-e2e-rotation-1";
const NEW: &str = "new-token-e2e-rotation-2";
/// Index 0 is `old`, 1 is `new`: what the clients send is an index into these.
const NAMES: [&str; 2] = ["old", "new"];
const TOKENS: [&str; 2] = [OLD, NEW];

/// Clients that keep one connection open across requests, and clients that open a new one per
/// request.
const KEEP_ALIVE_CLIENTS: usize = 2;
const FRESH_CLIENTS: usize = 2;
/// The load's bounds: requests over the whole test, and how long the clients may run.
const MAX_REQUESTS: usize = 20_000;
const LOAD_DEADLINE: Duration = Duration::from_secs(120);
/// A client's pause between two requests: a steady stream, not a flood on a shared machine.
const PACE: Duration = Duration::from_millis(5);
/// Requests every client completes after each step before the next one, so that traffic
/// provably runs through every swap.
const SETTLE: u64 = 5;
/// How long `old`'s counter must stay unchanged before it is removed (the rotation's
/// `--quiet-for`).
const QUIET: Duration = Duration::from_secs(1);

fn config(tokens: &[usize]) -> Value {
    let entries: Vec<Value> = tokens
        .iter()
        .map(|&t| json!({ "name": NAMES[t], "sha256": sha256_hex(TOKENS[t]) }))
        .collect();
    json!({ "tokens": entries })
}

/// Whether `text` holds either token or its digest.
fn leaks_secret(text: &str) -> Option<&'static str> {
    TOKENS.iter().find_map(|t| {
        (text.contains(t) || text.contains(&sha256_hex(t))).then_some(if *t == OLD {
            "old"
        } else {
            "new"
        })
    })
}

fn assert_no_secret(what: &str, text: &str) {
    if let Some(name) = leaks_secret(text) {
        panic!("{what} carries the {name} token or its digest");
    }
}

/// How the filter's configuration reaches Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// A listener update (file-based LDS).
    Listener,
    /// The filter's configuration alone (file-based ECDS).
    Ecds,
}

/// What the clients share with the test's main thread.
struct Shared {
    delivery: Delivery,
    /// The token the clients send now (index into [`TOKENS`]).
    token: AtomicUsize,
    stop: AtomicBool,
    /// Requests left in the load's budget.
    budget: AtomicUsize,
    deadline: Instant,
    /// Per client: requests completed, and with which token the last one went.
    completed: Vec<AtomicU64>,
    last_token: Vec<AtomicUsize>,
}

/// What one client saw.
#[derive(Debug, Default)]
struct Tally {
    /// 200s per token.
    ok: [u64; 2],
    /// Every response that was not a 200, and every request lost on the socket.
    failures: Vec<String>,
    /// Keep-alive clients: connections opened, and requests sent over them.
    connections: u64,
    requests: u64,
}

fn client(addr: std::net::SocketAddr, me: usize, keep_alive: bool, shared: &Shared) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<(Connection, usize)> = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if Instant::now() >= shared.deadline {
            tally
                .failures
                .push("the load's deadline passed before the rotation finished".into());
            break;
        }
        if shared
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
            .is_err()
        {
            tally
                .failures
                .push("the request budget ran out before the rotation finished".into());
            break;
        }
        let t = shared.token.load(Ordering::SeqCst);
        let req = Request::get(&format!("/anything/rotation/{}", NAMES[t]))
            .header("x-rfma-token", TOKENS[t]);
        let result = if keep_alive {
            // Through a listener update, switching the token means a new connection: a
            // connection keeps the filter configuration it was accepted under until Envoy drains
            // it, so `new` sent over a connection from before update 1 would be refused (403)
            // even after Envoy ACKed the update. Through ECDS the open connection meets the new
            // configuration on its next request, so the client keeps it. A connection the server
            // announced it closes (`connection: close`, Envoy draining the old listener) is
            // replaced either way; that is not a loss.
            let same_session = shared.delivery == Delivery::Ecds
                || conn.as_ref().is_some_and(|(_, token)| *token == t);
            let reuse = same_session && conn.as_ref().is_some_and(|(c, _)| !c.closing());
            if !reuse {
                conn = match Connection::open(addr) {
                    Ok(c) => Some((c, t)),
                    Err(e) => {
                        tally.failures.push(format!("{}: {e}", NAMES[t]));
                        None
                    }
                };
                tally.connections += u64::from(conn.is_some());
            }
            match conn.as_mut() {
                Some((c, _)) => {
                    tally.requests += 1;
                    let r = c.send(&req);
                    if r.is_err() {
                        conn = None;
                    }
                    Some(r)
                }
                None => None,
            }
        } else {
            Some(req.send(addr))
        };
        match result {
            Some(Ok(r)) if r.status == 200 => {
                tally.ok[t] += 1;
                let headers: String = r
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}:{v}\n"))
                    .collect();
                if let Some(name) = leaks_secret(&headers).or(leaks_secret(&r.text())) {
                    tally
                        .failures
                        .push(format!("a response carries the {name} token or its digest"));
                }
            }
            Some(Ok(r)) => tally.failures.push(format!(
                "{}: {} {}",
                NAMES[t],
                r.status,
                r.text().chars().take(200).collect::<String>()
            )),
            Some(Err(e)) => tally.failures.push(format!("{}: lost: {e}", NAMES[t])),
            None => {}
        }
        shared.completed[me].fetch_add(1, Ordering::SeqCst);
        shared.last_token[me].store(t, Ordering::SeqCst);
        // Pacing the load, not waiting for anything.
        std::thread::sleep(PACE);
    }
    tally
}

/// Waits until every client has completed [`SETTLE`] requests more than now, all of them (the
/// last one at least) with the token the clients send now.
fn settle(shared: &Shared, what: &str) {
    let from: Vec<u64> = shared
        .completed
        .iter()
        .map(|c| c.load(Ordering::SeqCst))
        .collect();
    let token = shared.token.load(Ordering::SeqCst);
    eventually(what, || {
        let all = shared
            .completed
            .iter()
            .zip(&from)
            .zip(&shared.last_token)
            .all(|((c, from), last)| {
                c.load(Ordering::SeqCst) >= from + SETTLE && last.load(Ordering::SeqCst) == token
            });
        all.then_some(())
    });
}

/// Every request the main thread sent itself, by token and status.
#[derive(Default)]
struct Probes {
    ok: [u64; 2],
    sent: u64,
}

impl Probes {
    /// A request with token `t` on a new connection (the way a new client would see Envoy).
    fn send(&mut self, stack: &Stack, t: usize) -> Response {
        let r = get_with_token(stack, &format!("/anything/probe/{}", NAMES[t]), TOKENS[t]);
        self.sent += 1;
        if r.status == 200 {
            self.ok[t] += 1;
        }
        assert_no_secret("a probe's response", &format!("{:?}", r.headers));
        assert_no_secret("a probe's response", &r.text());
        r
    }
}

#[test]
fn a_token_is_rotated_through_two_listener_updates_without_losing_a_request() {
    rotate(Delivery::Listener);
}

#[test]
fn a_token_is_rotated_through_ecds_with_keep_alive_clients_switching_in_place() {
    rotate(Delivery::Ecds);
}

/// Where the updates go, and how the test knows Envoy has taken one.
struct Updates<'a> {
    stack: &'a Stack,
    spec: BootstrapSpec,
    file: std::path::PathBuf,
    delivery: Delivery,
}

impl Updates<'_> {
    /// Writes the configuration with `tokens` and waits until Envoy serves it: for a listener,
    /// its ACK (`listener_manager.lds.update_success`); for ECDS, the reload on every worker.
    fn push(&mut self, tokens: &[usize], what: &str) {
        self.spec.plugin_config = config(tokens).to_string();
        let admin = self.stack.envoy.admin().unwrap();
        match self.delivery {
            Delivery::Listener => {
                let acked = self.lds_successes() + 1;
                bootstrap::write_lds_file(&self.file, &[bootstrap::plain_listener(&self.spec)])
                    .unwrap();
                eventually(&format!("Envoy to ACK {what}"), || {
                    (self.lds_successes() == acked).then_some(())
                });
            }
            Delivery::Ecds => {
                let before = envoy::EcdsCounters::read(admin).unwrap();
                let typed = bootstrap::wasm_typed_config(
                    &self.spec.wasm,
                    &self.spec.plugin_config,
                    self.spec.failure,
                );
                bootstrap::write_ecds_file(&self.file, &typed).unwrap();
                let outcome = eventually(&format!("Envoy to apply {what}"), || {
                    before.outcome(&envoy::EcdsCounters::read(admin).unwrap())
                });
                assert_eq!(outcome, envoy::EcdsOutcome::Applied, "{what}");
            }
        }
    }

    fn lds_successes(&self) -> u64 {
        self.stack
            .envoy
            .stat("listener_manager.lds.update_success")
            .unwrap()
            .unwrap_or(0)
    }
}

fn rotate(delivery: Delivery) {
    let mut saved = None;
    let stack = start_with(wasm(), &config(&[0]), |spec, dir| {
        let file = match delivery {
            Delivery::Listener => bootstrap::serve_plain_listener_from_file(spec, dir)?,
            Delivery::Ecds => bootstrap::serve_filter_config_from_file(spec, dir)?,
        };
        saved = Some((spec.clone(), file));
        Ok(())
    });
    let (spec, file) = saved.unwrap();
    let addr = stack.plain().unwrap();
    let mut updates = Updates {
        stack: &stack,
        spec,
        file,
        delivery,
    };
    let reloads = || {
        stack
            .envoy
            .stat(&bootstrap::ecds_stat("config_reload"))
            .unwrap()
            .unwrap_or(0)
    };
    match delivery {
        Delivery::Listener => assert_eq!(updates.lds_successes(), 1),
        Delivery::Ecds => assert_eq!(reloads(), 1),
    }
    // A keep-alive connection opened before update 1, by the test's main thread.
    let mut early = Connection::open(addr).unwrap();
    let mut early_send = |t: usize| {
        early
            .send(
                &Request::get(&format!("/anything/early/{}", NAMES[t]))
                    .header("x-rfma-token", TOKENS[t]),
            )
            .unwrap()
    };
    let mut early_ok = [0u64; 2];
    let mut early_sent = 0u64;
    assert_upstream(&early_send(0));
    early_ok[0] += 1;
    early_sent += 1;

    let clients = KEEP_ALIVE_CLIENTS + FRESH_CLIENTS;
    let shared = Shared {
        token: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        budget: AtomicUsize::new(MAX_REQUESTS),
        deadline: Instant::now() + LOAD_DEADLINE,
        completed: (0..clients).map(|_| AtomicU64::new(0)).collect(),
        last_token: (0..clients).map(|_| AtomicUsize::new(0)).collect(),
        delivery,
    };
    let mut probes = Probes::default();
    let mut old_when_quiet = None;
    let tallies: Mutex<Vec<(bool, Tally)>> = Mutex::new(Vec::new());

    std::thread::scope(|scope| {
        for me in 0..clients {
            let keep_alive = me < KEEP_ALIVE_CLIENTS;
            let (shared, tallies) = (&shared, &tallies);
            scope.spawn(move || {
                let tally = client(addr, me, keep_alive, shared);
                tallies.lock().unwrap().push((keep_alive, tally));
            });
        }
        // Whatever happens below, the clients stop when the scope ends.
        struct StopOnExit<'a>(&'a AtomicBool);
        impl Drop for StopOnExit<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = StopOnExit(&shared.stop);
        settle(&shared, "every client to get through with old");

        // Update 1: `new` beside `old`.
        updates.push(&[0, 1], "update 1");
        match delivery {
            Delivery::Listener => {
                eventually("new to be accepted on a new connection", || {
                    (probes.send(&stack, 1).status == 200).then_some(())
                });
                // The connection from before the update keeps the listener's previous filter
                // configuration: Envoy drains it over its drain time (600 s by default, which
                // the harness keeps), so it is still open, and its filter still knows only
                // `old`. A drain may mark the response `connection: close`; it still comes
                // from the old filter chain.
                let r = early_send(1);
                early_sent += 1;
                assert_deny(&r, 403, "invalid_token");
                settle(&shared, "every client to go on with old after update 1");
                shared.token.store(1, Ordering::SeqCst);
            }
            Delivery::Ecds => {
                // Applied on every worker: the clients switch at once, on their connections.
                shared.token.store(1, Ordering::SeqCst);
                assert_upstream(&early_send(1));
                early_ok[1] += 1;
                early_sent += 1;
            }
        }
        settle(&shared, "every client to get through with new");

        // `old` is quiet: its counter has not moved for QUIET.
        let old_count = || token_allowed(&stack.envoy.prometheus().unwrap(), "old");
        let mut last = (old_count(), Instant::now());
        old_when_quiet = Some(eventually("old's counter to stop moving", || {
            let now = old_count();
            if now != last.0 {
                last = (now, Instant::now());
            }
            (last.1.elapsed() >= QUIET).then_some(now)
        }));

        // Update 2: `old` removed.
        updates.push(&[1], "update 2");
        if delivery == Delivery::Ecds {
            // Refused at once, on a new connection and on the one from before update 1.
            assert_deny(&probes.send(&stack, 0), 403, "invalid_token");
            assert_deny(&early_send(0), 403, "invalid_token");
            early_sent += 1;
        }
        eventually("old to be refused on a new connection", || {
            (probes.send(&stack, 0).status == 403).then_some(())
        });
        settle(&shared, "every client to go on with new after update 2");
    });
    probes.sent += early_sent;
    probes.ok[0] += early_ok[0];
    probes.ok[1] += early_ok[1];

    let tallies = tallies.into_inner().unwrap();
    let failures: Vec<&String> = tallies.iter().flat_map(|(_, t)| &t.failures).collect();
    let client_ok = |t: usize| tallies.iter().map(|(_, tally)| tally.ok[t]).sum::<u64>();
    let client_requests = client_ok(0) + client_ok(1) + failures.len() as u64;
    assert!(
        failures.is_empty(),
        "{} of {client_requests} client requests lost or refused during the rotation; the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    eprintln!(
        "rotation by {delivery:?}: {client_requests} client requests, all 200 ({} with old, {} with new), \
         over {} keep-alive connections and {} new ones",
        client_ok(0),
        client_ok(1),
        tallies.iter().map(|(_, t)| t.connections).sum::<u64>(),
        tallies
            .iter()
            .filter(|(k, _)| !k)
            .map(|(_, t)| t.ok[0] + t.ok[1])
            .sum::<u64>(),
    );
    // Keep-alive clients really reused their connections; through ECDS each kept its one
    // connection from the first request to the last, across both updates.
    for (keep_alive, t) in &tallies {
        if *keep_alive && delivery == Delivery::Ecds {
            assert_eq!(t.connections, 1, "{t:?}");
        }
        if *keep_alive {
            assert!(
                t.requests >= 2 * t.connections,
                "a keep-alive client made {} requests over {} connections",
                t.requests,
                t.connections
            );
        }
        // Through a listener, `old` ran before and after update 1; through ECDS the clients
        // switch as soon as it is applied.
        let old_rounds = match delivery {
            Delivery::Listener => 2,
            Delivery::Ecds => 1,
        };
        assert!(
            t.ok[0] >= old_rounds * SETTLE && t.ok[1] >= 2 * SETTLE,
            "{t:?}"
        );
    }

    // After the rotation: `old` is an unknown token (403, no challenge: a challenge goes with a
    // 401 only), a request without a token gets the 401 and its challenge, `new` passes.
    let old = probes.send(&stack, 0);
    assert_deny(&old, 403, "invalid_token");
    assert_eq!(old.header("www-authenticate"), None, "{old:?}");
    let missing = send(&stack, Request::get("/anything/probe/none"));
    probes.sent += 1;
    assert_deny(&missing, 401, "missing_token");
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"RFMA-Token realm="istio-demo", header="x-rfma-token""#)
    );
    assert_upstream(&probes.send(&stack, 1));

    // Every request has its record (so every stream is complete and counted), and each allowed
    // one names the token it came with.
    let total = client_requests + probes.sent;
    let mut log = LogFollower::new(&stack.envoy.access_log);
    let records = next_records(&mut log, usize::try_from(total).unwrap());
    let mut recorded = [0u64; 2];
    for r in &records {
        let path = r["url"]["path"].as_str().unwrap_or_default();
        let Some(name) = path.strip_prefix("/anything/rotation/") else {
            continue;
        };
        assert_eq!(r["rfma"]["decision"], "allow", "{r}");
        assert_eq!(r["rfma"]["token"]["name"], name, "{r}");
        recorded[NAMES.iter().position(|n| *n == name).unwrap()] += 1;
    }
    assert_eq!(recorded, [client_ok(0), client_ok(1)]);
    for r in records.iter().filter(|r| r["rfma"]["decision"] == "allow") {
        assert!(r["rfma"]["token"]["name"].is_string(), "{r}");
    }

    // Each token's counter, with its tag, is the number of requests it let through; `old`'s
    // stays in `/stats/prometheus` after its entry is gone.
    let prometheus = stack.envoy.prometheus().unwrap();
    let allowed = [client_ok(0) + probes.ok[0], client_ok(1) + probes.ok[1]];
    assert_eq!(old_when_quiet, Some(Some(allowed[0])), "{prometheus}");
    assert_eq!(
        token_allowed(&prometheus, "old"),
        Some(allowed[0]),
        "{prometheus}"
    );
    assert_eq!(
        token_allowed(&prometheus, "new"),
        Some(allowed[1]),
        "{prometheus}"
    );

    if delivery == Delivery::Ecds {
        // Two ECDS reloads and no listener replaced: nothing was drained.
        assert_eq!(reloads(), 3);
        assert_no_listener_replaced(&stack);
    }

    assert_no_secret(
        "the access log",
        &std::fs::read_to_string(&stack.envoy.access_log).unwrap(),
    );
    assert_no_secret("Envoy's log", &stack.envoy.process.log_text());
    assert_no_secret("/stats/prometheus", &prometheus);
}
