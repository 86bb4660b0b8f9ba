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
pub mod lines;
pub mod tree;

use arbitrary::{Arbitrary, Unstructured};
use checks::{Secrets, check_deny_body, check_record};
use decide_model::{Expected, Peer, PolicySpec};
use rfma_filter::gate::{self, Decision, Request};
use rfma_filter::headers::RequestHeaders;
use rfma_filter::host::HeaderMap;
use rfma_filter::record::AccessRecord;
use rfma_filter::{config, response};

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
        Err(_) => Err(vec!["configuration".to_owned()]),
    };
    let shown = || String::from_utf8_lossy(&text).into_owned();
    match (result, expected) {
        (Ok(policy), Ok(want)) => config_model::check_policy(&policy, &want)
            .map_err(|e| format!("{e}\nconfig: {}", shown())),
        (Ok(_), Err(fields)) => Err(format!(
            "accepted, but the model finds errors at {fields:?}\nconfig: {}",
            shown()
        )),
        (Err(e), Ok(_)) => Err(format!(
            "rejected ({e}), but the model accepts it\nconfig: {}",
            shown()
        )),
        (Err(e), Err(fields)) if !fields.contains(&e.field) => Err(format!(
            "the error names {:?} ({e}); the model's errors are at {fields:?}\nconfig: {}",
            e.field,
            shown()
        )),
        (Err(_), Err(_)) => Ok(()),
    }
}

/// A request for the `decide` target, decoded from its input (see [`lines`]).
#[derive(Debug)]
pub struct DecideInput {
    pub policy: PolicySpec,
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub peer: Peer,
    /// Bytes cut off the end of the serialized header map (a damaged map from the host).
    pub cut: usize,
}

