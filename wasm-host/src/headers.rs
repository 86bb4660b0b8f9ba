//! An ordered, multi-valued header map with Envoy's rules: names are stored
//! lower-cased, duplicates and insertion order are kept, values are bytes.

use std::fmt;

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Lower-cases a header name the way Envoy's `LowerCaseString` does (ASCII only).
pub fn lower(name: &[u8]) -> Vec<u8> {
    name.to_ascii_lowercase()
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Appends a header; the name is lower-cased, an existing one is kept (`addCopy`).
    pub fn add(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.entries
            .push((lower(name.as_ref()), value.as_ref().to_vec()));
    }

    /// The first value of `name` (any case), as Envoy's single-value lookup returns it.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        let key = lower(name.as_bytes());
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// The first value of `name` as text (lossy for bytes that are not UTF-8).
    pub fn get(&self, name: &str) -> Option<String> {
        self.get_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        let key = lower(name.as_bytes());
        self.entries
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Removes every value of `name` (Envoy's `remove`). Returns how many went.
    pub fn remove(&mut self, name: &[u8]) -> usize {
        let key = lower(name);
        let before = self.entries.len();
        self.entries.retain(|(k, _)| *k != key);
        before - self.entries.len()
    }

    /// Envoy's `setCopy`: the first entry takes the new value in place, later
    /// duplicates are removed; a missing header is appended.
    pub fn replace(&mut self, name: &[u8], value: &[u8]) {
        let key = lower(name);
        let mut seen = false;
        self.entries.retain_mut(|(k, v)| {
            if *k != key {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            *v = value.to_vec();
            true
        });
        if !seen {
            self.entries.push((key, value.to_vec()));
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sum of name and value lengths (Envoy's `byteSize`).
    pub fn byte_size(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    pub fn entries(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.entries
    }

    /// Name/value pairs as text (lossy), in order, duplicates kept.
    pub fn pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect()
    }

    /// Header names in order (duplicates kept).
    pub fn names(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.pairs()).finish()
    }
}

impl<K: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(K, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut h = Headers::new();
        for (k, v) in iter {
            h.add(k, v);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lower_cased_and_lookup_is_case_insensitive() {
        let mut h = Headers::new();
        h.add("X-Token", "a");
        assert_eq!(h.names(), vec!["x-token"]);
        assert_eq!(h.get("X-TOKEN").as_deref(), Some("a"));
    }

    #[test]
    fn first_value_wins_and_duplicates_are_kept() {
        let h: Headers = [("a", "1"), ("b", "x"), ("A", "2")].into_iter().collect();
        assert_eq!(h.get("a").as_deref(), Some("1"));
        assert_eq!(h.get_all("a"), vec!["1", "2"]);
        assert_eq!(h.names(), vec!["a", "b", "a"]);
    }

    #[test]
    fn remove_takes_every_value_and_replace_keeps_position() {
        let mut h: Headers = [("a", "1"), ("b", "x"), ("a", "2")].into_iter().collect();
        h.replace(b"A", b"9");
        assert_eq!(
            h.pairs(),
            vec![("a".into(), "9".into()), ("b".into(), "x".into())]
        );
        assert_eq!(h.remove(b"B"), 1);
        assert_eq!(h.len(), 1);
        h.replace(b"c", b"3");
        assert_eq!(h.names(), vec!["a", "c"]);
    }
}
