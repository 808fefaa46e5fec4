//! `cargo xtask public-api [CRATE]`: the public surface of a published
//! crate (`berth`, `berth-net`, `berth-image`) as one sorted line per item,
//! read from rustdoc's JSON output. The snapshots under
//! `xtask/src/snapshots/` make every change to the surface visible in
//! review: `cargo test -p xtask public_api` fails until the new surface is
//! accepted (`INSTA_UPDATE=always`, or `cargo insta review`).
//!
//! rustdoc's JSON output is unstable: the build sets `RUSTC_BOOTSTRAP=1` to
//! get it from the stable toolchain, into a target directory of its own
//! (`target/public-api`), so the workspace's build is not disturbed.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The crates whose surface is published.
#[cfg(test)]
const CRATES: [&str; 3] = ["berth", "berth-net", "berth-image"];

/// The public surface of `krate`, one item a line, sorted.
pub fn surface(workspace: &Path, krate: &str) -> Result<String> {
    let target = workspace.join("target/public-api");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(workspace)
        .env("RUSTC_BOOTSTRAP", "1")
        .args(["rustdoc", "--quiet", "--lib", "-p", krate, "--target-dir"])
        .arg(&target)
        .args(["--", "-Z", "unstable-options", "--output-format", "json"])
        .status()
        .context("run cargo rustdoc")?;
    if !status.success() {
        bail!("cargo rustdoc -p {krate} failed ({status})");
    }
    let file = target
        .join("doc")
        .join(format!("{}.json", krate.replace('-', "_")));
    let text = std::fs::read(&file).with_context(|| format!("read {}", file.display()))?;
    let doc: Value = serde_json::from_slice(&text)?;
    let mut lines = BTreeSet::new();
    let root = id_of(&doc["root"]);
    Walker {
        doc: &doc,
        lines: &mut lines,
    }
    .item(&root, &krate.replace('-', "_"), None);
    let mut lines: Vec<String> = lines.into_iter().collect();
    lines.sort_by_key(|l| sort_key(l));
    Ok(lines.join("\n") + "\n")
}

/// Lines in the order of the paths they name: an item, then its fields,
/// variants, methods and trait impls.
fn sort_key(line: &str) -> (String, String) {
    let mut rest = line.trim_start_matches("#[non_exhaustive] ");
    if let Some((_, owner)) = rest
        .strip_prefix("impl ")
        .and_then(|r| r.rsplit_once(" for "))
    {
        return (format!("{owner}~"), line.to_string());
    }
    for word in [
        "pub ", "const ", "async ", "unsafe ", "fn ", "struct ", "enum ", "mod ", "trait ",
        "type ", "static ", "use ", "macro ",
    ] {
        rest = rest.strip_prefix(word).unwrap_or(rest);
    }
    let path: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '.')
        .collect();
    (path, line.to_string())
}

/// An id as the index's key.
fn id_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Walker<'a> {
    doc: &'a Value,
    lines: &'a mut BTreeSet<String>,
}

