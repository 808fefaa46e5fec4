//! Registry pull with the OCI distribution API: token and basic auth,
//! manifest-list selection, parallel layer downloads that resume a
//! partial blob with a `Range` request, digest verification of
//! everything, and progress as a [`Stream`] of per-layer byte counts.
//!
//! HTTP is reqwest (hyper underneath) with rustls: the most used async
//! client of the tokio ecosystem, with TLS that needs no system OpenSSL.
//! Registries on loopback addresses are spoken to over plain HTTP, as
//! Docker does; others over HTTPS unless [`PullOptions::insecure`].

use std::fs;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageManifest};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, RANGE, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::digest;
use super::layout::select_platform;
use super::store::ImageStore;
use crate::error::{Error, Result};

const MANIFEST_TYPES: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// How to pull.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullOptions {
    /// Plain HTTP (and no certificate check) for a non-loopback registry.
    pub insecure: bool,
    /// User name and password (or token) for basic auth or to obtain a
    /// bearer token.
    pub credentials: Option<(String, String)>,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// Signatures the image must carry (checked before any layer is
    /// downloaded).
    pub signatures: super::sign::SignaturePolicy,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: false,
            credentials: None,
            parallel: 3,
            signatures: Default::default(),
        }
    }
}

/// Progress of one layer (or the config) of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerProgress {
    /// The blob's digest.
    pub digest: String,
    /// Bytes present so far (including a resumed part, or all when the
    /// blob was already stored).
    pub done: u64,
    /// The blob's size from its descriptor.
    pub total: u64,
}

/// A reference split for the distribution API.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteRef {
    /// `host[:port]` as written (`registry-1.docker.io` for Docker Hub).
    pub registry: String,
    /// The repository path (`library/busybox`).
    pub repository: String,
    /// Tag or `sha256:` digest.
    pub reference: String,
}

impl RemoteRef {
    /// Parses `[host[:port]/]repo[:tag|@digest]`. A first component with a
    /// `.` or `:` or `localhost` is a registry; otherwise Docker Hub.
    pub fn parse(s: &str) -> Result<RemoteRef> {
        let bad = |r: &str| Error::image(format!("reference {s:?}"), r.to_string());
        let (name, reference) = match s.split_once('@') {
            Some((n, d)) => (n, digest::parse(d, "reference digest")?.to_string()),
            None => {
                let last = s.rsplit('/').next().unwrap_or(s);
                match last.rfind(':') {
                    Some(i) => (&s[..s.len() - last.len() + i], last[i + 1..].to_string()),
                    None => (s, "latest".to_string()),
                }
            }
        };
        let (registry, repository) = match name.split_once('/') {
            Some((h, rest)) if h.contains(['.', ':']) || h == "localhost" => {
                (h.to_string(), rest.to_string())
            }
            _ if name.contains('/') => ("registry-1.docker.io".into(), name.to_string()),
            _ => ("registry-1.docker.io".into(), format!("library/{name}")),
        };
        if repository.is_empty()
            || !repository
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-/".contains(&b))
        {
            return Err(bad("malformed repository"));
        }
        if reference.is_empty() {
            return Err(bad("empty tag"));
        }
        Ok(RemoteRef {
            registry,
            repository,
            reference,
        })
    }

