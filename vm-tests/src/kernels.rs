//! Debian kernels for the matrix: a private apt setup, the choice of the newest
//! package of each series, download and unpacking into the cache.
//!
//! # The private apt setup
//!
//! [`AptRoot`] lives in `<cache>/apt/`: its own `apt.conf` (passed as
//! `APT_CONFIG`), `sources.list`, an empty `apt.conf.d/`, `preferences.d/` and
//! `trusted.gpg.d/`, and its own state (`lists/`, an empty dpkg `status`) and
//! cache (`archives/`). `APT_CONFIG` is read before anything else and redirects
//! `Dir::Etc`, `Dir::State` and `Dir::Cache`, so the host's `/etc/apt` (sources,
//! proxies, hooks, pins) is never read and `/var/lib/apt` never written. Root is
//! not needed: apt-get only writes below the cache dir. The archive is
//! authenticated with `signed-by` the host's `debian-archive-keyring.gpg`
//! (override with [`AptSources::keyring`]).
//!
//! # Choosing a kernel
//!
//! [`PackageIndex`] parses the downloaded `Packages` lists (found through
//! `apt-get indextargets`, which knows each list's codename). For a series, the
//! candidates are the `linux-image-<abi>-amd64` packages of that series' suites
//! whose `<abi>` is `M.m.0-N` (5.10, 6.1) or `M.m.P+debN[.K]` (6.12 and later), so
//! `-cloud`, `-rt`, `-dbg`, `-unsigned` and the bullseye backport `6.1.0-0.deb11.N`
//! are excluded. The newest by Debian version order ([`compare_versions`]) wins;
//! no build number is ever written down here.
//!
//! From 6.19 on, Debian splits the kernel: `linux-image-<abi>` is an empty
//! package that depends, with `(= version)`, on `linux-binary-<abi>` (the
//! `vmlinuz`), `linux-modules-<abi>` and `linux-base-<abi>` (`config`,
//! `System.map`, `modules.builtin`, `modules.order`), all installed under
//! `/usr/lib/modules/<release>/`. [`KernelPackage::debs`] therefore holds the
//! image package plus every `linux-*` dependency pinned to the same version;
//! older kernels are a single package with `/boot/vmlinuz-<release>`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::error::{run, Error, Result};
use crate::KernelSeries;

// ---------------------------------------------------------------------------
// Debian version comparison
// ---------------------------------------------------------------------------

/// Compares two Debian version strings (`[epoch:]upstream[-revision]`) the way
/// `dpkg --compare-versions` does: `~` sorts before everything (even the end),
/// letters before other characters, digit runs numerically.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| verrevcmp(ua, ub))
        .then_with(|| verrevcmp(ra, rb))
}

fn split_version(v: &str) -> (u64, &str, &str) {
    let v = v.trim();
    let (epoch, rest) = match v.split_once(':') {
        Some((e, rest)) if !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit()) => {
            (e.parse().unwrap_or(u64::MAX), rest)
        }
        _ => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((upstream, revision)) => (epoch, upstream, revision),
        None => (epoch, rest, ""),
    }
}

