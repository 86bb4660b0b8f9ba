//! Fuzz targets for the filter's pure code, and the reference models they compare it with.
//!
//! Each target is a thin `fuzz_target!` around one `run_*` function here, so the same
//! properties also run over the checked-in corpus in this crate's unit tests. A `run_*`
//! function returns `Err` with a description when a property is broken; the target panics
//! with it, which libFuzzer reports as a crash.

pub mod checks;
pub mod config_gen;
pub mod config_model;
pub mod decide_model;
pub mod handover_model;
pub mod lines;
pub mod tree;

use arbitrary::{Arbitrary, Unstructured};
use checks::{Secrets, check_deny_body};
use decide_model::{Clock, Expected, Lookups, Peer, PolicySpec};
use rfma_filter::gate::{self, Decision, Reason, Request};
use rfma_filter::headers::RequestHeaders;
use rfma_filter::host::HeaderMap;
use rfma_filter::{config, handover, response};

/// The `config` target. An input starting with a 0 byte is a structured configuration
/// (generated with `arbitrary` from the rest); any other input is the configuration itself.
pub fn run_config(data: &[u8]) -> Result<(), String> {
    let (text, generated) = match data.split_first() {
        Some((0, rest)) => {
            let mut u = Unstructured::new(rest);
            let (Ok(cfg), Ok(style)) = (
                config_gen::Config::arbitrary(&mut u),
                tree::Style::arbitrary(&mut u),
            ) else {
                return Ok(());
            };
            let t = cfg.tree();
            (tree::render(&t, style).into_bytes(), Some(t))
        }
        _ => (data.to_vec(), None),
    };
    let result = config::parse(&text);

    if let Err(e) = &result {
        let line = e.to_string();
        if line.contains(|c: char| c.is_control()) {
            return Err(format!("the error is not one clean log line: {line:?}"));
        }
        if e.field.is_empty() || e.message.is_empty() {
            return Err(format!(
                "the error does not name a field and a problem: {e:?}"
            ));
        }
        // Only generated configurations keep the marker to their token values.
        if generated.is_some() && line.contains(config_gen::SECRET_MARK) {
            return Err(format!("the error shows a token value: {line:?}"));
        }
    }

    // What serde_json reads in the same text, judged by the model.
    let expected = match tree::parse(&text) {
        Ok(t) => {
            if let Some(g) = &generated
                && !t.same(g)
            {
                return Err(format!("harness: rendered tree differs:\n{g:?}\n{t:?}"));
            }
            config_model::expect(&t)
        }
        // serde_json rejects numbers beyond f64; the filter keeps numbers as text.
        Err(e) if e.to_string().contains("number out of range") => return Ok(()),
        Err(_) => Err(vec![config_model::Wrong {
            field: "configuration".to_owned(),
            message: None,
        }]),
    };
    let shown = || String::from_utf8_lossy(&text).into_owned();
    match (result, expected) {
        (Ok(policy), Ok(want)) => config_model::check_policy(&policy, &want)
            .map_err(|e| format!("{e}\nconfig: {}", shown())),
        (Ok(_), Err(wrong)) => Err(format!(
            "accepted, but the model finds errors at {:?}\nconfig: {}",
            wrong.iter().map(|w| &w.field).collect::<Vec<_>>(),
            shown()
        )),
        (Err(e), Ok(_)) => Err(format!(
            "rejected ({e}), but the model accepts it\nconfig: {}",
            shown()
        )),
        (Err(e), Err(wrong)) => {
            config_model::check_error(&e, &wrong).map_err(|m| format!("{m}\nconfig: {}", shown()))
        }
    }
}

/// A request for the `decide` target, decoded from its input (see [`lines`]).
#[derive(Debug)]
pub struct DecideInput {
    pub policy: PolicySpec,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub peer: Peer,
    /// What the proxy's clock says ([`decide_model::DEFAULT_NOW`] unless the input sets it).
    pub clock: Clock,
    /// Bytes cut off the end of the serialized header map (a damaged map from the host).
    pub cut: usize,
}