    /// Whether the registry is on a loopback address.
    pub fn is_loopback(&self) -> bool {
        let host = match self.registry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.registry,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// A pull (or push) in progress: a [`Stream`] of progress, then the
/// result.
#[derive(Debug)]
pub struct Pull {
    progress: mpsc::UnboundedReceiver<LayerProgress>,
    task: tokio::task::JoinHandle<Result<Digest>>,
}

impl Pull {
    pub(super) fn new(
        progress: mpsc::UnboundedReceiver<LayerProgress>,
        task: tokio::task::JoinHandle<Result<Digest>>,
    ) -> Pull {
        Pull { progress, task }
    }

    /// Per-blob byte counts as they arrive; ends when the pull ends.
    pub fn progress(&mut self) -> impl Stream<Item = LayerProgress> + '_ {
        futures::stream::poll_fn(move |cx| self.progress.poll_recv(cx))
    }

    /// Waits for the pull; returns the manifest digest now tagged.
    pub async fn finish(self) -> Result<Digest> {
        drop(self.progress);
        self.task.await.map_err(|e| Error::TaskFailed {
            task: "pull",
            reason: e.to_string(),
        })?
    }
}

pub(super) struct Client {
    pub(super) http: reqwest::Client,
    base: String,
    repo: String,
    /// What the token is asked for: `pull` or `pull,push`.
    actions: &'static str,
    creds: Option<(String, String)>,
    /// The Authorization header that worked last.
    auth: Mutex<Option<String>>,
}

pub(super) fn net(op: &str, e: impl std::fmt::Display) -> Error {
    Error::image(op.to_string(), e.to_string())
}

impl Client {
    pub(super) fn new(r: &RemoteRef, opts: &PullOptions, actions: &'static str) -> Result<Client> {
        let plain = r.is_loopback() || opts.insecure;
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(opts.insecure)
            .build()
            .map_err(|e| net("http client", e))?;
        Ok(Client {
            http,
            base: format!("{}://{}", if plain { "http" } else { "https" }, r.registry),
            repo: r.repository.clone(),
            actions,
            creds: opts.credentials.clone(),
            auth: Mutex::new(None),
        })
    }

    async fn get(&self, path: &str, headers: HeaderMap) -> Result<reqwest::Response> {
        let url = self.url(path);
        let resp = self
            .send(|| self.http.get(&url).headers(headers.clone()))
            .await?;
        if !resp.status().is_success() {
            return Err(net(&url, format!("HTTP {}", resp.status())));
        }
        Ok(resp)
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repo, path)
    }

    /// Sends one request with the authorization that worked last.
    pub(super) async fn send_once(
        &self,
        mut req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        if let Some(a) = self.auth.lock().expect("not poisoned").clone() {
            req = req.header(AUTHORIZATION, a);
        }
        req.send().await.map_err(|e| net(&self.base, e))
    }

