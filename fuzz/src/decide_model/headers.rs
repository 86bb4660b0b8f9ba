//! A request's headers as the model reads them (the first value of a name, whether a path is
//! ambiguous) and as the Proxy-Wasm ABI serializes them.

/// The first value of a header, by exact (already lower-case) name.
pub fn first<'a>(headers: &'a [(Vec<u8>, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|(n, _)| n == name.as_bytes())
        .map(|(_, v)| v.as_slice())
}

/// Whether a path might mean another path once a server normalises it: a `.` or `..`
/// segment (also before `;` parameters), a backslash, or a percent-encoded `.`, `/`, `\`
/// or `%` (double encoding).
pub fn ambiguous(path: &[u8]) -> bool {
    let lower = path.to_ascii_lowercase();
    let encoded = ["%2e", "%2f", "%5c", "%25"]
        .iter()
        .any(|e| lower.windows(3).any(|w| w == e.as_bytes()));
    let dot_segment = String::from_utf8_lossy(path)
        .split('/')
        .map(|segment| segment.split(';').next().unwrap_or(""))
        .any(|name| name == "." || name == "..");
    encoded || dot_segment || path.contains(&b'\\')
}

/// A header map in the Proxy-Wasm ABI's serialized form, written without the filter's help:
/// `u32 count`, `count` × (`u32 name_len`, `u32 value_len`), then each name and value + NUL.
pub fn serialize(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let le = |n: usize| (n as u32).to_le_bytes();
    let mut out = le(headers.len()).to_vec();
    for (n, v) in headers {
        out.extend(le(n.len()));
        out.extend(le(v.len()));
    }
    for (n, v) in headers {
        out.extend(n);
        out.push(0);
        out.extend(v);
        out.push(0);
    }
    out
}