impl Walker<'_> {
    fn get(&self, id: &str) -> Option<&Value> {
        self.doc["index"].get(id)
    }

    /// Records item `id` (under the name `rename`, for a re-export) at
    /// `prefix`, and what it contains.
    fn item(&mut self, id: &str, prefix: &str, rename: Option<&str>) {
        let Some(item) = self.get(id).cloned() else {
            return;
        };
        let Some((kind, inner)) = item["inner"].as_object().and_then(|o| o.iter().next()) else {
            return;
        };
        let name = rename.or(item["name"].as_str()).unwrap_or("");
        let path = if kind == "module" && prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}::{name}")
        };
        let marks = marks(&item);
        match kind.as_str() {
            "module" => {
                let path = if item["id"] == self.doc["root"] {
                    prefix.to_string()
                } else {
                    self.lines.insert(format!("pub mod {path}"));
                    path
                };
                for child in inner["items"].as_array().into_iter().flatten() {
                    let child = id_of(child);
                    if self.is_public(&child) {
                        self.item(&child, &path, None);
                    }
                }
            }
            "use" => {
                if inner["is_glob"].as_bool() == Some(true) {
                    return;
                }
                let target = id_of(&inner["id"]);
                if self.get(&target).is_some() {
                    let as_name = inner["name"].as_str().unwrap_or(name).to_string();
                    self.item(&target, prefix, Some(&as_name));
                } else {
                    let source = inner["source"].as_str().unwrap_or("?");
                    let as_name = inner["name"].as_str().unwrap_or("?");
                    self.lines
                        .insert(format!("pub use {prefix}::{as_name} = {source}"));
                }
            }
            "struct" => {
                self.lines.insert(format!("{marks}pub struct {path}"));
                let fields = inner["kind"]["plain"]["fields"]
                    .as_array()
                    .or(inner["kind"]["tuple"].as_array());
                for f in fields.into_iter().flatten() {
                    self.field(f, &path);
                }
                self.impls(&inner["impls"], &path);
            }
            "enum" => {
                self.lines.insert(format!("{marks}pub enum {path}"));
                for v in inner["variants"].as_array().into_iter().flatten() {
                    let Some(var) = self.get(&id_of(v)).cloned() else {
                        continue;
                    };
                    let vpath = format!("{path}::{}", var["name"].as_str().unwrap_or(""));
                    let vk = &var["inner"]["variant"]["kind"];
                    match vk {
                        Value::Object(o) if o.contains_key("tuple") => {
                            let types: Vec<String> = o["tuple"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|f| self.get(&id_of(f)))
                                .map(|f| ty(&f["inner"]["struct_field"]))
                                .collect();
                            self.lines.insert(format!("{vpath}({})", types.join(", ")));
                        }
                        Value::Object(o) if o.contains_key("struct") => {
                            self.lines.insert(vpath.clone());
                            for f in o["struct"]["fields"].as_array().into_iter().flatten() {
                                self.field(f, &vpath);
                            }
                        }
                        _ => {
                            self.lines.insert(vpath);
                        }
                    }
                }
                self.impls(&inner["impls"], &path);
            }
            "function" => {
                self.lines.insert(format!("pub {}", function(&path, inner)));
            }
            "trait" => {
                self.lines.insert(format!("pub trait {path}"));
                for m in inner["items"].as_array().into_iter().flatten() {
                    if let Some(mi) = self.get(&id_of(m)).cloned() {
                        let mname = format!("{path}::{}", mi["name"].as_str().unwrap_or(""));
                        if let Some(f) = mi["inner"].get("function") {
                            self.lines.insert(function(&mname, f));
                        }
                    }
                }
            }
            "type_alias" => {
                self.lines
                    .insert(format!("pub type {path} = {}", ty(&inner["type"])));
            }
            "constant" => {
                self.lines
                    .insert(format!("pub const {path}: {}", ty(&inner["type"])));
            }
            "static" => {
                self.lines
                    .insert(format!("pub static {path}: {}", ty(&inner["type"])));
            }
            "macro" => {
                self.lines.insert(format!("macro {path}!"));
            }
            other => {
                self.lines.insert(format!("{other} {path}"));
            }
        }
    }

    fn is_public(&self, id: &str) -> bool {
        self.get(id)
            .is_some_and(|i| i["visibility"].as_str() == Some("public"))
    }

    fn field(&mut self, id: &Value, owner: &str) {
        let Some(f) = self.get(&id_of(id)).cloned() else {
            return;
        };
        if f["visibility"].as_str() != Some("public") && f["visibility"] != "default" {
            return;
        }
        self.lines.insert(format!(
            "{owner}.{}: {}",
            f["name"].as_str().unwrap_or("?"),
            ty(&f["inner"]["struct_field"])
        ));
    }

    /// Inherent methods, and the traits implemented (not auto or blanket
    /// impls, which follow from the fields).
    fn impls(&mut self, impls: &Value, owner: &str) {
        for i in impls.as_array().into_iter().flatten() {
            let Some(imp) = self.get(&id_of(i)).cloned() else {
                continue;
            };
            let inner = &imp["inner"]["impl"];
            if inner["is_synthetic"] == true || !inner["blanket_impl"].is_null() {
                continue;
            }
            match inner["trait"].as_object() {
                Some(t) => {
                    let name = t["path"].as_str().unwrap_or("?");
                    self.lines.insert(format!("impl {name} for {owner}"));
                }
                None => {
                    for m in inner["items"].as_array().into_iter().flatten() {
                        let m = id_of(m);
                        if !self.is_public(&m) {
                            continue;
                        }
                        if let Some(mi) = self.get(&m).cloned() {
                            let mname = format!("{owner}::{}", mi["name"].as_str().unwrap_or(""));
                            if let Some(f) = mi["inner"].get("function") {
                                self.lines.insert(format!("pub {}", function(&mname, f)));
                            } else if let Some(c) = mi["inner"].get("assoc_const") {
                                self.lines
                                    .insert(format!("pub const {mname}: {}", ty(&c["type"])));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `#[non_exhaustive] ` and the like, for the attributes that change what
/// users may do.
fn marks(item: &Value) -> String {
    let attrs = item["attrs"].to_string();
    if attrs.contains("non_exhaustive") {
        "#[non_exhaustive] ".into()
    } else {
        String::new()
    }
}

fn function(path: &str, f: &Value) -> String {
    let header = &f["header"];
    let mut s = String::new();
    if header["is_const"] == true {
        s.push_str("const ");
    }
    if header["is_async"] == true {
        s.push_str("async ");
    }
    if header["is_unsafe"] == true {
        s.push_str("unsafe ");
    }
    let generics = generics(&f["generics"]);
    let inputs: Vec<String> = f["sig"]["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let name = p[0].as_str().unwrap_or("_");
            let t = ty(&p[1]);
            if name == "self" {
                match t.as_str() {
                    "Self" => "self".into(),
                    "&Self" => "&self".into(),
                    "&mut Self" => "&mut self".into(),
                    _ => format!("self: {t}"),
                }
            } else {
                format!("{name}: {t}")
            }
        })
        .collect();
    let output = match &f["sig"]["output"] {
        Value::Null => String::new(),
        t => format!(" -> {}", ty(t)),
    };
    format!("{s}fn {path}{generics}({}){output}", inputs.join(", "))
}

fn generics(g: &Value) -> String {
    let params: Vec<String> = g["params"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            // `impl Trait` arguments show in the signature itself.
            p["kind"]["type"]["is_synthetic"] != true
        })
        .map(|p| {
            let name = p["name"].as_str().unwrap_or("?").to_string();
            match p["kind"].get("type") {
                Some(t) => {
                    let bounds = bounds(&t["bounds"]);
                    if bounds.is_empty() {
                        name
                    } else {
                        format!("{name}: {bounds}")
                    }
                }
                None => name,
            }
        })
        .collect();
    if params.is_empty() {
        String::new()
    } else {
        format!("<{}>", params.join(", "))
    }
}

fn bounds(b: &Value) -> String {
    b.as_array()
        .into_iter()
        .flatten()
        .map(|b| match b.get("trait_bound") {
            Some(t) => path_of(&t["trait"]),
            None => b["outlives"].as_str().unwrap_or("?").to_string(),
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

fn path_of(p: &Value) -> String {
    let name = p["path"].as_str().unwrap_or("?").to_string();
    let args = &p["args"]["angle_bracketed"];
    let mut parts: Vec<String> = args["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| match a.as_object().and_then(|o| o.iter().next()) {
            Some((k, v)) if k == "type" => ty(v),
            Some((k, v)) if k == "lifetime" => v.as_str().unwrap_or("'_").to_string(),
            Some((_, v)) => v.to_string(),
            None => "?".into(),
        })
        .collect();
    for c in args["constraints"].as_array().into_iter().flatten() {
        let binding = match c["binding"].get("equality") {
            Some(e) => ty(e.get("type").unwrap_or(e)),
            None => bounds(&c["binding"]["constraint"]),
        };
        parts.push(format!("{} = {binding}", c["name"].as_str().unwrap_or("?")));
    }
    if let Some(f) = p["args"].get("parenthesized") {
        let inputs: Vec<String> = f["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(ty)
            .collect();
        let out = match &f["output"] {
            Value::Null => String::new(),
            t => format!(" -> {}", ty(t)),
        };
        return format!("{name}({}){out}", inputs.join(", "));
    }
    if parts.is_empty() {
        name
    } else {
        format!("{name}<{}>", parts.join(", "))
    }
}

/// A type as Rust spells it (closely enough to review).
fn ty(t: &Value) -> String {
    let Some((kind, v)) = t.as_object().and_then(|o| o.iter().next()) else {
        return "?".into();
    };
    match kind.as_str() {
        "resolved_path" => path_of(v),
        "generic" | "primitive" => v.as_str().unwrap_or("?").to_string(),
        "borrowed_ref" => {
            let lt = v["lifetime"]
                .as_str()
                .map(|l| format!("{l} "))
                .unwrap_or_default();
            let m = if v["is_mutable"] == true { "mut " } else { "" };
            format!("&{lt}{m}{}", ty(&v["type"]))
        }
        "raw_pointer" => {
            let m = if v["is_mutable"] == true {
                "mut"
            } else {
                "const"
            };
            format!("*{m} {}", ty(&v["type"]))
        }
        "tuple" => {
            let items: Vec<String> = v.as_array().into_iter().flatten().map(ty).collect();
            format!("({})", items.join(", "))
        }
        "slice" => format!("[{}]", ty(v)),
        "array" => format!("[{}; {}]", ty(&v["type"]), v["len"].as_str().unwrap_or("?")),
        "impl_trait" => format!("impl {}", bounds(v)),
        "dyn_trait" => {
            let traits: Vec<String> = v["traits"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| path_of(&t["trait"]))
                .collect();
            let lt = v["lifetime"]
                .as_str()
                .map(|l| format!(" + {l}"))
                .unwrap_or_default();
            format!("dyn {}{lt}", traits.join(" + "))
        }
        "qualified_path" => {
            let trait_ = match &v["trait"] {
                Value::Null => String::new(),
                t => format!(" as {}", path_of(t)),
            };
            format!(
                "<{}{trait_}>::{}",
                ty(&v["self_type"]),
                v["name"].as_str().unwrap_or("?")
            )
        }
        "function_pointer" => {
            let inputs: Vec<String> = v["sig"]["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| ty(&p[1]))
                .collect();
            let out = match &v["sig"]["output"] {
                Value::Null => String::new(),
                t => format!(" -> {}", ty(t)),
            };
            format!("fn({}){out}", inputs.join(", "))
        }
        other => format!("<{other}>"),
    }
}

#[cfg(test)]
mod tests {
    /// The published surfaces, as reviewed. A failure here means the
    /// public API changed: review the diff, then accept it.
    #[test]
    fn public_api() {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("workspace")
            .to_path_buf();
        for krate in super::CRATES {
            let surface = super::surface(&workspace, krate).expect("surface");
            insta::assert_snapshot!(krate, surface);
        }
    }

    /// The runtime core stays lean: no registry, TLS, crypto, netlink or
    /// archive crate in its dependency closure (they belong to berth-net
    /// and berth-image, which depend on the core, never the reverse).
    #[test]
    fn the_core_depends_on_no_image_or_network_crate() {
        let out = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["tree", "-p", "berth", "-e", "normal", "--prefix", "none"])
            .output()
            .expect("cargo tree");
        assert!(out.status.success(), "{out:?}");
        let tree = String::from_utf8(out.stdout).unwrap();
        let crates: Vec<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
        assert!(
            crates.contains(&"oci-spec"),
            "not a dependency tree: {tree}"
        );
        for forbidden in [
            "reqwest",
            "rustls",
            "ring",
            "p256",
            "rtnetlink",
            "zstd",
            "tar",
            "berth-net",
            "berth-image",
        ] {
            assert!(!crates.contains(&forbidden), "berth depends on {forbidden}");
        }
    }
}
