//! Signature verification, cosign-compatible: a signature is an OCI
//! artifact tagged `sha256-<hex>.sig` beside the image in its repository,
//! whose layers are "simple signing" payloads naming the signed manifest
//! digest, each with an ECDSA P-256/SHA-256 signature (base64 DER) in the
//! `dev.cosignproject.cosign/signature` annotation. This is what `cosign
//! sign --key` writes and `cosign verify --key` checks; a key is the
//! PEM public key cosign prints.

use base64::Engine;
use oci_spec::image::{Digest, ImageManifest};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{DerSignature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

use super::digest;
use super::registry::{net, Client};
use crate::error::{Error, Result};

/// The annotation holding a layer's signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";

/// Whether pulled images must be signed, and by whom.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SignaturePolicy {
    /// Refuse an image (before its layers are downloaded) unless a
    /// signature of its manifest digest verifies with one of `keys`.
    pub require: bool,
    /// PEM-encoded P-256 public keys (`-----BEGIN PUBLIC KEY-----`).
    pub keys: Vec<String>,
}

/// The cosign signature tag of a manifest digest.
pub fn signature_tag(d: &Digest) -> String {
    format!("sha256-{}.sig", d.digest())
}

/// Checks that `signed` (the digest the reference resolved to) carries a
/// signature that verifies with one of the policy's keys.
pub(super) async fn verify(
    client: &Client,
    reference: &str,
    signed: &Digest,
    policy: &SignaturePolicy,
) -> Result<()> {
    let refuse = |reason: String| Error::Signature {
        image: reference.to_string(),
        reason,
    };
    let keys = policy
        .keys
        .iter()
        .enumerate()
        .map(|(i, pem)| {
            VerifyingKey::from_public_key_pem(pem.trim())
                .map_err(|e| Error::image(format!("signature key {i}"), e.to_string()))
        })
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(refuse(
            "the policy requires signatures but names no key".into(),
        ));
    }
    let url = client.url(&format!("manifests/{}", signature_tag(signed)));
    let resp = client
        .send(|| {
            client
                .http
                .get(&url)
                .header(ACCEPT, "application/vnd.oci.image.manifest.v1+json")
        })
        .await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(refuse(format!(
            "no signature ({} is absent)",
            signature_tag(signed)
        )));
    }
    if !resp.status().is_success() {
        return Err(net(&url, format!("HTTP {}", resp.status())));
    }
    let body = resp.bytes().await.map_err(|e| net(&url, e))?;
    let manifest = ImageManifest::from_reader(&body[..])
        .map_err(|e| refuse(format!("signature manifest: {e}")))?;
    let mut tried = 0;
    for layer in manifest.layers() {
        let Some(sig) = layer
            .annotations()
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        else {
            continue;
        };
        tried += 1;
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(sig.trim()) else {
            continue;
        };
        let Ok(sig) = DerSignature::from_bytes(&sig) else {
            continue;
        };
        let d = digest::parse(layer.digest().as_ref(), "signature layer digest")?;
        if layer.size() > 1 << 20 {
            continue;
        }
        let payload = client.blob_bytes(&d).await?;
        if !keys.iter().any(|k| k.verify(&payload, &sig).is_ok()) {
            continue;
        }
        let v: serde_json::Value =
            serde_json::from_slice(&payload).map_err(|e| refuse(format!("signed payload: {e}")))?;
        if v["critical"]["image"]["docker-manifest-digest"].as_str() == Some(signed.as_ref()) {
            return Ok(());
        }
    }
    Err(refuse(if tried == 0 {
        "the signature artifact holds no signature".into()
    } else {
        format!("none of {tried} signatures verifies with the policy's keys for {signed}")
    }))
}