/// First line: bytes from which the policy is derived (empty: [`PolicySpec::fixed`]).
/// Then `name: value` header lines, and the directives `@peer: <uri>`, `@peer-error`
/// and `@cut: <n>`.
pub fn decode_decide(data: &[u8]) -> DecideInput {
    let (first, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(nl) => (&data[..nl], &data[nl + 1..]),
        None => (data, &[][..]),
    };
    let mut input = DecideInput {
        policy: PolicySpec::from_bytes(first),
        headers: Vec::new(),
        peer: Peer::Absent,
        cut: 0,
    };
    for (name, value) in lines::pairs(rest) {
        match name.as_slice() {
            b"@peer" => input.peer = Peer::Uri(value),
            b"@peer-error" => input.peer = Peer::LookupFails,
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

/// The `decide` target: the gate against the model, then the deny body and the record the
/// filter's adapter would build for this request, checked for shape and for leaks.
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
    let decision = match &view {
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
        ),
        None => Decision::Deny(gate::Reason::InternalError),
    };

    let mut must_ask = false;
    let want = decide_model::decide(&input.policy, headers, damaged, &input.peer, &mut must_ask);
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
    if asked.get() != u32::from(must_ask) {
        return Err(format!(
            "the peer was looked up {} times, the model says {must_ask}",
            asked.get()
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
            ("user-agent", v.user_agent),
            ("traceparent", v.traceparent),
            ("x-b3-traceid", v.b3_trace_id),
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
    let status = match decision {
        Decision::Deny(reason) => {
            let body = response::deny_body(reason, view.request_id);
            check_deny_body(&body, reason.code(), view.request_id)?;
            let body = String::from_utf8_lossy(&body);
            if let Some(piece) = secrets.leak_in_json(&body, &inputs) {
                return Err(format!("the deny body leaks {piece:?}: {body}"));
            }
            u64::from(reason.status())
        }
        _ => 200,
    };

    let (path, query) = gate::split_path(view.path);
    let principal = match &input.peer {
        Peer::Uri(uri) if !uri.is_empty() => Some(uri.as_slice()),
        _ => None,
    };
    let record = AccessRecord {
        timestamp_ns: 1_764_104_066_123_456_789,
        decision,
        token_name: match decision {
            Decision::Allow { token } => policy.tokens.get(token).map(|t| t.name.as_str()),
            _ => None,
        },
        method: view.method,
        path,
        query,
        status: Some(status),
        duration_ns: Some(1_234_567),
        request_id: view.request_id,
        protocol: Some(b"HTTP/1.1"),
        authority: view.authority,
        source_address: Some(b"127.0.0.1:40000"),
        user_agent: view.user_agent,
        traceparent: view.traceparent,
        b3_trace_id: view.b3_trace_id,
        principal,
    };
    let mut bytes = Vec::new();
    record.write(&mut bytes);
    let line = String::from_utf8(bytes).map_err(|e| format!("the record is not UTF-8: {e}"))?;
    check_record(&record, &line)?;
    if let Some(piece) = secrets.leak_in_json(&line, &inputs) {
        return Err(format!("the record leaks {piece:?}: {line}"));
    }
    Ok(())
}

/// The `record` target's input: lines `field: value` for the record's byte fields
/// (`method`, `path`, `query`, `request_id`, `protocol`, `authority`, `source`,
/// `user_agent`, `traceparent`, `b3`, `principal`), and `decision`, `status`, `duration`,
/// `timestamp`, `token` (a token name). Unknown lines are ignored; later lines win.
#[derive(Debug, Default)]
pub struct RecordInput {
    pub fields: std::collections::HashMap<Vec<u8>, Vec<u8>>,
}

impl RecordInput {
    pub fn decode(data: &[u8]) -> RecordInput {
        RecordInput {
            fields: lines::pairs(data).into_iter().collect(),
        }
    }

    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields.get(name.as_bytes()).map(Vec::as_slice)
    }

    fn number(&self, name: &str) -> Option<u64> {
        // Any bytes give some number, so the fuzzer reaches every value.
        let raw = self.bytes(name)?;
        Some(
            match std::str::from_utf8(raw).ok().and_then(|s| s.parse().ok()) {
                Some(n) => n,
                None => raw
                    .iter()
                    .fold(0u64, |acc, &b| acc.rotate_left(8) ^ u64::from(b)),
            },
        )
    }
}

/// The `record` target: any field values give one line of valid JSON with the contract's
/// fields, and every deny body is exactly its two fields.
pub fn run_record(data: &[u8]) -> Result<(), String> {
    use gate::Reason;
    let input = RecordInput::decode(data);
    let decision = match input.bytes("decision").unwrap_or(b"allow") {
        b"allow" => Decision::Allow { token: 0 },
        b"bypass" => Decision::Bypass,
        other => Decision::Deny(
            Reason::ALL
                .into_iter()
                .find(|r| r.code().as_bytes() == other)
                .unwrap_or(Reason::InvalidToken),
        ),
    };
    let token_name = input.bytes("token").map(String::from_utf8_lossy);
    let record = AccessRecord {
        timestamp_ns: input
            .number("timestamp")
            .unwrap_or(1_764_104_066_123_456_789),
        decision,
        token_name: token_name.as_deref(),
        method: input.bytes("method").unwrap_or(b"GET"),
        path: input.bytes("path").unwrap_or(b"/"),
        query: input.bytes("query"),
        status: input.number("status"),
        duration_ns: input.number("duration"),
        request_id: input.bytes("request_id"),
        protocol: input.bytes("protocol"),
        authority: input.bytes("authority"),
        source_address: input.bytes("source"),
        user_agent: input.bytes("user_agent"),
        traceparent: input.bytes("traceparent"),
        b3_trace_id: input.bytes("b3"),
        principal: input.bytes("principal"),
    };
    let mut bytes = Vec::new();
    record.write(&mut bytes);
    let line = String::from_utf8(bytes).map_err(|e| format!("the record is not UTF-8: {e}"))?;
    check_record(&record, &line)?;
    for reason in Reason::ALL {
        check_deny_body(
            &response::deny_body(reason, record.request_id),
            reason.code(),
            record.request_id,
        )?;
    }
    Ok(())
}