/// dpkg's character order for the non-digit parts.
fn order(c: Option<u8>) -> i32 {
    match c {
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(b'~') => -1,
        Some(c) => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`.
fn verrevcmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    let digit = |s: &[u8], k: usize| s.get(k).is_some_and(u8::is_ascii_digit);
    while i < a.len() || j < b.len() {
        while (i < a.len() && !digit(a, i)) || (j < b.len() && !digit(b, j)) {
            let (ac, bc) = (order(a.get(i).copied()), order(b.get(j).copied()));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while a.get(i) == Some(&b'0') {
            i += 1;
        }
        while b.get(j) == Some(&b'0') {
            j += 1;
        }
        let mut first_diff = Ordering::Equal;
        while digit(a, i) && digit(b, j) {
            if first_diff == Ordering::Equal {
                first_diff = a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
        if digit(a, i) {
            return Ordering::Greater;
        }
        if digit(b, j) {
            return Ordering::Less;
        }
        if first_diff != Ordering::Equal {
            return first_diff;
        }
    }
    Ordering::Equal
}

// ---------------------------------------------------------------------------
// Package lists
// ---------------------------------------------------------------------------

/// One binary package paragraph of a `Packages` list (the fields this crate uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageEntry {
    /// `Package:`.
    pub package: String,
    /// `Version:`.
    pub version: String,
    /// `Architecture:`.
    pub architecture: String,
    /// `Filename:`, the path in the archive's pool.
    pub filename: String,
    /// `Size:` of the `.deb` in bytes.
    pub size: u64,
    /// `SHA256:` of the `.deb`.
    pub sha256: String,
    /// `Depends:`, unparsed.
    pub depends: String,
    /// The codename of the list it came from (`bookworm-security`, `trixie`, ...).
    pub codename: String,
}

impl PackageEntry {
    /// The file name `apt-get download` gives this package:
    /// `name_version_arch.deb`, the epoch's `:` written `%3a`.
    pub fn deb_file_name(&self) -> String {
        format!(
            "{}_{}_{}.deb",
            self.package,
            self.version.replace(':', "%3a"),
            self.architecture
        )
    }

    /// The `Depends:` entries that pin an exact version, as `(name, version)`;
    /// alternatives (`a | b`) are skipped.
    pub fn pinned_depends(&self) -> Vec<(&str, &str)> {
        self.depends
            .split(',')
            .filter(|d| !d.contains('|'))
            .filter_map(|d| {
                let (name, rest) = d.trim().split_once('(')?;
                let ver = rest.trim().strip_prefix('=')?.trim().strip_suffix(')')?;
                let name = name.trim();
                let name = name.split_once(':').map_or(name, |(n, _)| n);
                Some((name, ver.trim()))
            })
            .collect()
    }
}

/// Parses a `Packages` list, keeping only paragraphs whose package name passes
/// `keep` (checked first, so the 50 MB lists of a full suite parse quickly).
pub fn parse_packages(
    text: &str,
    codename: &str,
    keep: &dyn Fn(&str) -> bool,
) -> Vec<PackageEntry> {
    let mut out = Vec::new();
    let mut cur: Option<PackageEntry> = None;
    let mut skipping = false;
    let mut last_key = "";
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if let Some(e) = cur.take() {
                if !e.package.is_empty() {
                    out.push(e);
                }
            }
            skipping = false;
            continue;
        }
        if skipping {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation line: only Depends could matter, and it is never folded
            // in practice; append to be safe.
            if let (Some(e), "Depends") = (cur.as_mut(), last_key) {
                e.depends.push(' ');
                e.depends.push_str(line.trim());
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        last_key = key;
        if key == "Package" {
            if !keep(value) {
                skipping = true;
                cur = None;
                continue;
            }
            cur = Some(PackageEntry {
                package: value.to_string(),
                version: String::new(),
                architecture: String::new(),
                filename: String::new(),
                size: 0,
                sha256: String::new(),
                depends: String::new(),
                codename: codename.to_string(),
            });
            continue;
        }
        let Some(e) = cur.as_mut() else { continue };
        match key {
            "Version" => e.version = value.to_string(),
            "Architecture" => e.architecture = value.to_string(),
            "Filename" => e.filename = value.to_string(),
            "Size" => e.size = value.parse().unwrap_or(0),
            "SHA256" => e.sha256 = value.to_string(),
            "Depends" => e.depends = value.to_string(),
            _ => {}
        }
    }
    if let Some(e) = cur {
        if !e.package.is_empty() {
            out.push(e);
        }
    }
    out
}

/// The packages of several lists.
#[derive(Debug, Clone, Default)]
pub struct PackageIndex {
    entries: Vec<PackageEntry>,
}

impl PackageIndex {
    /// An index over `entries`.
    pub fn from_entries(entries: Vec<PackageEntry>) -> Self {
        PackageIndex { entries }
    }

    /// All entries.
    pub fn entries(&self) -> &[PackageEntry] {
        &self.entries
    }

    /// The entry for `package` at exactly `version`, preferring the first list.
    pub fn get(&self, package: &str, version: &str) -> Option<&PackageEntry> {
        self.entries
            .iter()
            .find(|e| e.package == package && e.version == version)
    }

    /// The newest version of `package` among `codenames` (all lists if empty).
    pub fn newest(&self, package: &str, codenames: &[&str]) -> Option<&PackageEntry> {
        self.entries
            .iter()
            .filter(|e| e.package == package)
            .filter(|e| codenames.is_empty() || codenames.contains(&e.codename.as_str()))
            .max_by(|a, b| compare_versions(&a.version, &b.version))
    }

    /// Every `linux-image` package of `series` from its suites, newest first.
    pub fn kernel_candidates(&self, series: KernelSeries) -> Vec<&PackageEntry> {
        let suites = debian_suites(series);
        let mut v: Vec<&PackageEntry> = self
            .entries
            .iter()
            .filter(|e| e.architecture == "amd64")
            .filter(|e| suites.contains(&e.codename.as_str()))
            .filter(|e| image_matches(series, &e.package, &e.version))
            .collect();
        v.sort_by(|a, b| {
            compare_versions(&b.version, &a.version).then_with(|| a.package.cmp(&b.package))
        });
        v.dedup_by(|a, b| a.package == b.package && a.version == b.version);
        v
    }

    /// The newest kernel of `series` and the `.deb`s that make it up.
    pub fn newest_kernel(&self, series: KernelSeries) -> Result<KernelPackage> {
        let image = self
            .kernel_candidates(series)
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no linux-image package of series {series} in {:?} (has `apt-get update` run?)",
                    debian_suites(series)
                ))
            })?
            .clone();
        let mut debs = vec![image.clone()];
        for (name, version) in image.pinned_depends() {
            if !name.starts_with("linux-") || version != image.version {
                continue;
            }
            let part = self.get(name, version).ok_or_else(|| {
                Error::NotFound(format!(
                    "{name} (= {version}), a part of {} {}",
                    image.package, image.version
                ))
            })?;
            debs.push(part.clone());
        }
        Ok(KernelPackage {
            series,
            image,
            debs,
        })
    }
}

/// The Debian suites (codenames) searched for a series, in the order of
/// preference for equal versions.
pub fn debian_suites(series: KernelSeries) -> &'static [&'static str] {
    match series {
        KernelSeries::V5_10 => &["bullseye-security"],
        KernelSeries::V6_1 => &["bookworm-security", "bookworm"],
        KernelSeries::V6_12 => &[
            "trixie-security",
            "trixie",
            "bookworm-security",
            "bookworm-backports",
        ],
        KernelSeries::V7_3 => &["trixie-backports"],
    }
}

/// Whether `package` at `version` is a stock amd64 image of `series`:
/// `linux-image-M.m.0-N-amd64` or `linux-image-M.m.P+debN[.K]-amd64`.
pub fn image_matches(series: KernelSeries, package: &str, version: &str) -> bool {
    let (major, minor) = series.major_minor();
    let prefix = format!("{major}.{minor}");
    let Some(abi) = package
        .strip_prefix("linux-image-")
        .and_then(|s| s.strip_suffix("-amd64"))
    else {
        return false;
    };
    let Some(rest) = abi.strip_prefix(&prefix) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    let abi_ok = if let Some(n) = rest.strip_prefix(".0-") {
        digits(n)
    } else if let Some((patch, deb)) = rest.strip_prefix('.').and_then(|r| r.split_once("+deb")) {
        digits(patch) && {
            let (n, k) = deb.split_once('.').unwrap_or((deb, "0"));
            digits(n) && digits(k)
        }
    } else {
        false
    };
    // The package's upstream version must be of the same series too.
    let (_, upstream, _) = split_version(version);
    abi_ok && upstream.starts_with(&format!("{prefix}."))
}

/// A kernel chosen from the lists: its `linux-image` package and every `.deb` to
/// unpack (the image itself plus, for split kernels, `linux-binary-*`,
/// `linux-modules-*` and `linux-base-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelPackage {
    /// The series.
    pub series: KernelSeries,
    /// The `linux-image-*` package.
    pub image: PackageEntry,
    /// Everything to download and unpack, the image first.
    pub debs: Vec<PackageEntry>,
}

impl KernelPackage {
    /// Total download size in bytes.
    pub fn download_size(&self) -> u64 {
        self.debs.iter().map(|d| d.size).sum()
    }

    /// The name of its directory under `<cache>/kernels/<series>/`.
    pub fn dir_name(&self) -> String {
        format!(
            "{}_{}",
            self.image.package,
            self.image.version.replace(':', "%3a")
        )
    }
}

// ---------------------------------------------------------------------------
// The private apt root
// ---------------------------------------------------------------------------

/// Where the private apt setup fetches from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSources {
    /// The main archive, default `http://deb.debian.org/debian`
    /// (`$BERTH_DEBIAN_MIRROR` overrides).
    pub mirror: String,
    /// The security archive, default `http://deb.debian.org/debian-security`
    /// (`$BERTH_DEBIAN_SECURITY_MIRROR` overrides); used for `*-security` suites.
    pub security_mirror: String,
    /// The suites (codenames), component `main` only.
    pub suites: Vec<String>,
    /// The keyring the archive's `InRelease` files must be signed with.
    pub keyring: PathBuf,
}

impl AptSources {
    /// The suites of `series` (see [`debian_suites`]), deduplicated.
    pub fn for_series(series: &[KernelSeries]) -> Self {
        let mut suites: Vec<String> = Vec::new();
        for s in series {
            for suite in debian_suites(*s) {
                if !suites.iter().any(|x| x == suite) {
                    suites.push((*suite).to_string());
                }
            }
        }
        let env = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
        AptSources {
            mirror: env("BERTH_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
            security_mirror: env(
                "BERTH_DEBIAN_SECURITY_MIRROR",
                "http://deb.debian.org/debian-security",
            ),
            suites,
            keyring: PathBuf::from("/usr/share/keyrings/debian-archive-keyring.gpg"),
        }
    }

    /// Adds a suite (e.g. `bookworm` for `busybox-static`) if not present.
    pub fn with_suite(mut self, suite: &str) -> Self {
        if !self.suites.iter().any(|s| s == suite) {
            self.suites.push(suite.to_string());
        }
        self
    }

    /// The `sources.list` text.
    pub fn sources_list(&self) -> String {
        let mut s = String::from("# written by berth-vm-tests; do not edit\n");
        for suite in &self.suites {
            let uri = if suite.ends_with("-security") {
                &self.security_mirror
            } else {
                &self.mirror
            };
            s.push_str(&format!(
                "deb [arch=amd64 signed-by={}] {} {} main\n",
                self.keyring.display(),
                uri,
                suite
            ));
        }
        s
    }
}

/// A private apt configuration under `<cache>/apt`; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct AptRoot {
    dir: PathBuf,
    sources: AptSources,
}

impl AptRoot {
    /// Creates (or refreshes) the apt root in `<cache_dir>/apt`: directories,
    /// `apt.conf`, `sources.list`, an empty dpkg `status`. Touches nothing outside.
    pub fn create(cache_dir: &Path, sources: AptSources) -> Result<Self> {
        let dir = cache_dir.join("apt");
        for sub in [
            "etc/apt.conf.d",
            "etc/preferences.d",
            "etc/sources.list.d",
            "etc/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create", &p, e))?;
        }
        let dir = fs::canonicalize(&dir).map_err(|e| Error::io("canonicalize", &dir, e))?;
        let status = dir.join("state/status");
        if !status.exists() {
            fs::write(&status, "").map_err(|e| Error::io("write", &status, e))?;
        }
        let root = AptRoot { dir, sources };
        write_if_changed(
            &root.dir.join("etc/sources.list"),
            &root.sources.sources_list(),
        )?;
        write_if_changed(&root.config_file(), &root.apt_conf())?;
        Ok(root)
    }

    /// The apt root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The sources it fetches from.
    pub fn sources(&self) -> &AptSources {
        &self.sources
    }

    /// The file passed as `APT_CONFIG`.
    pub fn config_file(&self) -> PathBuf {
        self.dir.join("apt.conf")
    }

    fn apt_conf(&self) -> String {
        let d = self.dir.display();
        // As root, apt would hand downloads to the `_apt` user, which cannot write
        // into a cache dir owned by someone else: keep them as the caller. apt
        // ignores this setting when not root.
        format!(
            r#"// written by berth-vm-tests; do not edit
Dir "/";
Dir::Etc "{d}/etc/";
Dir::Etc::main "apt.conf";
Dir::Etc::parts "apt.conf.d";
Dir::Etc::sourcelist "sources.list";
Dir::Etc::sourceparts "sources.list.d";
Dir::Etc::preferences "preferences";
Dir::Etc::preferencesparts "preferences.d";
Dir::Etc::trusted "trusted.gpg";
Dir::Etc::trustedparts "trusted.gpg.d";
Dir::State "{d}/state/";
Dir::State::lists "lists/";
Dir::State::status "{d}/state/status";
Dir::Cache "{d}/cache/";
Dir::Log "{d}/log/";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
APT::Sandbox::User "root";
APT::Update::Error-Mode "any";
Acquire::Languages "none";
Acquire::GzipIndexes "false";
Acquire::Retries "3";
"#
        )
    }

    /// An apt command (`apt-get`, `apt-cache`) running with this setup's
    /// `APT_CONFIG` and `LC_ALL=C`.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("APT_CONFIG", self.config_file())
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        c
    }

    /// `apt-get update` through the private setup: fetches the suites' `InRelease`
    /// and `Packages` lists (about 20 MB compressed for all four series). Any
    /// failed list is an error.
    pub fn update(&self) -> Result<()> {
        run(self.command("apt-get").args(["-q", "update"]))?;
        let stamp = self.dir.join("last-update");
        fs::write(&stamp, self.sources.sources_list()).map_err(|e| Error::io("write", &stamp, e))
    }

    /// When the lists were last updated with the current sources, if ever.
    pub fn last_update(&self) -> Option<SystemTime> {
        let stamp = self.dir.join("last-update");
        let text = fs::read_to_string(&stamp).ok()?;
        if text != self.sources.sources_list() {
            return None;
        }
        fs::metadata(&stamp).ok()?.modified().ok()
    }

    /// Runs [`update`](Self::update) unless the lists are younger than
    /// `max_age`. Returns whether it updated.
    pub fn update_if_older_than(&self, max_age: Duration) -> Result<bool> {
        let fresh = self
            .last_update()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < max_age);
        if fresh {
            return Ok(false);
        }
        self.update()?;
        Ok(true)
    }

    /// The downloaded `Packages` lists as `(file, codename)`, from
    /// `apt-get indextargets`.
    pub fn package_lists(&self) -> Result<Vec<(PathBuf, String)>> {
        let out = run(self.command("apt-get").args([
            "indextargets",
            "--format",
            "$(FILENAME)\t$(CODENAME)",
            "Created-By: Packages",
        ]))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(f, c)| (PathBuf::from(f), c.to_string()))
            .filter(|(f, _)| f.exists())
            .collect())
    }

    /// Parses every downloaded list, keeping the packages whose name passes `keep`.
    pub fn index(&self, keep: &dyn Fn(&str) -> bool) -> Result<PackageIndex> {
        let mut entries = Vec::new();
        for (file, codename) in self.package_lists()? {
            let text = fs::read_to_string(&file).map_err(|e| Error::io("read", &file, e))?;
            entries.extend(parse_packages(&text, &codename, keep));
        }
        Ok(PackageIndex { entries })
    }

    /// `apt-get download name=version` of each package into `dest`, skipping
    /// files already there with the right size. Returns the `.deb` paths in order.
    pub fn download(&self, packages: &[PackageEntry], dest: &Path) -> Result<Vec<PathBuf>> {
        fs::create_dir_all(dest).map_err(|e| Error::io("create", dest, e))?;
        let paths: Vec<PathBuf> = packages
            .iter()
            .map(|p| dest.join(p.deb_file_name()))
            .collect();
        let missing: Vec<String> = packages
            .iter()
            .zip(&paths)
            .filter(|(p, path)| fs::metadata(path).map(|m| m.len()).ok() != Some(p.size))
            .map(|(p, _)| format!("{}={}", p.package, p.version))
            .collect();
        if !missing.is_empty() {
            run(self
                .command("apt-get")
                .args(["-q", "download"])
                .args(&missing)
                .current_dir(dest))?;
        }
        for (p, path) in packages.iter().zip(&paths) {
            let len = fs::metadata(path)
                .map_err(|e| Error::io("stat downloaded", path, e))?
                .len();
            if len != p.size {
                return Err(Error::format(
                    format!("downloaded {}", path.display()),
                    format!("{len} bytes, the list says {}", p.size),
                ));
            }
        }
        Ok(paths)
    }
}

