use super::*;

fn m(scenario: &'static str, variant: &'static str, per_request: u64) -> Measurement {
    Measurement {
        scenario,
        variant,
        requests: 2000,
        instructions: per_request * 2000,
        window_s: 6.0,
    }
}

fn report<'a>(instr: &'a [Measurement], requests: u64) -> Report<'a> {
    Report {
        meta: json!({ "module_bytes": 124_480, "cores": 2 }),
        rounds: 1,
        warmup_s: 1,
        duration_s: 2,
        pinned: None,
        scenarios: vec!["h1-allowed"],
        runs: &[],
        rows: &[],
        memory: &[],
        load_before: 1.0,
        load_after: 1.0,
        soak: None,
        soak_requests: 0,
        soak_batch: 1,
        soak_reference: 1,
        instructions: instr,
        instructions_requests: requests,
        instructions_tool: Some("valgrind-3.19.0".to_owned()),
    }
}

/// Made-up numbers for every variant and kind of request.
fn full() -> Vec<Measurement> {
    let allowed = [
        ("a", 93_000),
        ("b", 100_000),
        ("c", 113_000),
        ("d", 143_000),
        ("e", 131_000),
        ("p1", 89_000),
        ("p2", 91_000),
        ("p3", 90_500),
        ("p4", 125_000),
        ("p5", 135_000),
        ("p6", 105_000),
        ("p7", 116_000),
        ("p8", 109_000),
        ("p9", 106_000),
        ("p10", 111_000),
    ];
    let denied = [
        ("a", 92_000),
        ("b", 97_000),
        ("c", 104_000),
        ("d", 138_000),
        ("e", 127_000),
    ];
    let bypass = [("a", 91_000), ("d", 120_000), ("e", 112_000)];
    let mut all = Vec::new();
    for (sc, list) in [
        ("h1-allowed", &allowed[..]),
        ("h1-denied", &denied[..]),
        ("h1-bypass", &bypass[..]),
    ] {
        all.extend(list.iter().map(|&(v, n)| m(sc, v, n)));
    }
    all
}

#[test]
fn thousands_separators() {
    assert_eq!(thousands(180_092.6), "180,093");
    assert_eq!(thousands(999.0), "999");
    assert_eq!(thousands(1_000.0), "1,000");
    assert_eq!(signed_thousands(86_888.0), "+86,888");
    assert_eq!(signed_thousands(-1_204.0), "−1,204");
    assert_eq!(signed_thousands(0.2), "+0");
    assert_eq!(ratio(3.0, 2.0), Some(1.5));
    assert_eq!(ratio(3.0, 0.0), None);
}

#[test]
fn targets_from_made_up_numbers() {
    let instr = full();
    let md = report(&instr, 2000).markdown();
    for row in [
        "| Envoy instructions added per allowed HTTP/1.1 request, with the record and stripping: (d) − (a) ≤ 45,000 (80,776 before the record moved to Envoy's access log) | +50,000 (93,000 → 143,000 instructions per request; callgrind, one run each, 2000 requests) | **not met** |",
        "| Ratio to Lua, allowed HTTP/1.1: ((d) − (a)) / ((c) − (a)) ≤ 2.2 | 2.50 (filter (d) +50,000 over Lua (c) +20,000) | **not met** |",
        "| Denied HTTP/1.1 request (wrong token, 403 with the deny body), (d) − (a) | +46,000; Lua (c) +12,000, ratio 3.83 | reported |",
        "| Bypassed HTTP/1.1 request (bypass rule, no token), (d) − (a) | +29,000 | reported |",
    ] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    let record = md
        .lines()
        .find(|l| l.starts_with("| The record's cost"))
        .unwrap();
    assert!(record.contains("the format +4,000 ((a) − (p1), paid by every variant, gate or not; of that the 3 CEL fields (`event.outcome`, `http.version`, `url.query`), (a) − (p2): +2,000, `omit_empty_values`, (p2) − (p3): +500, the 5 filter-state operators, which find nothing without the filter, (p3) − (p1): +1,500)"), "{record}");
    assert!(record.contains("the filter's filter-state writes +12,000 ((d) − (e)"));
    assert!(record.contains("together +16,000 over a plain ECS line"));
}

