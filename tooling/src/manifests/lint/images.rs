//! `image-pinned`: every container names its image by a version tag or a digest, so what runs is
//! what was reviewed; `latest`, no tag and an empty tag move under it.

use super::objects::Container;
use crate::manifests::Finding;
use anyhow::{bail, ensure};

/// `Ok` when `image` names a tag other than `latest`, or a digest; the error says what is wrong.
pub fn image_pinned(image: &str) -> anyhow::Result<()> {
    ensure!(!image.is_empty(), "no image");
    if let Some((_, digest)) = image.split_once("@sha256:") {
        ensure!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "image `{image}` has a malformed sha256 digest"
        );
        return Ok(());
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => bail!("image `{image}` is not pinned: add a version tag or a digest"),
        Some((_, "latest")) => bail!("image `{image}` uses the moving tag `latest`: pin a version"),
        Some((_, "")) => bail!("image `{image}` has an empty tag"),
        Some(_) => Ok(()),
    }
}

pub(super) fn lint_container(c: &Container, out: &mut Vec<Finding>) {
    if let Err(why) = image_pinned(c.image) {
        out.push(c.error(
            "image-pinned",
            "image",
            format!("container `{}`: {why:#}", c.name),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_or_a_digest_pins_an_image_and_the_error_says_what_is_missing() {
        let digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        for pinned in [
            "docker.io/curlimages/curl:8.11.1".to_string(),
            "localhost:5000/x:v1".to_string(),
            format!("x/y@sha256:{digest}"),
        ] {
            assert!(image_pinned(&pinned).is_ok(), "{pinned}");
        }
        for (image, why) in [
            ("", "no image"),
            ("x@sha256:abc", "malformed sha256 digest"),
            ("localhost:5000/x", "is not pinned"),
            ("x:latest", "moving tag `latest`"),
            ("x:", "empty tag"),
        ] {
            let err = image_pinned(image).unwrap_err().to_string();
            assert!(err.contains(why), "{image}: {err}");
        }
    }
}
