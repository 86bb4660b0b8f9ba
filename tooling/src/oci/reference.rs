//! Image references `[registry/]repository:tag` (an `oci://` prefix accepted), parsed as Docker does.

use anyhow::{Result, bail};

/// An image reference `[registry/]repository:tag`, parsed as Docker does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// As written by the user (`docker.io` for Docker Hub).
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.strip_prefix("oci://").unwrap_or(s);
        if s.is_empty() {
            bail!("empty image reference");
        }
        if s.contains('@') {
            bail!(
                "{s:?}: give a tag, not a digest: the digest is computed and printed by the push"
            );
        }
        let (name, tag) = match s.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => bail!(
                "{s:?}: missing tag (write REGISTRY/REPOSITORY:TAG, e.g. localhost:5000/rfma-filter:0.1.0)"
            ),
        };
        let tag_ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !tag_ok {
            bail!(
                "{s:?}: invalid tag {tag:?} (1-128 of A-Z a-z 0-9 _ . -, not starting with . or -)"
            );
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
                (first.to_string(), rest.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if repository.is_empty() || !repository.split('/').all(component_ok) {
            bail!(
                "{s:?}: invalid repository {repository:?} (lowercase letters, digits and . _ - between slashes)"
            );
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.to_string(),
        })
    }

    /// The same reference as oci-client takes it (which knows where Docker Hub's API is).
    pub fn to_oci(&self) -> oci_client::Reference {
        oci_client::Reference::with_tag(
            self.registry.clone(),
            self.repository.clone(),
            self.tag.clone(),
        )
    }

    /// `oci://registry/repository@digest`, what a WasmPlugin `url` pins.
    pub fn pinned(&self, digest: &str) -> String {
        format!("oci://{}/{}@{digest}", self.registry, self.repository)
    }
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}:{}", self.registry, self.repository, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("127.0.0.1:5000/rfma/filter:v1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("127.0.0.1:5000", "rfma/filter", "v1")
        );
        assert_eq!(
            r.pinned("sha256:ab"),
            "oci://127.0.0.1:5000/rfma/filter@sha256:ab"
        );
        let r = Reference::parse("oci://ghcr.io/acme/rfma-filter:0.1.0").unwrap();
        assert_eq!(r.to_oci().whole(), "ghcr.io/acme/rfma-filter:0.1.0");
        let r = Reference::parse("acme/filter:1").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(r.to_oci().resolve_registry(), "index.docker.io");
        assert_eq!(
            Reference::parse("filter:1").unwrap().repository,
            "library/filter"
        );
        assert!(
            Reference::parse("localhost:5000/filter")
                .unwrap_err()
                .to_string()
                .contains("missing tag")
        );
        assert!(
            Reference::parse("localhost:5000/Filter:1")
                .unwrap_err()
                .to_string()
                .contains("invalid repository")
        );
        assert!(
            Reference::parse("x/y@sha256:00")
                .unwrap_err()
                .to_string()
                .contains("not a digest")
        );
        assert!(
            Reference::parse("x/y:-bad")
                .unwrap_err()
                .to_string()
                .contains("invalid tag")
        );
    }
}
