//! Credentials never sit in a manifest as literals: `secret-env` (an environment variable whose
//! name looks like a credential takes its value from a Secret) and `elastic-password-secret`
//! (Elasticsearch and Kibana containers take their password variable from a Secret).

use super::objects::{Container, array};
use crate::manifests::Finding;
use serde_json::Value;

/// Parts of an environment variable's name that mark it as a credential.
const SENSITIVE: &[&str] = &["PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY"];

pub(super) fn lint_container(c: &Container, out: &mut Vec<Finding>) {
    let env = array(c.spec, "/env");
    for (j, var) in env.iter().enumerate() {
        let name = var.get("name").and_then(Value::as_str).unwrap_or("");
        let upper = name.to_ascii_uppercase();
        let sensitive = SENSITIVE.iter().any(|w| upper.contains(w));
        let literal = var
            .get("value")
            .and_then(Value::as_str)
            .is_some_and(|v| !v.is_empty());
        if sensitive && literal {
            out.push(c.error(
                "secret-env",
                &format!("env[{j}].value"),
                format!("`{name}` looks like a credential: take it from a Secret (valueFrom.secretKeyRef), never a literal"),
            ));
        }
    }
    let image = c.image;
    let wanted =
        if image.contains("/elasticsearch/elasticsearch") || image.starts_with("elasticsearch:") {
            Some("ELASTIC_PASSWORD")
        } else if image.contains("/kibana/kibana") || image.starts_with("kibana:") {
            Some("ELASTICSEARCH_PASSWORD")
        } else {
            None
        };
    if let Some(var) = wanted {
        let from_secret = env.iter().any(|e| {
            e.get("name").and_then(Value::as_str) == Some(var)
                && e.pointer("/valueFrom/secretKeyRef").is_some()
        });
        if !from_secret {
            out.push(c.error(
                "elastic-password-secret",
                "env",
                format!(
                    "container `{}` must take {var} from a Secret (valueFrom.secretKeyRef)",
                    c.name
                ),
            ));
        }
    }
}
