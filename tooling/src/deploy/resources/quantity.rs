//! Kubernetes quantities: parsing `500m`, `128Mi`, `1e3` and the like, a quantity read from a
//! manifest, and rounding to millicores and bytes as Kubernetes does.

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// Parses a Kubernetes quantity (`500m`, `1.5`, `128Mi`, `2Gi`, `1k`, `1e3`, `0.5M`) into base
/// units: cores for CPU, bytes for memory. Binary suffixes `Ki Mi Gi Ti Pi Ei`, decimal suffixes
/// `n u m k M G T P E`, or a decimal exponent `e`/`E` followed by an integer; an optional sign.
pub fn parse_quantity(text: &str) -> Result<f64> {
    let s = text.trim();
    let digits_end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map_or(s.len(), |(i, _)| i);
    let (number, suffix) = s.split_at(digits_end);
    let unsigned = number.trim_start_matches(['+', '-']);
    if unsigned.is_empty()
        || unsigned == "."
        || unsigned.matches('.').count() > 1
        || number.len() - unsigned.len() > 1
    {
        bail!(
            "{text:?} is not a Kubernetes quantity (expected a number such as 500m, 1.5 or 128Mi)"
        );
    }
    let value: f64 = number
        .parse()
        .with_context(|| format!("{text:?} is not a Kubernetes quantity"))?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        other => {
            // A decimal exponent: `e` or `E` then a signed integer (`E` alone is exa, above).
            let exponent = other
                .strip_prefix('e')
                .or_else(|| other.strip_prefix('E'))
                .filter(|e| {
                    let d = e.strip_prefix(['+', '-']).unwrap_or(e);
                    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
                })
                .with_context(|| {
                    format!("{text:?} is not a Kubernetes quantity: unknown suffix {other:?} (use m, k, M, G, Ki, Mi, Gi...)")
                })?;
            let exponent: i32 = exponent
                .parse()
                .with_context(|| format!("{text:?}: exponent out of range"))?;
            10f64.powi(exponent)
        }
    };
    let v = value * factor;
    if !v.is_finite() {
        bail!("{text:?} is out of range");
    }
    Ok(v)
}

/// A quantity in a manifest: a string, or a bare YAML number (`cpu: 1`).
pub(super) fn quantity(v: &Value, what: &str) -> Result<f64> {
    let q = match v {
        Value::String(s) => parse_quantity(s),
        Value::Number(n) => n.as_f64().context("not a finite number"),
        other => bail!("{other} is not a quantity"),
    }
    .with_context(|| format!("{what}: cannot parse the quantity {v}"))?;
    if q < 0.0 {
        bail!("{what}: negative quantity {v}");
    }
    Ok(q)
}

pub(super) fn millis(cores: f64) -> u64 {
    // Kubernetes rounds CPU up to whole millicores.
    (cores * 1000.0 - 1e-9).ceil().max(0.0) as u64
}

pub(super) fn bytes(b: f64) -> u64 {
    (b - 1e-9).ceil().max(0.0) as u64
}
