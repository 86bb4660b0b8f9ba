use super::*;
use serde_json::json;
use std::collections::BTreeSet;

fn facts() -> Value {
    json_file(FACTS)
}

fn fields() -> Vec<Field> {
    format_fields(&json_file(FORMAT))
}

fn assert_none(what: &str, problems: Vec<String>) {
    assert!(problems.is_empty(), "{what}:\n  {}", problems.join("\n  "));
}

#[test]
fn every_format_field_agrees_with_the_projects_ecs_facts() {
    let format = json_file(FORMAT);
    let facts = facts();
    assert_eq!(
        format.pointer("/ecs/version"),
        facts.get("ecs_version"),
        "the record's ecs.version and the facts' ECS version"
    );
    let fields = format_fields(&format);
    assert!(fields.len() > 30, "only {} fields read", fields.len());
    assert_none(
        "the format against the ECS facts",
        format_against(&fields, &facts),
    );
    // The facts hold what the record uses (and the data stream's fields), nothing stale.
    for name in facts["fields"].as_object().unwrap().keys() {
        assert!(
            name.starts_with("data_stream.") || fields.iter().any(|f| f.path == *name),
            "ecs-facts.json keeps {name}, which the format does not print"
        );
    }
}

#[test]
fn the_format_and_the_facts_agree_with_the_full_ecs_definitions() {
    let facts = facts();
    let version = facts["ecs_version"].as_str().unwrap();
    let Some(ecs) = ecs_definitions(version) else {
        return;
    };
    let fields = fields();
    assert_none(
        "the format against the ECS definitions",
        format_against(&fields, &ecs),
    );
    // The project's facts are the definitions' own.
    for (name, fact) in facts["fields"].as_object().unwrap() {
        assert_eq!(Some(fact), ecs["fields"].get(name), "{name}");
    }
    for (name, values) in facts["allowed_values"].as_object().unwrap() {
        assert_eq!(Some(values), ecs["allowed_values"].get(name), "{name}");
    }
    assert_eq!(facts["expected_event_types"], ecs["expected_event_types"]);
    // And the check itself is not empty: a field ECS types differently is caught.
    let wrong = vec![Field {
        path: "http.response.status_code".into(),
        operator: None,
        yields: Yields::Text,
    }];
    assert_eq!(format_against(&wrong, &ecs).len(), 1);
}

#[test]
fn only_rfma_fields_are_outside_ecs() {
    let facts = facts();
    let ecs = ecs_definitions(facts["ecs_version"].as_str().unwrap());
    let known = |name: &str| match &ecs {
        Some(ecs) => ecs["fields"].get(name).is_some(),
        None => facts["fields"].get(name).is_some(),
    };
    let fields = fields();
    let outside: Vec<&str> = fields
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| !known(p))
        .collect();
    let own: Vec<&str> = fields
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.starts_with(OWN_PREFIX))
        .collect();
    assert_eq!(
        outside, own,
        "the fields outside ECS are exactly the rfma.* ones"
    );
    assert!(own.contains(&"rfma.decision") && own.contains(&"rfma.token.name"));
    if let Some(ecs) = &ecs {
        let clash: Vec<&String> = ecs["fields"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| k.starts_with(OWN_PREFIX))
            .collect();
        assert!(clash.is_empty(), "ECS defines {clash:?}");
    }
}

#[test]
fn the_index_template_maps_every_format_field_with_its_ecs_type() {
    let format = json_file(FORMAT);
    let template = json_file(TEMPLATE);
    let facts = facts();
    let fields = format_fields(&format);
    assert_none(
        "the index template against the format and ECS",
        template_against(&fields, &facts, &template),
    );
    if let Some(ecs) = ecs_definitions(facts["ecs_version"].as_str().unwrap()) {
        assert_none(
            "the index template against the ECS definitions",
            template_against(&fields, &ecs, &template),
        );
    }
    // The data stream's constant fields say what the index pattern says.
    let dataset = format_constant(&format, "event.dataset").expect("event.dataset is a constant");
    let pattern = template["index_patterns"][0].as_str().unwrap();
    assert_eq!(pattern, format!("logs-{dataset}-*"));
    for (field, value) in [
        ("data_stream.type", "logs"),
        ("data_stream.dataset", dataset.as_str()),
    ] {
        let m = mapping(&template, field).unwrap();
        assert!(
            m.get("value").is_none_or(|v| v == value),
            "{field} = {m} in a template for {pattern}"
        );
    }
}

