//! Image references: `[registry[:port]/]repository[:tag]`.

use crate::error::{Error, Result};

/// Normalises a reference for use as a tag key: adds `:latest` when no
/// tag is given. Refuses empty names, digests in place of tags and
/// characters outside the distribution spec's grammar.
pub fn normalize(reference: &str) -> Result<String> {
    let bad = |reason: &str| Err(Error::image(format!("reference {reference:?}"), reason));
    if reference.is_empty() || reference.len() > 255 {
        return bad("must be 1 to 255 characters");
    }
    if reference.contains('@') {
        return bad("digest references (name@sha256:…) are not supported as tags");
    }
    if !reference.bytes().all(|b| {
        b.is_ascii_lowercase()
            || b.is_ascii_digit()
            || b"._-/:".contains(&b)
            || b.is_ascii_uppercase()
    }) {
        return bad("only letters, digits and . _ - / : are allowed");
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    let (repo, tag) = match last.rfind(':') {
        Some(i) => (
            &reference[..reference.len() - last.len() + i],
            &last[i + 1..],
        ),
        None => (reference, "latest"),
    };
    if repo.is_empty() || repo.starts_with('/') || repo.ends_with('/') || repo.contains("//") {
        return bad("malformed repository name");
    }
    if repo
        .split('/')
        .skip(1)
        .any(|c| c.bytes().any(|b| b.is_ascii_uppercase() || b == b':'))
    {
        return bad("repository path must be lower case");
    }
    if tag.is_empty() || tag.len() > 128 || tag.starts_with(['.', '-']) {
        return bad("malformed tag");
    }
    Ok(format!("{repo}:{tag}"))
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn adds_latest_and_keeps_registry_ports() {
        assert_eq!(normalize("busybox").unwrap(), "busybox:latest");
        assert_eq!(normalize("a/b:1.0").unwrap(), "a/b:1.0");
        assert_eq!(
            normalize("127.0.0.1:5000/x/y").unwrap(),
            "127.0.0.1:5000/x/y:latest"
        );
        assert_eq!(
            normalize("127.0.0.1:5000/x:v2").unwrap(),
            "127.0.0.1:5000/x:v2"
        );
        for bad in [
            "",
            "a b",
            "x@sha256:00",
            "/x",
            "x/",
            "a//b",
            "x:",
            "x:-a",
            "ü",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
    }
}
