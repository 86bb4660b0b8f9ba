//! A rotation of one demo token slot as its Secret records it (see [`super::ROTATION_ANNOTATION`]):
//! the two entries the gate carries meanwhile, and the steps that move a [`Token`] through it.

use super::{Token, digest};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

/// One `tokens` entry of the gate as the Secrets record it: names and digests only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub name: String,
    pub sha256: String,
    /// RFC 3339; the filter refuses the token after it (`expired_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
}

/// Where a rotation of one slot stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Both entries are in the gate; the Secret's `token` is still the old one, the new one waits
    /// under [`super::NEXT_KEY`] (the client is switched only once the gate accepts the new token).
    Added,
    /// The Secret's `token` is the new one; the old entry stays until its counter is quiet.
    Switched,
}

/// A rotation under way: the gate carries both `old` and `new`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub old: Entry,
    pub new: Entry,
    pub step: Step,
}

impl Token {
    /// The value of the token the gate calls `name` in this slot, if this Secret still holds it.
    pub fn reveal_named(&self, name: &str) -> Option<&str> {
        if self.name == name {
            return Some(&self.value);
        }
        match &self.rotation {
            Some(r) if r.new.name == name => self.next.as_deref(),
            _ => None,
        }
    }

    /// Whether the gate knows a token of this slot as `name` (current, new or retiring).
    pub fn names(&self, name: &str) -> bool {
        self.entries().iter().any(|e| e.name == name)
    }

    /// The gate's entries for this slot, in the order they are rendered: the current token, or
    /// during a rotation the old entry then the new one (the same list at both steps, so the
    /// switch of the Secret leaves the gate as it is).
    pub fn entries(&self) -> Vec<Entry> {
        match &self.rotation {
            Some(r) => vec![r.old.clone(), r.new.clone()],
            None => vec![Entry {
                name: self.name.clone(),
                sha256: self.sha256.clone(),
                not_after: None,
            }],
        }
    }

    /// Step 1 of a rotation: `new` (a fresh token called `new_name`) joins the gate beside the
    /// current one, which keeps working (until `not_after` if given); the client keeps the old token.
    pub fn begin_rotation(
        &mut self,
        new_name: &str,
        new: &str,
        not_after: Option<String>,
    ) -> Result<()> {
        if let Some(r) = &self.rotation {
            bail!(
                "a rotation of {} to {} is already under way (Secret {}/{}): finish it first",
                r.old.name,
                r.new.name,
                self.spec.namespace,
                self.spec.secret
            );
        }
        let sha256 = digest(new);
        self.rotation = Some(Rotation {
            old: Entry {
                name: self.name.clone(),
                sha256: self.sha256.clone(),
                not_after,
            },
            new: Entry {
                name: new_name.to_string(),
                sha256,
                not_after: None,
            },
            step: Step::Added,
        });
        self.next = Some(new.to_string());
        Ok(())
    }

    /// Step 2: the Secret's token becomes the new one (the gate already accepts it).
    pub fn switch(&mut self) -> Result<()> {
        let (Some(r), Some(next)) = (self.rotation.as_mut(), self.next.take()) else {
            bail!("no rotation to switch in {}", self.spec.secret);
        };
        r.step = Step::Switched;
        self.value = next;
        self.name = r.new.name.clone();
        self.sha256 = r.new.sha256.clone();
        Ok(())
    }

    /// Step 4: the old entry leaves the gate; returns it.
    pub fn finish_rotation(&mut self) -> Result<Entry> {
        match self.rotation.take() {
            Some(r) if r.step == Step::Switched => Ok(r.old),
            other => {
                self.rotation = other;
                bail!(
                    "the rotation in {} has not switched the client yet",
                    self.spec.secret
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::live;
    use super::super::*;
    use base64::Engine;
    use serde_json::json;

    #[test]
    fn a_rotation_survives_its_secret_at_each_step() {
        let mut t = fresh(DEMO_TOKENS[0]).unwrap();
        let old = t.reveal().to_string();
        let new = generate().unwrap();
        let read = |t: &Token| {
            from_secret(t.spec, &live(t.secret(false)))
                .unwrap()
                .unwrap()
        };

        t.begin_rotation("sleep-r2", &new, Some("2027-01-01T00:05:00Z".into()))
            .unwrap();
        assert!(t.begin_rotation("x", &new, None).is_err(), "one at a time");
        let back = read(&t);
        assert_eq!(
            back.reveal(),
            old,
            "the client keeps the old token at step 1"
        );
        assert_eq!(back.reveal_named("sleep-r2"), Some(new.as_str()));
        assert_eq!(back.rotation, t.rotation);
        let names: Vec<String> = back.entries().into_iter().map(|e| e.name).collect();
        assert_eq!(names, ["sleep", "sleep-r2"]);
        assert_eq!(
            back.entries()[0].not_after.as_deref(),
            Some("2027-01-01T00:05:00Z")
        );
        let shown = t.secret(true).to_string();
        assert!(!shown.contains(&new) && !shown.contains(&old), "{shown}");

        t.switch().unwrap();
        let back = read(&t);
        assert_eq!(
            (back.name.as_str(), back.reveal()),
            ("sleep-r2", new.as_str())
        );
        assert_eq!(
            back.entries(),
            t.entries(),
            "the gate does not change at the switch"
        );
        assert_eq!(
            back.reveal_named("sleep"),
            None,
            "the old token is gone from the Secret"
        );
        assert!(back.secret(false).pointer("/data/next").is_none());

        let removed = t.finish_rotation().unwrap();
        assert_eq!(
            (removed.name.as_str(), removed.sha256),
            ("sleep", digest(&old))
        );
        let back = read(&t);
        assert_eq!(back.rotation, None);
        assert_eq!(back.entries().len(), 1);
        assert_eq!(back.entries()[0].name, "sleep-r2");

        // A rotation whose digests do not match the Secret's tokens is refused, naming the Secret.
        let mut broken = fresh(DEMO_TOKENS[0]).unwrap();
        broken.begin_rotation("sleep-r2", &new, None).unwrap();
        let mut s = broken.secret(false);
        s["data"]["next"] = json!(base64::engine::general_purpose::STANDARD.encode("other"));
        let e = from_secret(broken.spec, &live(s)).unwrap_err().to_string();
        assert!(
            e.contains("demo/rfma-demo-token") && e.contains("does not match"),
            "{e}"
        );
    }
}
