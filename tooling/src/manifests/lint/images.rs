//! `image-pinned`: every container names its image by a version tag or a digest, so what runs is
//! what was reviewed; `latest`, no tag and an empty tag move under it.

use super::objects::Container;
use crate::manifests::Finding;

/// `Ok` when `image` names a tag other than `latest`, or a digest.
pub fn image_pinned(image: &str) -> Result<(), String> {
    if image.is_empty() {
        return Err("no image".into());
    }
    if let Some((_, digest)) = image.split_once("@sha256:") {
        return if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(())
        } else {
            Err(format!("image `{image}` has a malformed sha256 digest"))
        };
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        None => Err(format!(
            "image `{image}` is not pinned: add a version tag or a digest"
        )),
        Some((_, "latest")) => Err(format!(
            "image `{image}` uses the moving tag `latest`: pin a version"
        )),
        Some((_, "")) => Err(format!("image `{image}` has an empty tag")),
        Some(_) => Ok(()),
    }
}

pub(super) fn lint_container(c: &Container, out: &mut Vec<Finding>) {
    if let Err(why) = image_pinned(c.image) {
        out.push(c.error(
            "image-pinned",
            "image",
            format!("container `{}`: {why}", c.name),
        ));
    }
}
