//! Registry push with the OCI distribution API: each blob the registry
//! lacks is uploaded (monolithic POST then PUT, streamed from the store),
//! then the manifest is put under the tag.

use std::sync::Arc;

use oci_spec::image::Descriptor;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;
use tokio::sync::mpsc;

use super::registry::{net, Client, LayerProgress, Pull, PullOptions, RemoteRef};
use super::store::ImageStore;
use crate::error::{Error, Result};

impl ImageStore {
    /// Pushes the stored image `reference` to the registry its name
    /// points at (`host[:port]/repo:tag`). Progress and result as for a
    /// pull; the result is the manifest digest.
    pub fn push(&self, reference: &str, opts: PullOptions) -> Result<Pull> {
        let r = RemoteRef::parse(reference)?;
        if r.reference.starts_with("sha256:") {
            return Err(Error::image(
                format!("reference {reference:?}"),
                "push needs a tag",
            ));
        }
        let image = self.image(reference)?;
        let client = Arc::new(Client::new(&r, &opts, "pull,push")?);
        let store = self.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut blobs = vec![image.manifest.config().clone()];
            blobs.extend(image.manifest.layers().iter().cloned());
            for desc in &blobs {
                upload(&client, &store, desc, &tx).await?;
            }
            let body = store.read_blob(&image.digest)?;
            let media_type = image
                .manifest
                .media_type()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
            let url = client.url(&format!("manifests/{}", r.reference));
            let resp = client
                .send(|| {
                    client
                        .http
                        .put(&url)
                        .header(CONTENT_TYPE, media_type.clone())
                        .body(body.clone())
                })
                .await?;
            if !resp.status().is_success() {
                return Err(net(&url, format!("put manifest: HTTP {}", resp.status())));
            }
            Ok(image.digest)
        });
        Ok(Pull::new(rx, task))
    }
}

async fn upload(
    client: &Client,
    store: &ImageStore,
    desc: &Descriptor,
    tx: &mpsc::UnboundedSender<LayerProgress>,
) -> Result<()> {
    let d = desc.digest();
    let report = |done| {
        let _ = tx.send(LayerProgress {
            digest: d.to_string(),
            done,
            total: desc.size(),
        });
    };
    let url = client.url(&format!("blobs/{d}"));
    let head = client.send(|| client.http.head(&url)).await?;
    if head.status().is_success() {
        report(desc.size());
        return Ok(());
    }
    report(0);
    let start = client.url("blobs/uploads/");
    let resp = client
        .send(|| client.http.post(&start).header(CONTENT_LENGTH, 0))
        .await?;
    if resp.status() != StatusCode::ACCEPTED {
        return Err(net(&start, format!("start upload: HTTP {}", resp.status())));
    }
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| net(&start, "upload without a Location"))?;
    let location = if location.starts_with('/') {
        let base = start.split("/v2/").next().unwrap_or_default();
        format!("{base}{location}")
    } else {
        location.to_string()
    };
    let sep = if location.contains('?') { '&' } else { '?' };
    let put = format!("{location}{sep}digest={d}");
    let path = store.blob_path(d);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| Error::io("open blob", &path, e))?;
    // The token from the POST is reused; a streamed body cannot be sent
    // twice, so this request is not retried.
    let resp = client
        .send_once(
            client
                .http
                .put(&put)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, desc.size())
                .body(reqwest::Body::from(file)),
        )
        .await?;
    if resp.status() != StatusCode::CREATED {
        return Err(net(&put, format!("upload blob: HTTP {}", resp.status())));
    }
    report(desc.size());
    Ok(())
}