/// First line: bytes from which the policy is derived (empty: [`PolicySpec::fixed`]).
/// Then `name: value` header lines, and the directives `@peer: <uri>`, `@peer-error`,
/// `@now: <nanoseconds since 1970>`, `@clock-error` and `@cut: <n>`.
pub fn decode_decide(data: &[u8]) -> DecideInput {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    let mut input = DecideInput {
        policy: PolicySpec::from_bytes(first),
        headers: Vec::new(),
        peer: Peer::Absent,
        clock: Clock::At(decide_model::DEFAULT_NOW),
        cut: 0,
    };
    for (name, value) in lines::pairs(rest) {
        match name.as_slice() {
            b"@peer" => input.peer = Peer::Uri(value),
            b"@peer-error" => input.peer = Peer::LookupFails,
            b"@now" => {
                input.clock = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|n| n.trim().parse().ok())
                    .map_or(Clock::At(decide_model::DEFAULT_NOW), Clock::At);
            }
            b"@clock-error" => input.clock = Clock::Fails,
            b"@cut" => {
                input.cut = std::str::from_utf8(&value)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1);
            }
            _ => input.headers.push((name, value)),
        }
    }
    input
}

/// The `decide` target: the gate against the model, then the deny body and the values the
/// filter's adapter would hand to the access log for this request, checked against the
/// models and for leaks.
pub fn run_decide(data: &[u8]) -> Result<(), String> {
    let input = decode_decide(data);
    let json = input.policy.to_json();
    let policy = config::parse(json.as_bytes())
        .map_err(|e| format!("harness: policy rejected: {e}: {json}"))?;

    let mut serialized = decide_model::serialize(&input.headers);
    serialized.truncate(serialized.len().saturating_sub(input.cut));
    let damaged = !serialized.is_empty() && input.cut > 0;
    // A map cut to nothing is an empty map, not a damaged one.
    let headers: &[(Vec<u8>, Vec<u8>)] = if serialized.is_empty() {
        &[]
    } else {
        &input.headers
    };
    let map = HeaderMap::from_serialized(serialized);
    if map.complete() == damaged {
        return Err(format!(
            "HeaderMap::complete() is {} for a map cut by {}",
            map.complete(),
            input.cut
        ));
    }
    if !damaged {
        let read: Vec<(&[u8], &[u8])> = map.iter().collect();
        let want: Vec<(&[u8], &[u8])> = headers
            .iter()
            .map(|(n, v)| (n.as_slice(), v.as_slice()))
            .collect();
        if read != want {
            return Err("HeaderMap::iter() does not give back the headers".into());
        }
    }

    // The adapter's steps (filter.rs, which only builds for wasm32), over the public API:
    // a damaged map is an internal error, else one pass picks the headers out.
    let view = map
        .complete()
        .then(|| RequestHeaders::read(map.iter(), policy.header.as_bytes()));
    let asked = std::cell::Cell::new(0u32);
    let read_clock = std::cell::Cell::new(0u32);
    let verdict = match &view {
        Some(view) => gate::decide(
            &policy,
            Request {
                method: view.method,
                path: view.path,
            },
            view.token_values(),
            || {
                asked.set(asked.get() + 1);
                match &input.peer {
                    Peer::Absent => Ok(None),
                    Peer::Uri(uri) => Ok(std::str::from_utf8(uri).ok().map(str::to_owned)),
                    Peer::LookupFails => Err(()),
                }
            },
            || {
                read_clock.set(read_clock.get() + 1);
                match input.clock {
                    Clock::At(now) => Ok(now),
                    Clock::Fails => Err(()),
                }
            },
        ),
        None => gate::Verdict {
            decision: Decision::Deny(gate::Reason::InternalError),
            token: None,
        },
    };
    let decision = verdict.decision;

    let mut must = Lookups::default();
    let want = decide_model::decide(
        &input.policy,
        headers,
        damaged,
        &input.peer,
        input.clock,
        &mut must,
    );
    let got = match decision {
        Decision::Bypass => Expected::Bypass,
        Decision::Allow { token } => Expected::Allow(token),
        Decision::Deny(r) => Expected::Deny(r.code()),
    };
    if got != want {
        return Err(format!(
            "decision {got:?}, model {want:?}\npolicy {json}\ninput {input:?}"
        ));
    }
    if asked.get() != u32::from(must.peer) {
        return Err(format!(
            "the peer was looked up {} times, the model says {}",
            asked.get(),
            must.peer
        ));
    }
    if read_clock.get() != u32::from(must.clock) {
        return Err(format!(
            "the clock was read {} times, the model says {}\npolicy {json}\ninput {input:?}",
            read_clock.get(),
            must.clock
        ));
    }
    if verdict.token != must.matched {
        return Err(format!(
            "the verdict names token {:?}, the model matched {:?}\npolicy {json}\ninput {input:?}",
            verdict.token, must.matched
        ));
    }

    // What the request legitimately puts into outputs: everything but the token header.
    // Every demo secret, configured in this policy or not: none may show up from nowhere.
    static SECRETS: std::sync::OnceLock<Secrets> = std::sync::OnceLock::new();
    let secrets = SECRETS.get_or_init(|| Secrets::new(lines::SECRETS));
    let token_header = input.policy.header.to_ascii_lowercase();
    let mut inputs: Vec<&[u8]> = input
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase() != token_header.as_bytes())
        .flat_map(|(n, v)| [n.as_slice(), v.as_slice()])
        .collect();
    if let Peer::Uri(uri) = &input.peer {
        inputs.push(uri);
    }

    if let Some(v) = &view {
        let first = |name| decide_model::first(headers, name);
        let picked = [
            (":method", Some(v.method)),
            (":path", Some(v.path)),
            (":authority", v.authority),
            ("x-request-id", v.request_id),
        ];
        for (name, got) in picked {
            // The gate reads a missing `:method` or `:path` as empty.
            let defaulted = matches!(name, ":method" | ":path").then_some(&b""[..]);
            let want = first(name).or(defaulted);
            if got != want {
                return Err(format!(
                    "RequestHeaders picked {got:?} for {name}, the first value is {want:?}"
                ));
            }
        }
    }
    let view = view.unwrap_or_default();
    if let Decision::Deny(reason) = decision {
        let body = response::deny_body(reason, view.request_id);
        check_deny_body(&body, reason.code(), view.request_id)?;
        let body = String::from_utf8_lossy(&body);
        if let Some(piece) = secrets.leak_in_json(&body, &inputs) {
            return Err(format!("the deny body leaks {piece:?}: {body}"));
        }
    }

    // The hand-over to the access log (filter.rs `settle`): only for the classes the policy
    // logs, the token's name looked up by index, the authority of the header pass.
    let logged = input.policy.sink != "none"
        && match want {
            Expected::Bypass | Expected::Allow(_) => input.policy.log_allowed,
            Expected::Deny(_) => input.policy.log_denied,
        };
    if policy.records(decision.is_allowed()) != logged {
        return Err(format!(
            "Policy::records is {} for {got:?}, the model says {logged}\npolicy {json}",
            !logged
        ));
    }
    if logged {
        // The adapter passes the name of the token the request matched; the hand-over decides
        // whether the decision names it.
        let token_name = verdict
            .token
            .and_then(|token| policy.tokens.get(token))
            .map(|t| t.name.as_str());
        let model_name = must
            .matched
            .and_then(|i| input.policy.tokens.get(i))
            .map(|t| t.name.as_str());
        let authority = if damaged {
            None
        } else {
            decide_model::first(headers, ":authority")
        };
        let values = handover::values(decision, token_name, view.authority);
        handover_model::check(values, &handover_model::values(want, model_name, authority))
            .map_err(|e| format!("{e}\npolicy {json}\ninput {input:?}"))?;
        for (key, value) in values.into_iter().flatten() {
            if let Some(piece) = secrets.leak(value, &inputs) {
                return Err(format!("{} leaks {piece:?}", String::from_utf8_lossy(key)));
            }
        }
    }
    Ok(())
}