    /// Sends the request `make` builds, with the authorization that
    /// worked last; on a 401, answers the challenge and sends it again.
    pub(super) async fn send(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        for attempt in 0..2 {
            let mut req = make();
            if let Some(a) = self.auth.lock().expect("not poisoned").clone() {
                req = req.header(AUTHORIZATION, a);
            }
            let resp = req.send().await.map_err(|e| net(&self.base, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                let header = self.authorize(&challenge).await?;
                *self.auth.lock().expect("not poisoned") = Some(header);
                continue;
            }
            return Ok(resp);
        }
        Err(net(&self.base, "unauthorized"))
    }

    /// Answers a `WWW-Authenticate` challenge: basic with the
    /// credentials, or a bearer token from the realm.
    async fn authorize(&self, challenge: &str) -> Result<String> {
        use base64::Engine;
        let basic = || {
            self.creds.as_ref().map(|(u, p)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                )
            })
        };
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic()
                .ok_or_else(|| net(&self.base, "registry wants credentials (basic auth)"));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(net(
                &self.base,
                format!("unsupported auth challenge {challenge:?}"),
            ));
        }
        let param = |k: &str| {
            params.split(',').find_map(|kv| {
                let (key, v) = kv.trim().split_once('=')?;
                (key == k).then(|| v.trim_matches('"').to_string())
            })
        };
        let realm =
            param("realm").ok_or_else(|| net(&self.base, "bearer challenge without realm"))?;
        let mut query = Vec::new();
        if let Some(s) = param("service") {
            query.push(("service", s));
        }
        query.push((
            "scope",
            param("scope").unwrap_or_else(|| format!("repository:{}:{}", self.repo, self.actions)),
        ));
        let mut req = self.http.get(&realm).query(&query);
        if let Some(b) = basic() {
            req = req.header(AUTHORIZATION, b);
        }
        let resp = req.send().await.map_err(|e| net(&realm, e))?;
        if !resp.status().is_success() {
            return Err(net(
                &realm,
                format!("token request: HTTP {}", resp.status()),
            ));
        }
        let bytes = resp.bytes().await.map_err(|e| net(&realm, e))?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| net(&realm, e))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(|t| t.as_str())
            .ok_or_else(|| net(&realm, "token response without a token"))?;
        Ok(format!("Bearer {token}"))
    }

    /// Fetches a manifest or index; verified against its digest.
    async fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Digest, String)> {
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, MANIFEST_TYPES.parse().expect("valid header"));
        let resp = self.get(&format!("manifests/{reference}"), h).await?;
        let media_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let announced = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.bytes().await.map_err(|e| net("manifest", e))?.to_vec();
        let actual = digest::of(&body);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_string())
        } else {
            announced
        };
        if let Some(exp) = expected {
            if exp != actual.to_string() {
                return Err(Error::DigestMismatch {
                    what: "manifest",
                    expected: exp,
                    actual: actual.to_string(),
                });
            }
        }
        Ok((body, actual, media_type))
    }

    /// A small blob (a signature payload) in memory, verified.
    pub(super) async fn blob_bytes(&self, d: &Digest) -> Result<Vec<u8>> {
        let body = self
            .get(&format!("blobs/{d}"), HeaderMap::new())
            .await?
            .bytes()
            .await
            .map_err(|e| net("blob", e))?;
        let actual = digest::of(&body);
        if actual != *d {
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: d.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(body.to_vec())
    }

    /// Downloads a blob into the store, resuming a partial download.
    async fn blob(
        &self,
        store: &ImageStore,
        desc: &Descriptor,
        tx: &mpsc::UnboundedSender<LayerProgress>,
    ) -> Result<()> {
        let d = digest::parse(desc.digest().as_ref(), "descriptor digest")?;
        let report = |done| {
            let _ = tx.send(LayerProgress {
                digest: d.to_string(),
                done,
                total: desc.size(),
            });
        };
        if store.has_blob(&d) {
            report(desc.size());
            return Ok(());
        }
        let partial = store.partial_path(&d);
        let mut hasher = Sha256::new();
        let mut have = 0u64;
        if let Ok(mut f) = fs::File::open(&partial) {
            let mut buf = vec![0; 1 << 16];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| Error::io("read partial blob", &partial, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                have += n as u64;
            }
        }
        let mut h = HeaderMap::new();
        if have > 0 && have < desc.size() {
            h.insert(
                RANGE,
                format!("bytes={have}-").parse().expect("valid header"),
            );
        }
        let resp = self.get(&format!("blobs/{d}"), h).await?;
        let mut file = if resp.status() == StatusCode::PARTIAL_CONTENT {
            tokio::fs::OpenOptions::new()
                .append(true)
                .open(&partial)
                .await
        } else {
            hasher = Sha256::new();
            have = 0;
            tokio::fs::File::create(&partial).await
        }
        .map_err(|e| Error::io("write partial blob", &partial, e))?;
        report(have);
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.try_next().await.map_err(|e| net("blob download", e))? {
            file.write_all(&chunk)
                .await
                .map_err(|e| Error::io("write partial blob", &partial, e))?;
            hasher.update(&chunk);
            have += chunk.len() as u64;
            report(have);
            if have > desc.size() {
                let _ = fs::remove_file(&partial);
                return Err(Error::image(
                    format!("blob {d}"),
                    "larger than its descriptor",
                ));
            }
        }
        file.sync_all()
            .await
            .map_err(|e| Error::io("sync blob", &partial, e))?;
        let actual: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if actual != d.digest() {
            let _ = fs::remove_file(&partial);
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: d.to_string(),
                actual: format!("sha256:{actual}"),
            });
        }
        store.commit_ingested(&partial, &d)
    }
}