#[test]
fn the_outcome_cel_prints_exactly_the_ecs_outcomes() {
    let facts = facts();
    let outcome = fields()
        .into_iter()
        .find(|f| f.path == "event.outcome")
        .expect("the record has event.outcome");
    assert_eq!(outcome.operator.as_deref(), Some("CEL"));
    assert_eq!(
        outcome.yields,
        Yields::OneOf(strings(&facts["allowed_values"]["event.outcome"]))
    );
    // The reading of CEL is what makes that hold: results, not compared literals.
    let (values, open) =
        cel_results("a == 'HTTP/2' ? '2' : (b >= 400 ? 'x' : request.headers[':never'])");
    assert_eq!(
        (values, open),
        (BTreeSet::from(["2".into(), "x".into()]), false)
    );
    let (values, open) = cel_results("request.query != '' ? request.query : 'none'");
    assert_eq!((values, open), (BTreeSet::from(["none".into()]), true));
}

#[test]
fn the_index_template_is_a_logs_data_stream_with_a_lifecycle() {
    let template = json_file(TEMPLATE);
    assert!(template["data_stream"].is_object());
    let composed = strings(&template["composed_of"]);
    for c in ["logs@settings", "logs@mappings", "ecs@mappings"] {
        assert!(composed.contains(c), "composed_of lacks {c}: {composed:?}");
    }
    // Above Elasticsearch's own `logs` template (priority 100) for logs-*-*.
    assert!(template["priority"].as_u64().unwrap() > 100);
    let retention = template
        .pointer("/template/lifecycle/data_retention")
        .and_then(Value::as_str)
        .expect("a data stream lifecycle with a retention");
    assert!(retention.ends_with('d'), "{retention}");
    // logs@settings names an ILM policy (rollover, no delete); without this the policy would
    // manage the backing indices and the retention would never apply.
    assert_eq!(
        template.pointer("/template/settings/index/lifecycle/prefer_ilm"),
        Some(&json!(false))
    );
}

#[test]
fn sample_record_lines_are_ecs_field_by_field() {
    let facts = facts();
    let template = json_file(TEMPLATE);
    let ecs = ecs_definitions(facts["ecs_version"].as_str().unwrap());
    let format_paths: BTreeSet<String> = fields().into_iter().map(|f| f.path).collect();
    let decisions = ["allow", "deny", "bypass"];
    let reasons: Vec<&str> = rfma_filter::gate::Reason::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    for line in SAMPLE_LINES {
        assert_none(line, check_record_line(line, &facts, Some(&template)));
        if let Some(ecs) = &ecs {
            assert_none(line, check_record_line(line, ecs, Some(&template)));
        }
        let record: Value = serde_json::from_str(line).unwrap();
        let mut leaves_of_line = Vec::new();
        leaves("", &record, &mut leaves_of_line);
        for (path, _) in &leaves_of_line {
            assert!(format_paths.contains(path), "{path} is not in the format");
        }
        let decision = record.pointer("/rfma/decision").and_then(Value::as_str);
        assert!(decision.is_some_and(|d| decisions.contains(&d)), "{line}");
        let reason = record.pointer("/rfma/reason").and_then(Value::as_str);
        assert_eq!(
            reason,
            record.pointer("/event/reason").and_then(Value::as_str)
        );
        assert_eq!(reason.is_some(), decision == Some("deny"), "{line}");
        assert!(reason.is_none_or(|r| reasons.contains(&r)), "{line}");
    }
}

#[test]
fn the_line_check_names_every_field_that_breaks_ecs() {
    let facts = facts();
    let template = json_file(TEMPLATE);
    let mut record: Value = serde_json::from_str(SAMPLE_LINES[0]).unwrap();
    record["event"]["outcome"] = json!("ok");
    record["event"]["category"] = json!("web");
    record["event"]["type"] = json!(["denied"]);
    record["source"]["port"] = json!("40666");
    record["action"] = json!("rfma-token-gate");
    record["rfma"]["extra"] = json!(1);
    let problems = check_record_line(&record.to_string(), &facts, Some(&template));
    for wanted in [
        "event.outcome = ok",
        "event.category = \"web\"",
        "event.type denied",
        "source.port",
        "action is neither",
        "rfma.extra = 1",
        "rfma.extra is not mapped",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(wanted)),
            "nothing about `{wanted}` in {problems:#?}"
        );
    }
    // A peer that is not an IP passes only where the mapping ignores malformed values.
    let mut strict = template.clone();
    strict["template"]["mappings"]["properties"]["source"]["properties"]["ip"] =
        json!({"type": "ip"});
    let envoy = SAMPLE_LINES[3];
    assert!(check_record_line(envoy, &facts, Some(&template)).is_empty());
    assert_eq!(
        check_record_line(envoy, &facts, Some(&strict)),
        ["source.ip = envoy is not an IP address (and nothing ignores it)"]
    );
    assert!(check_record_line("-", &facts, None)[0].starts_with("not"));
}