/// The `handover` target's input: lines `field: value` (see [`lines`]) for `token` (a token
/// name, any bytes, read as UTF-8 with U+FFFD), `authority` and `request_id` (any bytes). A
/// missing line is an absent value, `authority` alone an empty one; later lines win.
#[derive(Debug, Default)]
pub struct HandoverInput {
    pub token: Option<Vec<u8>>,
    pub authority: Option<Vec<u8>>,
    pub request_id: Option<Vec<u8>>,
}

impl HandoverInput {
    pub fn decode(data: &[u8]) -> HandoverInput {
        let mut input = HandoverInput::default();
        for (name, value) in lines::pairs(data) {
            match name.as_slice() {
                b"token" => input.token = Some(value),
                b"authority" => input.authority = Some(value),
                b"request_id" => input.request_id = Some(value),
                _ => {}
            }
        }
        input
    }
}

/// The `handover` target: for every decision the contract knows, with and without the token
/// name and the authority, `handover::values` gives exactly what the model says (the domain
/// from the model of ECS `url.domain`); `host_without_port` agrees with the model on any
/// bytes; and every deny body, with and without the request ID, is valid JSON and exactly
/// its two fields.
pub fn run_handover(data: &[u8]) -> Result<(), String> {
    let input = HandoverInput::decode(data);
    let token = input.token.as_deref().map(String::from_utf8_lossy);
    let mut decisions = vec![
        (Expected::Bypass, Decision::Bypass),
        (Expected::Allow(0), Decision::Allow { token: 0 }),
        (
            Expected::Allow(usize::MAX),
            Decision::Allow { token: usize::MAX },
        ),
    ];
    for code in handover_model::REASONS {
        let reason = Reason::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or_else(|| format!("the filter has no deny reason {code}"))?;
        decisions.push((Expected::Deny(code), Decision::Deny(reason)));
    }
    if Reason::ALL.len() != handover_model::REASONS.len() {
        return Err(format!(
            "the filter has {} deny reasons, the contract {}",
            Reason::ALL.len(),
            handover_model::REASONS.len()
        ));
    }
    for (want, decision) in decisions {
        for token_name in [token.as_deref(), None] {
            for authority in [input.authority.as_deref(), None] {
                handover_model::check(
                    handover::values(decision, token_name, authority),
                    &handover_model::values(want, token_name, authority),
                )
                .map_err(|e| {
                    format!("{e}\ndecision {want:?}, token {token_name:?}, authority {authority:?}")
                })?;
            }
        }
    }
    if let Some(authority) = &input.authority {
        let got = handover::host_without_port(authority);
        let want = handover_model::domain(authority).unwrap_or_default();
        if got != want {
            return Err(format!(
                "host_without_port({authority:?}) is {got:?}, the model says {want:?}"
            ));
        }
    }

    // Every deny body, with and without the request ID, read in full by serde_json for the
    // first reason (which also reads what push_string wrote); for the others (an ID can be
    // 200 KB, and the reader is slow under coverage instrumentation) the exact bytes the
    // contract gives from that checked string.
    let id = input.request_id.as_deref();
    let mut quoted = Vec::new();
    response::push_string(&mut quoted, id.unwrap_or_default());
    for (n, reason) in Reason::ALL.into_iter().enumerate() {
        for id in [id, None] {
            let body = response::deny_body(reason, id);
            if n == 0 {
                check_deny_body(&body, reason.code(), id)?;
            }
            let mut want = format!(r#"{{"error":"{}","request_id":"#, reason.code()).into_bytes();
            match id {
                Some(_) => want.extend_from_slice(&quoted),
                None => want.extend_from_slice(br#""""#),
            }
            want.push(b'}');
            if body != want {
                return Err(format!(
                    "the {} deny body is not {:?}: {:?}",
                    reason.code(),
                    String::from_utf8_lossy(&want),
                    String::from_utf8_lossy(&body)
                ));
            }
        }
    }
    // push_string appends to what is there and leaves it.
    let mut after = b"[1,".to_vec();
    response::push_string(&mut after, id.unwrap_or_default());
    if after.get(..3) != Some(b"[1,") || after.get(3..) != Some(&quoted[..]) {
        return Err("push_string changed what was already written".into());
    }
    Ok(())
}