fn write_if_changed(path: &Path, text: &str) -> Result<()> {
    if fs::read_to_string(path).ok().as_deref() == Some(text) {
        return Ok(());
    }
    fs::write(path, text).map_err(|e| Error::io("write", path, e))
}

// ---------------------------------------------------------------------------
// Unpacked kernels
// ---------------------------------------------------------------------------

const MANIFEST: &str = ".berth-kernel";

/// A kernel unpacked in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kernel {
    /// Its series.
    pub series: KernelSeries,
    /// The `linux-image-*` package it came from.
    pub package: String,
    /// That package's Debian version.
    pub version: String,
    /// The kernel release (`uname -r`), e.g. `6.1.0-57-amd64`.
    pub release: String,
    /// Where the `.deb`s were unpacked.
    pub root: PathBuf,
    /// The compressed bzImage.
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` (or `usr/lib/modules/<release>`) under `root`.
    pub modules_dir: PathBuf,
    /// The kernel's build `config`, if shipped.
    pub config: Option<PathBuf>,
}

impl Kernel {
    /// Finds the release, `vmlinuz`, modules dir and config in an unpacked tree.
    pub fn locate(root: &Path, series: KernelSeries, package: &str, version: &str) -> Result<Self> {
        let mut dirs = Vec::new();
        for base in ["lib/modules", "usr/lib/modules"] {
            let Ok(rd) = fs::read_dir(root.join(base)) else {
                continue;
            };
            for e in rd.flatten() {
                if e.path().is_dir() {
                    dirs.push(e.path());
                }
            }
        }
        let modules_dir = match dirs.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(Error::NotFound(format!(
                    "a modules dir under {}",
                    root.display()
                )))
            }
            many => {
                return Err(Error::format(
                    format!("unpacked kernel {}", root.display()),
                    format!("several module dirs: {many:?}"),
                ))
            }
        };
        let release = modules_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let first = |candidates: [PathBuf; 2]| candidates.into_iter().find(|p| p.is_file());
        let vmlinuz = first([
            root.join(format!("boot/vmlinuz-{release}")),
            modules_dir.join("vmlinuz"),
        ])
        .ok_or_else(|| Error::NotFound(format!("vmlinuz of {release} under {}", root.display())))?;
        let config = first([
            root.join(format!("boot/config-{release}")),
            modules_dir.join("config"),
        ]);
        Ok(Kernel {
            series,
            package: package.to_string(),
            version: version.to_string(),
            release,
            root: root.to_path_buf(),
            vmlinuz,
            modules_dir,
            config,
        })
    }

    /// The uncompressed ELF kernel at `<root>/vmlinux`, extracted from the
    /// `vmlinuz` on first use (see [`crate::vmlinux`]); boots about twice as fast
    /// as the bzImage under TCG.
    pub fn ensure_vmlinux(&self) -> Result<PathBuf> {
        let out = self.root.join("vmlinux");
        crate::vmlinux::extract_file(&self.vmlinuz, &out)?;
        Ok(out)
    }

    /// The text of the kernel's `config`.
    pub fn read_config(&self) -> Result<String> {
        let path = self
            .config
            .as_ref()
            .ok_or_else(|| Error::NotFound(format!("config of kernel {}", self.release)))?;
        fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
    }
}

/// `<cache>/kernels/<series>`.
pub fn series_dir(cache_dir: &Path, series: KernelSeries) -> PathBuf {
    cache_dir.join("kernels").join(series.as_str())
}

/// Downloads (unless cached) and unpacks `pkg` into
/// `<cache>/kernels/<series>/<package>_<version>/`. The `.deb`s stay in
/// `<cache>/debs/`. Unpacking goes to a `.partial` dir renamed at the end, so an
/// interrupted run never leaves a half kernel that looks complete.
pub fn fetch(apt: &AptRoot, pkg: &KernelPackage, cache_dir: &Path) -> Result<Kernel> {
    let dest = series_dir(cache_dir, pkg.series).join(pkg.dir_name());
    if dest.join(MANIFEST).is_file() {
        return Kernel::locate(&dest, pkg.series, &pkg.image.package, &pkg.image.version);
    }
    let debs = apt.download(&pkg.debs, &cache_dir.join("debs"))?;
    unpack(&debs, &dest)?;
    let kernel = Kernel::locate(&dest, pkg.series, &pkg.image.package, &pkg.image.version)?;
    let manifest = format!(
        "series={}\npackage={}\nversion={}\nrelease={}\n",
        kernel.series, kernel.package, kernel.version, kernel.release
    );
    let path = dest.join(MANIFEST);
    fs::write(&path, manifest).map_err(|e| Error::io("write", &path, e))?;
    Ok(kernel)
}

/// `dpkg-deb -x` each of `debs` into `dest` (via `dest.partial`).
pub fn unpack(debs: &[PathBuf], dest: &Path) -> Result<()> {
    let mut partial = dest.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        fs::remove_dir_all(&partial).map_err(|e| Error::io("remove", &partial, e))?;
    }
    fs::create_dir_all(&partial).map_err(|e| Error::io("create", &partial, e))?;
    for deb in debs {
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&partial))?;
    }
    if dest.exists() {
        fs::remove_dir_all(dest).map_err(|e| Error::io("remove", dest, e))?;
    }
    fs::rename(&partial, dest).map_err(|e| Error::io("rename into", dest, e))
}

/// The newest kernel of `series` already unpacked in the cache, without any
/// network access.
pub fn cached(cache_dir: &Path, series: KernelSeries) -> Result<Option<Kernel>> {
    let dir = series_dir(cache_dir, series);
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut best: Option<(String, String, PathBuf)> = None;
    for e in rd.flatten() {
        let Ok(text) = fs::read_to_string(e.path().join(MANIFEST)) else {
            continue;
        };
        let fields: BTreeMap<&str, &str> = text.lines().filter_map(|l| l.split_once('=')).collect();
        let (Some(p), Some(v)) = (fields.get("package"), fields.get("version")) else {
            continue;
        };
        let newer = best
            .as_ref()
            .is_none_or(|(_, bv, _)| compare_versions(v, bv) == Ordering::Greater);
        if newer {
            best = Some((p.to_string(), v.to_string(), e.path()));
        }
    }
    best.map(|(p, v, root)| Kernel::locate(&root, series, &p, &v))
        .transpose()
}

/// The high-level entry point: makes sure the newest kernel of each of `series`
/// is unpacked in `cache_dir`, updating the package lists if they are older than
/// `max_list_age`. Kernels already unpacked are not downloaded again.
pub fn ensure(
    cache_dir: &Path,
    series: &[KernelSeries],
    max_list_age: Duration,
) -> Result<Vec<Kernel>> {
    let apt = AptRoot::create(cache_dir, AptSources::for_series(series))?;
    apt.update_if_older_than(max_list_age)?;
    let index = apt.index(&|name| name.starts_with("linux-"))?;
    series
        .iter()
        .map(|&s| fetch(&apt, &index.newest_kernel(s)?, cache_dir))
        .collect()
}

/// Downloads and unpacks the newest `package` among `codenames` (all lists if
/// empty) into `<cache>/packages/<package>_<version>/` and returns that dir;
/// cached like [`fetch`]. For guest tools such as `busybox-static` (bookworm).
pub fn fetch_package(
    apt: &AptRoot,
    index: &PackageIndex,
    package: &str,
    codenames: &[&str],
    cache_dir: &Path,
) -> Result<PathBuf> {
    let entry = index.newest(package, codenames).ok_or_else(|| {
        Error::NotFound(format!(
            "package {package} in {codenames:?} (has `apt-get update` run?)"
        ))
    })?;
    let dest = cache_dir.join("packages").join(format!(
        "{}_{}",
        entry.package,
        entry.version.replace(':', "%3a")
    ));
    let done = dest.join(MANIFEST);
    if done.is_file() {
        return Ok(dest);
    }
    let debs = apt.download(std::slice::from_ref(entry), &cache_dir.join("debs"))?;
    unpack(&debs, &dest)?;
    let manifest = format!("package={}\nversion={}\n", entry.package, entry.version);
    fs::write(&done, manifest).map_err(|e| Error::io("write", &done, e))?;
    Ok(dest)
}

/// The cgroup v1 controllers a kernel `config` leaves out.
///
/// A controller is missing when its option is not `=y`; `memory` and `cpuset`
/// are also missing when the option that splits off their v1 interface
/// (`CONFIG_MEMCG_V1`, `CONFIG_CPUSETS_V1`, since 6.11/6.12) is present and off.
pub fn v1_controllers_disabled(config: &str) -> Vec<&'static str> {
    let value = |opt: &str| -> Option<bool> {
        config.lines().find_map(|l| {
            let l = l.trim();
            if let Some(rest) = l.strip_prefix(opt) {
                if let Some(v) = rest.strip_prefix('=') {
                    return Some(v == "y");
                }
            }
            if l == format!("# {opt} is not set") {
                return Some(false);
            }
            None
        })
    };
    let on = |opt: &str| value(opt) == Some(true);
    let split_off = |opt: &str| value(opt) == Some(false);
    let table: [(&str, bool); 13] = [
        ("cpu", on("CONFIG_CGROUP_SCHED")),
        ("cpuacct", on("CONFIG_CGROUP_CPUACCT")),
        (
            "cpuset",
            on("CONFIG_CPUSETS") && !split_off("CONFIG_CPUSETS_V1"),
        ),
        (
            "memory",
            on("CONFIG_MEMCG") && !split_off("CONFIG_MEMCG_V1"),
        ),
        ("devices", on("CONFIG_CGROUP_DEVICE")),
        ("freezer", on("CONFIG_CGROUP_FREEZER")),
        ("pids", on("CONFIG_CGROUP_PIDS")),
        ("blkio", on("CONFIG_BLK_CGROUP")),
        ("hugetlb", on("CONFIG_CGROUP_HUGETLB")),
        ("net_cls", on("CONFIG_CGROUP_NET_CLASSID")),
        ("net_prio", on("CONFIG_CGROUP_NET_PRIO")),
        ("perf_event", on("CONFIG_CGROUP_PERF")),
        ("rdma", on("CONFIG_CGROUP_RDMA")),
    ];
    table
        .into_iter()
        .filter(|(_, enabled)| !enabled)
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_follows_dpkg() {
        use Ordering::*;
        let cases = [
            ("6.1.192-3", "6.1.192-2", Greater),
            ("6.1.9-1", "6.1.10-1", Less),
            ("6.12.117-1", "6.12.117-1~deb12u1", Greater),
            ("7.3.4-1~bpo13+1", "7.3.4-1", Less),
            ("7.3.4-1~bpo13+1", "7.2.12-1~bpo13+1", Greater),
            ("1:1.0", "2.0", Greater),
            ("1.0", "1.0-0", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0a", "1.0+", Less),
            ("1.0", "1.0.0", Less),
            ("00010", "10", Equal),
            ("6.12.90-2~bpo12+1", "6.12.90-1~bpo12+1", Greater),
            ("5.10.262-1", "5.10.259-1", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            assert_eq!(compare_versions(b, a), want.reverse(), "{b} vs {a}");
        }
    }

    /// Cross-checks [`compare_versions`] against `dpkg --compare-versions` when dpkg exists.
    #[test]
    fn version_order_matches_dpkg_binary() {
        if Command::new("dpkg").arg("--version").output().is_err() {
            println!("skipped: no dpkg on this machine");
            return;
        }
        let vs = [
            "1.0",
            "1.0-1",
            "1.0~1",
            "1.0+1",
            "1:0.1",
            "1.0a",
            "1.0.1",
            "6.1.0-57",
            "6.1.0~rc1",
            "2.0-1~bpo1",
            "2.0-1",
            "a1",
            "1.0-1.1",
            "1.0-1+b1",
            "1.0--1",
            "1.0-1-1",
        ];
        for a in vs {
            for b in vs {
                let dpkg_lt = Command::new("dpkg")
                    .args(["--compare-versions", a, "lt", b])
                    .status()
                    .unwrap()
                    .success();
                let dpkg_eq = Command::new("dpkg")
                    .args(["--compare-versions", a, "eq", b])
                    .status()
                    .unwrap()
                    .success();
                let want = if dpkg_lt {
                    Ordering::Less
                } else if dpkg_eq {
                    Ordering::Equal
                } else {
                    Ordering::Greater
                };
                assert_eq!(compare_versions(a, b), want, "{a} vs {b}");
            }
        }
    }

    fn entry(pkg: &str, ver: &str, codename: &str, depends: &str) -> String {
        format!(
            "Package: {pkg}\nSource: linux\nVersion: {ver}\nArchitecture: amd64\n\
             Depends: {depends}\nFilename: pool/main/l/linux/{pkg}_{ver}_amd64.deb\n\
             Size: 1234\nSHA256: abcd\nDescription: {codename} kernel\n more text\n\n"
        )
    }

    fn index() -> PackageIndex {
        let mut e = Vec::new();
        let keep = |n: &str| n.starts_with("linux-");
        let bookworm = [
            entry(
                "linux-image-6.1.0-47-amd64",
                "6.1.170-3",
                "bookworm",
                "kmod",
            ),
            entry(
                "linux-image-6.1.0-50-amd64",
                "6.1.176-1",
                "bookworm",
                "kmod",
            ),
            entry(
                "linux-image-6.1.0-50-cloud-amd64",
                "6.1.176-1",
                "bookworm",
                "",
            ),
            entry(
                "linux-image-6.1.0-50-amd64-unsigned",
                "6.1.176-1",
                "bookworm",
                "",
            ),
            entry("busybox-static", "1:1.35.0-4+b3", "bookworm", "libc6"),
        ]
        .concat();
        e.extend(parse_packages(&bookworm, "bookworm", &keep));
        let security = [
            entry(
                "linux-image-6.1.0-9-amd64",
                "6.1.27-1",
                "bookworm-security",
                "",
            ),
            entry(
                "linux-image-6.1.0-57-amd64",
                "6.1.192-3",
                "bookworm-security",
                "",
            ),
            entry(
                "linux-image-6.1.0-57-rt-amd64",
                "6.1.192-3",
                "bookworm-security",
                "",
            ),
            entry(
                "linux-image-6.12.117+deb12-amd64",
                "6.12.117-1~deb12u1",
                "bookworm-security",
                "",
            ),
        ]
        .concat();
        e.extend(parse_packages(&security, "bookworm-security", &keep));
        let bullseye = [
            entry("linux-image-5.10.0-46-amd64", "5.10.262-1", "", ""),
            entry("linux-image-5.10.0-45-amd64", "5.10.259-1", "", ""),
            entry(
                "linux-image-6.1.0-0.deb11.52-amd64",
                "6.1.180-1~deb11u1",
                "",
                "",
            ),
            entry("linux-image-5.10.0-46-amd64-dbg", "5.10.262-1", "", ""),
        ]
        .concat();
        e.extend(parse_packages(&bullseye, "bullseye-security", &keep));
        let trixie = [
            entry("linux-image-6.12.107+deb13-amd64", "6.12.107-1", "", ""),
            entry("linux-image-6.12.117+deb13-amd64", "6.12.117-1", "", ""),
        ]
        .concat();
        e.extend(parse_packages(&trixie, "trixie", &keep));
        let pinned = |v: &str| {
            format!(
                "dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, \
                 linux-base-{v}+deb13-amd64 (= {v}-1~bpo13+1), linux-binary-{v}+deb13-amd64 (= {v}-1~bpo13+1), \
                 linux-modules-{v}+deb13-amd64 (= {v}-1~bpo13+1)"
            )
        };
        let mut bpo = String::new();
        for v in ["7.3.4", "7.3.10", "7.2.12"] {
            let ver = format!("{v}-1~bpo13+1");
            bpo += &entry(
                &format!("linux-image-{v}+deb13-amd64"),
                &ver,
                "",
                &pinned(v),
            );
            for part in ["base", "binary", "modules"] {
                bpo += &entry(&format!("linux-{part}-{v}+deb13-amd64"), &ver, "", "kmod");
            }
        }
        bpo += &entry(
            "linux-image-7.3.10+deb13-amd64-dbg",
            "7.3.10-1~bpo13+1",
            "",
            "",
        );
        e.extend(parse_packages(&bpo, "trixie-backports", &keep));
        PackageIndex::from_entries(e)
    }

    #[test]
    fn parse_keeps_only_filtered_packages() {
        let idx = index();
        assert!(idx
            .entries()
            .iter()
            .all(|e| e.package.starts_with("linux-")));
        let e = idx.get("linux-image-6.1.0-57-amd64", "6.1.192-3").unwrap();
        assert_eq!(e.codename, "bookworm-security");
        assert_eq!(e.size, 1234);
        assert_eq!(
            e.deb_file_name(),
            "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb"
        );
    }

    #[test]
    fn newest_of_each_series() {
        let idx = index();
        let newest = |s| idx.newest_kernel(s).unwrap().image.package;
        assert_eq!(newest(KernelSeries::V5_10), "linux-image-5.10.0-46-amd64");
        assert_eq!(newest(KernelSeries::V6_1), "linux-image-6.1.0-57-amd64");
        // 6.12.117-1 (trixie) sorts after 6.12.117-1~deb12u1 (bookworm-security).
        assert_eq!(
            newest(KernelSeries::V6_12),
            "linux-image-6.12.117+deb13-amd64"
        );
        // 7.3.10 > 7.3.4 numerically, not lexically.
        let k = idx.newest_kernel(KernelSeries::V7_3).unwrap();
        assert_eq!(k.image.package, "linux-image-7.3.10+deb13-amd64");
        let parts: Vec<&str> = k.debs.iter().map(|d| d.package.as_str()).collect();
        assert_eq!(
            parts,
            [
                "linux-image-7.3.10+deb13-amd64",
                "linux-base-7.3.10+deb13-amd64",
                "linux-binary-7.3.10+deb13-amd64",
                "linux-modules-7.3.10+deb13-amd64"
            ]
        );
        assert_eq!(k.download_size(), 4 * 1234);
    }

    #[test]
    fn flavours_and_foreign_builds_are_excluded() {
        let ok = |s, p, v| image_matches(s, p, v);
        use KernelSeries::*;
        assert!(ok(V6_1, "linux-image-6.1.0-57-amd64", "6.1.192-3"));
        assert!(!ok(V6_1, "linux-image-6.1.0-57-cloud-amd64", "6.1.192-3"));
        assert!(!ok(V6_1, "linux-image-6.1.0-57-rt-amd64", "6.1.192-3"));
        assert!(!ok(
            V6_1,
            "linux-image-6.1.0-57-amd64-unsigned",
            "6.1.192-3"
        ));
        assert!(!ok(V6_1, "linux-image-6.1.0-57-amd64-dbg", "6.1.192-3"));
        assert!(!ok(
            V6_1,
            "linux-image-6.1.0-0.deb11.52-amd64",
            "6.1.180-1~deb11u1"
        ));
        assert!(!ok(V6_1, "linux-image-6.12.117+deb13-amd64", "6.12.117-1"));
        assert!(!ok(V6_1, "linux-image-amd64", "6.1.192-3"));
        assert!(!ok(V6_1, "linux-image-6.1-amd64", "6.1.180-1~deb11u1"));
        assert!(ok(
            V6_12,
            "linux-image-6.12.90+deb12.1-amd64",
            "6.12.90-2~bpo12+1"
        ));
        assert!(!ok(V6_12, "linux-image-6.12-amd64", "6.12.117-1~deb12u1"));
        assert!(!ok(
            V6_12,
            "linux-image-6.12.117+deb13-cloud-amd64",
            "6.12.117-1"
        ));
        assert!(ok(V7_3, "linux-image-7.3.4+deb13-amd64", "7.3.4-1~bpo13+1"));
        assert!(!ok(V7_3, "linux-image-7.3.4+deb13-amd64", "7.2.4-1"));
        assert!(!ok(V5_10, "linux-image-5.10.0-46-amd64", "6.1.1-1"));
    }

    #[test]
    fn missing_series_is_a_clear_error() {
        let idx = PackageIndex::default();
        let err = idx
            .newest_kernel(KernelSeries::V6_1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("6.1") && err.contains("bookworm"), "{err}");
    }

    #[test]
    fn missing_split_part_is_an_error() {
        let keep = |_: &str| true;
        let text = entry(
            "linux-image-7.3.4+deb13-amd64",
            "7.3.4-1~bpo13+1",
            "",
            "linux-binary-7.3.4+deb13-amd64 (= 7.3.4-1~bpo13+1)",
        );
        let idx = PackageIndex::from_entries(parse_packages(&text, "trixie-backports", &keep));
        let err = idx
            .newest_kernel(KernelSeries::V7_3)
            .unwrap_err()
            .to_string();
        assert!(err.contains("linux-binary-7.3.4+deb13-amd64"), "{err}");
    }

    #[test]
    fn sources_list_routes_security_suites() {
        let s = AptSources::for_series(&[KernelSeries::V5_10, KernelSeries::V6_1]);
        assert_eq!(
            s.suites,
            ["bullseye-security", "bookworm-security", "bookworm"]
        );
        let text = s.sources_list();
        assert!(
            text.contains("/debian-security bullseye-security main"),
            "{text}"
        );
        assert!(text.contains("/debian bookworm main"), "{text}");
        assert!(text.contains("signed-by=/usr/share/keyrings/debian-archive-keyring.gpg"));
        let s = s.with_suite("bookworm").with_suite("trixie");
        assert_eq!(s.suites.len(), 4);
    }

    #[test]
    fn apt_root_is_self_contained() {
        let tmp = tempfile::tempdir().unwrap();
        let root =
            AptRoot::create(tmp.path(), AptSources::for_series(&[KernelSeries::V6_1])).unwrap();
        let conf = fs::read_to_string(root.config_file()).unwrap();
        let dir = root.dir().display().to_string();
        for key in [
            "Dir::Etc \"",
            "Dir::State \"",
            "Dir::Cache \"",
            "Dir::State::status \"",
        ] {
            let line = conf.lines().find(|l| l.starts_with(key)).unwrap();
            assert!(line.contains(&dir), "{line}");
        }
        assert!(root.dir().join("state/status").is_file());
        assert!(root.last_update().is_none());
        // apt itself agrees that nothing points to the host's /etc/apt.
        if let Ok(out) = root.command("apt-config").arg("dump").output() {
            let dump = String::from_utf8_lossy(&out.stdout);
            for line in dump.lines().filter(|l| l.starts_with("Dir::")) {
                assert!(!line.contains("/etc/apt"), "{line}");
                assert!(!line.contains("/var/lib/apt"), "{line}");
            }
            let list = root
                .command("apt-get")
                .args(["indextargets"])
                .output()
                .unwrap();
            assert!(list.status.success());
        }
    }

    #[test]
    fn locate_both_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let old = tmp.path().join("old");
        fs::create_dir_all(old.join("lib/modules/6.1.0-57-amd64/kernel")).unwrap();
        fs::create_dir_all(old.join("boot")).unwrap();
        fs::write(old.join("boot/vmlinuz-6.1.0-57-amd64"), "k").unwrap();
        fs::write(old.join("boot/config-6.1.0-57-amd64"), "CONFIG_MEMCG=y\n").unwrap();
        let k = Kernel::locate(&old, KernelSeries::V6_1, "p", "v").unwrap();
        assert_eq!(k.release, "6.1.0-57-amd64");
        assert!(k.vmlinuz.ends_with("boot/vmlinuz-6.1.0-57-amd64"));
        assert_eq!(k.read_config().unwrap(), "CONFIG_MEMCG=y\n");

        let new = tmp.path().join("new");
        let m = new.join("usr/lib/modules/7.3.4+deb13-amd64");
        fs::create_dir_all(m.join("kernel")).unwrap();
        fs::write(m.join("vmlinuz"), "k").unwrap();
        fs::write(m.join("config"), "").unwrap();
        let k = Kernel::locate(&new, KernelSeries::V7_3, "p", "v").unwrap();
        assert_eq!(k.release, "7.3.4+deb13-amd64");
        assert_eq!(k.vmlinuz, m.join("vmlinuz"));
        assert_eq!(k.modules_dir, m);

        assert!(Kernel::locate(tmp.path(), KernelSeries::V6_1, "p", "v").is_err());
    }

    #[test]
    fn cached_picks_newest_complete_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(cached(tmp.path(), KernelSeries::V6_1).unwrap().is_none());
        for (abi, ver, complete) in [
            ("6.1.0-9", "6.1.27-1", true),
            ("6.1.0-10", "6.1.38-1", true),
            ("6.1.0-11", "6.1.40-1", false),
        ] {
            let root = series_dir(tmp.path(), KernelSeries::V6_1).join(format!("x_{ver}"));
            fs::create_dir_all(root.join(format!("lib/modules/{abi}-amd64"))).unwrap();
            fs::create_dir_all(root.join("boot")).unwrap();
            fs::write(root.join(format!("boot/vmlinuz-{abi}-amd64")), "").unwrap();
            if complete {
                let m = format!("package=linux-image-{abi}-amd64\nversion={ver}\n");
                fs::write(root.join(MANIFEST), m).unwrap();
            }
        }
        let k = cached(tmp.path(), KernelSeries::V6_1).unwrap().unwrap();
        assert_eq!(k.version, "6.1.38-1");
        assert_eq!(k.release, "6.1.0-10-amd64");
    }

    #[test]
    fn v1_controllers_from_config() {
        let old = "CONFIG_CGROUP_SCHED=y\nCONFIG_CGROUP_CPUACCT=y\nCONFIG_CPUSETS=y\nCONFIG_MEMCG=y\n\
                   CONFIG_CGROUP_DEVICE=y\nCONFIG_CGROUP_FREEZER=y\nCONFIG_CGROUP_PIDS=y\n\
                   CONFIG_BLK_CGROUP=y\nCONFIG_CGROUP_HUGETLB=y\nCONFIG_CGROUP_NET_CLASSID=y\n\
                   CONFIG_CGROUP_NET_PRIO=y\nCONFIG_CGROUP_PERF=y\n# CONFIG_CGROUP_RDMA is not set\n";
        assert_eq!(v1_controllers_disabled(old), ["rdma"]);
        let new = format!(
            "{old}# CONFIG_MEMCG_V1 is not set\n# CONFIG_CPUSETS_V1 is not set\nCONFIG_CGROUP_RDMA=y\n"
        );
        let mut missing = v1_controllers_disabled(&new);
        missing.sort();
        assert_eq!(missing, ["cpuset", "memory", "rdma"]);
        let new = new.replace("# CONFIG_CGROUP_RDMA is not set\n", "");
        assert_eq!(v1_controllers_disabled(&new), ["cpuset", "memory"]);
    }

    /// The cached kernels' configs agree with [`KernelSeries::missing_v1_controllers`].
    #[test]
    fn cached_configs_agree_with_the_series_table() {
        let cache = crate::default_cache_dir();
        let mut seen = 0;
        for s in KernelSeries::ALL {
            let Ok(Some(k)) = cached(&cache, s) else {
                println!("skipped {s}: not in the cache {}", cache.display());
                continue;
            };
            let Ok(config) = k.read_config() else {
                continue;
            };
            let mut missing = v1_controllers_disabled(&config);
            missing.retain(|c| *c == "memory" || *c == "cpuset");
            let mut want = s.missing_v1_controllers().to_vec();
            want.sort();
            missing.sort();
            assert_eq!(missing, want, "{s} ({})", k.release);
            seen += 1;
        }
        println!("checked {seen} cached kernel configs");
    }

    /// Downloads and unpacks the newest 6.1 kernel into the cache (~70 MB).
    /// Run with `cargo test -p berth-vm-tests --lib -- --ignored fetch_newest_6_1 --nocapture`.
    #[test]
    #[ignore = "downloads ~70 MB from deb.debian.org"]
    fn fetch_newest_6_1() {
        let cache = crate::default_cache_dir();
        let t = std::time::Instant::now();
        let k = ensure(&cache, &[KernelSeries::V6_1], Duration::from_secs(3600))
            .unwrap()
            .remove(0);
        println!("{k:#?} in {:?}", t.elapsed());
        assert!(k.vmlinuz.is_file());
        assert!(k.modules_dir.join("modules.builtin").is_file());
    }
}