#[test]
fn the_targets_are_met_at_or_under_their_bounds() {
    let instr = [
        m("h1-allowed", "a", 90_000),
        m("h1-allowed", "c", 110_000),
        m("h1-allowed", "d", 120_000),
    ];
    let md = report(&instr, 2000).markdown();
    assert!(md.contains("| +30,000 (90,000 → 120,000 instructions per request; callgrind, one run each, 2000 requests) | **met** |"), "{md}");
    assert!(md.contains("| 1.50 (filter (d) +30,000 over Lua (c) +20,000) | **met** |"));
    // Only what ran is reported.
    assert!(!md.contains("Denied HTTP/1.1") && !md.contains("The record's cost"));
    assert!(!md.contains("### The record") && !md.contains("### The floor"));
    assert!(!md.contains("missed by"));
}

#[test]
fn instructions_section_from_made_up_numbers() {
    let instr = full();
    let r = report(&instr, 2000);
    let md = r.markdown();
    if std::env::var_os("RFMA_PRINT").is_some() {
        eprintln!("{md}");
    }
    assert!(md.contains("## Envoy instructions per request (callgrind)"));
    assert!(md.contains("exactly 2000 HTTP/1.1 requests"));
    for title in [
        "### Allowed requests",
        "### Denied requests",
        "### Bypassed requests",
    ] {
        assert!(md.contains(title), "{title} missing:\n{md}");
    }
    assert!(md.contains("| (a) no gate | 93,000 | — |"), "{md}");
    assert!(md.contains("| (d) rfma filter, sink filter_state + strip | 143,000 | +50,000 |"));
    assert!(md.contains("| (d) rfma filter, sink filter_state + strip | 120,000 | +29,000 |"));
    assert!(
        md.contains("| (p1) no gate, plain ECS line (no CEL, no filter state) | 89,000 | −4,000 |")
    );
    for row in [
        "| h1-allowed | (d) − (c) | +30,000 |",
        "| h1-allowed | (d) − (e) | +12,000 |",
        "| h1-allowed | (a) − (p1) | +4,000 |",
        "| h1-allowed | (a) − (p2) | +2,000 |",
        "| h1-allowed | (p2) − (p3) | +500 |",
        "| h1-allowed | (p3) − (p1) | +1,500 |",
        "| h1-allowed | (e) − (p4) | +6,000 |",
        "| h1-allowed | (d) − (p5) | +8,000 |",
        "| h1-allowed | (p6) − (a) | +12,000 |",
        "| h1-allowed | (p7) − (p6) | +11,000 |",
        "| h1-allowed | (p8) − (p6) | +4,000 |",
        "| h1-allowed | (p9) − (p6) | +1,000 |",
        "| h1-allowed | (p10) − (p6) | +6,000 |",
        "| h1-denied | (d) − (c) | +34,000 |",
        "| h1-denied | (d) − (e) | +11,000 |",
        "| h1-bypass | (d) − (e) | +8,000 |",
    ] {
        assert!(md.contains(row), "{row} missing:\n{md}");
    }
    // The record, in two parts.
    assert!(
        md.contains("- The format: +4,000 per request, (a) − (p1)"),
        "{md}"
    );
    assert!(md.contains("figures. Of that: the 3 CEL fields (`event.outcome`, `http.version`, `url.query`), (a) − (p2): +2,000; `omit_empty_values`, (p2) − (p3): +500; the 5 filter-state operators"), "{md}");
    assert!(md.contains(
        "- The filter's part: +12,000 per request, (d) − (e): its 3 filter-state writes"
    ));
    assert!(md.contains("(one such write, printed, costs +4,000 on its own: (p8) − (p6))"));
    assert!(md.contains("- Together: +16,000 per request"));
    // The floor: boundary +12,000 and the header map +11,000, against Lua's +20,000.
    assert!(md.contains("+23,000 together, the least any Proxy-Wasm filter that reads the request headers adds in this Envoy, 1.1 times Lua's whole check (+20,000); 51 % of the 45,000 target."), "{md}");
    // Its host calls: 2 × counter 1,000 + strip 6,000 + 3 × 4,000 = 20,000; with the
    // floor 43,000 of the filter's 50,000.
    assert!(
        md.contains(
            "2 counter increments at about +1,000 each ((p9) − (p6)), stripping the token +6,000"
        ),
        "{md}"
    );
    assert!(md.contains("+20,000 in all. Floor and host calls add up to +43,000, of the +50,000 the filter adds ((d) − (a)); the remaining +7,000 is the filter's own Wasm code"), "{md}");
    // Why the targets are missed: 50,000 is 5,000 over 45,000; without one 4,000 write,
    // 46,000, still over. The ratio allows 2.2 x 20,000 = 44,000; the calls are 43,000.
    assert!(
        md.contains("The 45,000 target is missed by +5,000 (11 %)."),
        "{md}"
    );
    assert!(
        md.contains("Without it an allowed request would cost about +46,000 (still above it)"),
        "{md}"
    );
    assert!(md.contains("The ratio target allows +44,000 (2.2 × Lua's +20,000); the host calls an allowed request needs (the floor, the counters, stripping, the writes) are +43,000, inside it;"), "{md}");
    assert!(md.contains("valgrind-3.19.0, `--tool=callgrind --smc-check=all-non-file`"));
    assert!(md.contains("`hey -c 4`"));

    let js = r.to_json();
    let i = &js["instructions"];
    let runs = i["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 15);
    assert!(runs.iter().all(|r| r["scenario"] == "h1-allowed"));
    assert_eq!(runs[3]["variant"], "d");
    assert_eq!(runs[3]["instructions"], 143_000u64 * 2000);
    assert_eq!(runs[3]["instructions_per_request"], 143_000.0);
    assert_eq!(runs[3]["added_vs_a_per_request"], 50_000.0);
    assert!(runs[0]["added_vs_a_per_request"].is_null());
    let others = i["other_scenarios"].as_array().unwrap();
    assert_eq!(others.len(), 8);
    let bypass_d = others
        .iter()
        .find(|r| r["scenario"] == "h1-bypass" && r["variant"] == "d")
        .unwrap();
    assert_eq!(bypass_d["added_vs_a_per_request"], 29_000.0);
    let t = &i["targets"];
    assert_eq!(t["added_allowed_d_minus_a"], 50_000.0);
    assert_eq!(t["ratio_to_lua"], 2.5);
    assert_eq!(t["added_denied_d_minus_a"], 46_000.0);
    assert_eq!(t["added_bypassed_d_minus_a"], 29_000.0);
    assert_eq!(t["format_a_minus_p1"], 4_000.0);
    assert_eq!(t["format_cel_a_minus_p2"], 2_000.0);
    assert_eq!(t["format_omit_empty_values_p2_minus_p3"], 500.0);
    assert_eq!(t["format_filter_state_operators_p3_minus_p1"], 1_500.0);
    assert_eq!(t["filter_state_d_minus_e"], 12_000.0);
    assert_eq!(i["requests"], 2000);
    assert_eq!(i["tool"], "valgrind-3.19.0");
    let keys: Vec<&str> = js["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), STANDARD.len() + PROFILE.len());
}

/// The report describes the design as it is: the record is Envoy's, the filter only
/// writes filter state in the request phase.
#[test]
fn nothing_of_the_old_record_path_is_left() {
    let instr = full();
    let md = report(&instr, 2000).markdown();
    for old in [
        "on_log",
        "rfma_access_log",
        "proxy_log",
        "SDK-shaped",
        "get_property",
        "400 B",
        "logging off",
    ] {
        assert!(!md.contains(old), "{old:?} in:\n{md}");
    }
}

/// [`WRITES_ALLOWED`] is what the filter hands over for an allowed request that names an
/// authority, as the benchmark's requests do.
#[test]
fn the_filter_writes_three_values_for_an_allowed_request() {
    use rfma_filter::gate::Decision;
    let values = rfma_filter::handover::values(
        Decision::Allow { token: 0 },
        Some("alpha"),
        Some(b"127.0.0.1:10000"),
    );
    assert_eq!(
        values.iter().flatten().count(),
        WRITES_ALLOWED as usize,
        "{values:?}"
    );
    assert_eq!(
        values[0],
        Some((probe::PROPERTY.as_bytes(), probe::PROPERTY_VALUE.as_bytes())),
        "the set-property probe writes what the filter writes first"
    );
}

#[test]
fn no_instructions_no_section_but_a_note_when_skipped() {
    let md = report(&[], 0).markdown();
    assert!(md.contains("Not run this time (`--instructions 0`)"));
    assert!(!md.contains("Envoy instructions added"));
    assert!(report(&[], 0).to_json()["instructions"].is_null());
    let md = report(&[], 2000).markdown();
    assert!(!md.contains("Envoy instructions per request"));
}