impl ImageStore {
    /// Where a download of `d` is kept until it is complete, so a later
    /// pull resumes it.
    pub(crate) fn partial_path(&self, d: &Digest) -> PathBuf {
        self.root()
            .join("ingest")
            .join(format!("partial-{}", d.digest()))
    }

    /// Pulls `reference` from its registry into the store and tags it
    /// with the same name. Await [`Pull::finish`]; read
    /// [`Pull::progress`] meanwhile.
    pub fn pull(&self, reference: &str, opts: PullOptions) -> Result<Pull> {
        let r = RemoteRef::parse(reference)?;
        let client = Arc::new(Client::new(&r, &opts, "pull")?);
        let tag_name = reference.to_string();
        let store = self.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            // Blobs downloaded but not yet tagged are safe from gc.
            let s = store.clone();
            let guard = berth::blocking::run(move || s.gc_guard(false))
                .await
                .map_err(|e| Error::TaskFailed {
                    task: "lock",
                    reason: e.to_string(),
                })??;
            let (mut body, mut d, mut media_type) = client.manifest(&r.reference).await?;
            if opts.signatures.require {
                super::sign::verify(&client, &tag_name, &d, &opts.signatures).await?;
            }
            for _ in 0..4 {
                let parsed: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| Error::image(format!("manifest {d}"), e.to_string()))?;
                let mt = parsed
                    .get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_owned)
                    .unwrap_or(media_type.clone());
                if !(mt.contains("image.index") || mt.contains("manifest.list"))
                    && parsed.get("manifests").is_none()
                {
                    break;
                }
                let index = ImageIndex::from_reader(&body[..])
                    .map_err(|e| Error::image(format!("index {d}"), e.to_string()))?;
                let chosen = select_platform(&index, &format!("index {d}"))?.clone();
                (body, d, media_type) = client.manifest(chosen.digest().as_ref()).await?;
            }
            let manifest = ImageManifest::from_reader(&body[..])
                .map_err(|e| Error::image(format!("manifest {d}"), e.to_string()))?;
            client.blob(&store, manifest.config(), &tx).await?;
            let results: Vec<Result<()>> = futures::stream::iter(manifest.layers().iter().cloned())
                .map(|l| {
                    let (client, store, tx) = (client.clone(), store.clone(), tx.clone());
                    async move { client.blob(&store, &l, &tx).await }
                })
                .buffer_unordered(opts.parallel.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<()>>()?;
            store.write_blob(&d, &body[..])?;
            store.image_by_digest(tag_name.clone(), d.clone())?;
            if !tag_name.contains('@') {
                store.tag(&tag_name, &d)?;
            }
            drop(guard);
            Ok(d)
        });
        Ok(Pull { progress: rx, task })
    }
}

#[cfg(test)]
mod tests {
    use super::RemoteRef;

    #[test]
    fn references_name_registry_repository_and_tag() {
        let r = RemoteRef::parse("127.0.0.1:5000/test/busy:1").unwrap();
        assert_eq!(
            (
                r.registry.as_str(),
                r.repository.as_str(),
                r.reference.as_str()
            ),
            ("127.0.0.1:5000", "test/busy", "1")
        );
        assert!(r.is_loopback());
        let r = RemoteRef::parse("busybox").unwrap();
        assert_eq!(r.repository, "library/busybox");
        assert_eq!(r.reference, "latest");
        assert!(!r.is_loopback());
        assert!(RemoteRef::parse("localhost/x").unwrap().is_loopback());
        assert!(RemoteRef::parse("[::1]:5000/x").unwrap().is_loopback());
        assert!(!RemoteRef::parse("example.com/x").unwrap().is_loopback());
        assert!(RemoteRef::parse("x@sha256:00").is_err());
        assert!(RemoteRef::parse("Upper/x").is_err());
    }
}
