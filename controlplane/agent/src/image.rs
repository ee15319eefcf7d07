//! The local image store: where the agent finds the images pods run.
//!
//! There is no registry. "Pulling" an image means finding it in the store, a directory shared
//! by the agents of a machine (`--image-dir`, `/var/lib/concord/images` by default). Images are
//! added with `concord-agent image import`, listed with `concord-agent image list` and removed
//! with `concord-agent image rm`.
//!
//! # References
//!
//! Image references are read as Docker reads them, and normalized the same way:
//!
//! | written                                  | normalized                                 |
//! |------------------------------------------|--------------------------------------------|
//! | `python`                                 | `docker.io/library/python:latest`          |
//! | `python:3.12`                            | `docker.io/library/python:3.12`            |
//! | `team/app`                               | `docker.io/team/app:latest`                |
//! | `registry.example.com:5000/team/app:v2`  | `registry.example.com:5000/team/app:v2`    |
//! | `localhost/app`                          | `localhost/app:latest`                     |
//! | `python@sha256:<64 hex>`                 | `docker.io/library/python@sha256:<64 hex>` |
//!
//! So a pod's `image: python` and `image: docker.io/library/python:latest` are the same image.
//! Repository names are lowercase; a tag is up to 128 letters, digits, `_`, `.` and `-` (not
//! starting with `.` or `-`). A reference by digest (`name@sha256:<hex>`) names the image of
//! that repository whose IMAGE ID (below) is `sha256:<hex>`, whatever its tag: import an image
//! by tag, then refer to exactly that content with `name@<IMAGE ID>`.
//!
//! # On-disk format
//!
//! Each image is a directory named after its normalized reference, the tag after a `:`:
//!
//! ```text
//! <image-dir>/
//!   docker.io/library/python:latest/
//!     image.json        what the image runs
//!     rootfs/           the image's files
//!   registry.example.com:5000/team/app:v2/
//!     image.json
//!     rootfs/
//! ```
//!
//! `image.json` is a subset of an OCI image configuration, with the same field names:
//!
//! ```json
//! {
//!   "config": {
//!     "Entrypoint": ["python3", "-u"],
//!     "Cmd": ["-m", "http.server"],
//!     "Env": ["PYTHONUNBUFFERED=1", "GREETING=hello"],
//!     "WorkingDir": "/app"
//!   },
//!   "rootfs": { "type": "concord-tree", "digest": "sha256:…" }
//! }
//! ```
//!
//! Every field may be left out; other fields are ignored, so an OCI image configuration works as
//! it is. A container runs `Entrypoint` followed by `Cmd` (a pod's `command` replaces
//! `Entrypoint` and its `args` replace `Cmd`, as in Kubernetes), with `Env` before the pod's own
//! environment. Containers run on the machine's own filesystem (they are not chrooted into the
//! image): programs are looked up in `rootfs/` first, then on the `PATH`, and `rootfs/` is the
//! working directory unless `WorkingDir` says otherwise. `WorkingDir` names a directory of the
//! image (`/app` is `rootfs/app`) when the image has it, else the machine's directory as written.
//!
//! The IMAGE ID is `sha256:` and the SHA-256 of the `image.json` file. `import` records in
//! `rootfs.digest` a SHA-256 of the imported files (their paths, permissions, contents and link
//! targets, in name order), so the id changes when the files do; importing the same files and
//! settings again gives the same id. An image laid out by hand (an `image.json` next to a
//! `rootfs/` directory) works too: its id then covers only its `image.json`.
//!
//! # Importing
//!
//! ```text
//! concord-agent image import myapp:v1 --from ./build --entrypoint python3 --cmd app.py \
//!     --env MODE=prod --workdir /
//! concord-agent image import python --entrypoint python3      # runs the machine's python3
//! ```
//!
//! `--from DIR` copies `DIR`'s files into the image's `rootfs/` (regular files with their
//! permission bits, directories and symbolic links; hard links become separate files; sockets,
//! pipes and devices are skipped; owners are not kept). Without `--from` the image has no files
//! and runs the machine's programs. An `image.json` at the top of `DIR` gives the defaults (and
//! is not copied); when `DIR` is itself an image (an `image.json` next to a `rootfs/`
//! directory), its `rootfs/` is what is copied, so an image can be copied from one store to
//! another. The flags override the defaults:
//!
//! - `--entrypoint` and `--cmd`: one word per flag, repeated for more words (`--cmd -m --cmd
//!   http.server`), or a JSON array (`--cmd '["-m", "http.server"]'`); `--entrypoint ''` clears
//!   it. As in a Dockerfile, setting the entrypoint clears a default `Cmd` unless `--cmd` is
//!   given too.
//! - `--env K=V`, repeated: added to the default `Env`, replacing a variable of the same name.
//! - `--workdir DIR`: `WorkingDir`.
//!
//! An import is built in a temporary directory inside the store and moved into place at once:
//! a half-done import never shows, and re-importing a tag replaces the image atomically (pods
//! already running keep the files they have open; their restarts use the new image). The same
//! holds for `rm`.
//!
//! The store's functions do blocking file I/O: async code calls them in `spawn_blocking`.
use std::fmt;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use concord_proto::sha256::{digest as sha256, Sha256};
use serde::{Deserialize, Serialize};

/// What an image runs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImageConfig {
    /// The normalized reference (`docker.io/library/python:latest`, or `name@sha256:…` when
    /// referred to by digest).
    pub reference: String,
    /// An id for `imageID`: `sha256:` and the SHA-256 of the image's `image.json`.
    pub id: String,
    /// The image's files (absolute); the default working directory and the first place
    /// programs are looked up.
    pub root: PathBuf,
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (before the container's own).
    pub env: Vec<(String, String)>,
    /// `WorkingDir`, if set, as a path of the machine: the image's directory (under `root`)
    /// when the image has it, else the path as written.
    pub working_dir: Option<PathBuf>,
}

/// Why an image cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Not in the store.
    #[error(
        "image {0:?} not found in the local image store (there is no registry: add it with \
         `concord-agent image import {0} --from DIR` or `--entrypoint PROGRAM`)"
    )]
    NotFound(String),
    /// The reference is not a valid image reference.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The image is in the store but its `image.json` or `rootfs/` is unusable.
    #[error("image {reference:?} is broken: {reason}")]
    Invalid {
        /// The normalized reference.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A command's flags cannot be used.
    #[error("{0}")]
    Usage(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (with the path).
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// The Kubernetes waiting reason for a container whose image failed this way
    /// (`InvalidImageName`, `ImageInspectError` or `ErrImagePull`).
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::InvalidReference { .. } => "InvalidImageName",
            ImageError::Invalid { .. } => "ImageInspectError",
            ImageError::NotFound(_) | ImageError::Usage(_) | ImageError::Io { .. } => {
                "ErrImagePull"
            }
        }
    }
}

fn io_err(context: impl fmt::Display, path: &Path, source: std::io::Error) -> ImageError {
    ImageError::Io {
        context: format!("{context} {}", path.display()),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/// A parsed and normalized image reference (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

const DEFAULT_DOMAIN: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

impl Reference {
    /// Parses and normalizes `reference` as Docker does: a missing registry is `docker.io`,
    /// a one-component name on it is under `library/`, a missing tag (and digest) is `latest`.
    pub fn parse(reference: &str) -> Result<Reference, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(bad("empty reference"));
        }
        if reference.len() == 64 && reference.bytes().all(is_lower_hex) {
            return Err(bad(
                "a 64-character hexadecimal string is not a name (refer to an image by digest \
                 with name@sha256:<hex>)",
            ));
        }
        let (name_tag, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if let Some(d) = digest {
            validate_digest(d).map_err(|r| bad(&r))?;
        }
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if last_slash.is_none_or(|s| i > s) => {
                (&name_tag[..i], Some(&name_tag[i + 1..]))
            }
            _ => (name_tag, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        if name.is_empty() {
            return Err(bad("no repository name"));
        }
        // Docker's rule: the first component is a registry if it has a '.' or a ':', is
        // "localhost", or has an uppercase letter (repositories are lowercase).
        let (mut domain, mut path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        if domain == "index.docker.io" {
            domain = DEFAULT_DOMAIN.to_string();
        }
        validate_domain(&domain).map_err(|r| bad(&r))?;
        if domain == DEFAULT_DOMAIN && !path.contains('/') {
            path = format!("library/{path}");
        }
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("repository name must be lowercase"));
        }
        for component in path.split('/') {
            validate_component(component).map_err(|r| bad(&r))?;
        }
        if domain.len() + 1 + path.len() > MAX_NAME_LEN {
            return Err(bad("repository name must not be more than 255 characters"));
        }
        let tag = match (tag, digest) {
            (None, None) => Some("latest".to_string()),
            (t, _) => t.map(str::to_string),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest: digest.map(str::to_string),
        })
    }

    /// The full repository name (`docker.io/library/python`).
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker shows it (`python`, `team/app`,
    /// `registry.example.com:5000/team/app`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The tag (`latest` when neither a tag nor a digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:<hex>`), if given.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The directory of the image in `store`: `<domain>/<path>:<tag>`, or `<path>@<digest>`
    /// for a reference by digest.
    fn dir_in(&self, store: &Path) -> PathBuf {
        let mut dir = store.join(&self.domain);
        let mut components: Vec<&str> = self.path.split('/').collect();
        let last = components.pop().unwrap_or_default();
        for c in components {
            dir.push(c);
        }
        match (&self.digest, &self.tag) {
            (Some(d), _) => dir.push(format!("{last}@{d}")),
            (None, Some(t)) => dir.push(format!("{last}:{t}")),
            (None, None) => dir.push(last),
        }
        dir
    }

    /// The repository's directory name prefix for tags (`python:`), and its parent directory.
    fn repository_dir(&self, store: &Path) -> (PathBuf, String) {
        let mut dir = store.join(&self.domain);
        let mut components: Vec<&str> = self.path.split('/').collect();
        let last = components.pop().unwrap_or_default();
        for c in components {
            dir.push(c);
        }
        (dir, last.to_string())
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        // A reference by digest names the content: the tag is not part of it.
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "@{d}"),
            (None, Some(t)) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_digest(d: &str) -> Result<(), String> {
    let Some((algorithm, hex)) = d.split_once(':') else {
        return Err("a digest is <algorithm>:<hex>".to_string());
    };
    if algorithm != "sha256" {
        return Err("only sha256 digests are supported".to_string());
    }
    if hex.len() != 64 || !hex.bytes().all(is_lower_hex) {
        return Err("a sha256 digest is 64 lowercase hexadecimal digits".to_string());
    }
    Ok(())
}

fn validate_tag(t: &str) -> Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !t.is_empty()
        && t.len() <= MAX_TAG_LEN
        && t.bytes().next().is_some_and(word)
        && t.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(
            "a tag is 1 to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
                .to_string(),
        )
    }
}

fn validate_domain(domain: &str) -> Result<(), String> {
    let bad = || Err(format!("invalid registry host {domain:?}"));
    let (host, port) = match domain.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return bad();
        }
    }
    if host.is_empty() {
        return bad();
    }
    for label in host.split('.') {
        let b = label.as_bytes();
        let ok = !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// A repository path component: lowercase letters and digits, separated by one `.`, one or
/// two `_`, or any number of `-`.
fn validate_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "invalid repository path component {c:?} (lowercase letters and digits, separated \
             by '.', '_', '__' or '-')"
        ))
    };
    let b = c.as_bytes();
    if b.is_empty() || !is_lower_alnum(b[0]) || !is_lower_alnum(b[b.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < b.len() {
        if is_lower_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|s| s == b'-');
        if !ok || i == start || i >= b.len() || !is_lower_alnum(b[i]) {
            return bad();
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// image.json
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ImageJson {
    #[serde(default)]
    config: ConfigJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rootfs: Option<RootfsJson>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RootfsJson {
    #[serde(rename = "type")]
    kind: String,
    digest: String,
}

const IMAGE_JSON: &str = "image.json";
const ROOTFS: &str = "rootfs";
const TMP_DIR: &str = ".tmp";
const TREE_KIND: &str = "concord-tree";

fn parse_env_entry(entry: &str) -> Option<(String, String)> {
    let (k, v) = entry.split_once('=')?;
    if k.is_empty() || k.contains('\0') || v.contains('\0') {
        return None;
    }
    Some((k.to_string(), v.to_string()))
}

fn read_image_json(path: &Path, reference: &str) -> Result<(ImageJson, String), ImageError> {
    let bytes = std::fs::read(path).map_err(|e| io_err("reading", path, e))?;
    let parsed: ImageJson = serde_json::from_slice(&bytes).map_err(|e| ImageError::Invalid {
        reference: reference.to_string(),
        reason: format!("{}: {e}", path.display()),
    })?;
    Ok((parsed, format!("sha256:{}", hex(&sha256(&bytes)))))
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

/// One image of [`ImageStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    /// The normalized reference.
    pub reference: String,
    /// The repository as Docker shows it (`python`).
    pub repository: String,
    /// The tag (`None` for an image stored by digest).
    pub tag: Option<String>,
    /// The IMAGE ID (`sha256:…`).
    pub id: String,
    /// The bytes of its files.
    pub size: u64,
}

/// The local image store in a directory.
#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl ImageStore {
    /// The store in `dir` (created on the first import).
    pub fn new(dir: &Path) -> ImageStore {
        ImageStore {
            dir: dir.to_path_buf(),
        }
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Looks an image up by reference (see the module docs).
    pub fn resolve(&self, reference: &str) -> Result<ImageConfig, ImageError> {
        let r = Reference::parse(reference)?;
        let normalized = r.to_string();
        let dir = self.find(&r)?;
        let (json, id) = read_image_json(&dir.join(IMAGE_JSON), &normalized)?;
        let invalid = |reason: String| ImageError::Invalid {
            reference: normalized.clone(),
            reason,
        };
        let rootfs = dir.join(ROOTFS);
        let root = std::fs::canonicalize(&rootfs)
            .map_err(|e| invalid(format!("{}: {e}", rootfs.display())))?;
        if !root.is_dir() {
            return Err(invalid(format!("{} is not a directory", rootfs.display())));
        }
        let mut env = Vec::new();
        for entry in json.config.env.unwrap_or_default() {
            match parse_env_entry(&entry) {
                Some(kv) => env.push(kv),
                None => return Err(invalid(format!("Env entry {entry:?} is not NAME=VALUE"))),
            }
        }
        let working_dir = json
            .config
            .working_dir
            .filter(|w| !w.is_empty())
            .map(|w| working_dir_on_machine(&root, &w));
        Ok(ImageConfig {
            reference: normalized,
            id,
            root,
            entrypoint: json.config.entrypoint.unwrap_or_default(),
            cmd: json.config.cmd.unwrap_or_default(),
            env,
            working_dir,
        })
    }

    /// The directory of the image `r` names.
    fn find(&self, r: &Reference) -> Result<PathBuf, ImageError> {
        let dir = r.dir_in(&self.dir);
        if dir.join(IMAGE_JSON).is_file() {
            return Ok(dir);
        }
        if let Some(digest) = r.digest() {
            // An image imported by tag, referred to by its id.
            let (parent, last) = r.repository_dir(&self.dir);
            let prefix = format!("{last}:");
            for (_, candidate) in sorted_entries(&parent) {
                let matches_name = candidate
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix));
                if !matches_name {
                    continue;
                }
                let json = candidate.join(IMAGE_JSON);
                if let Ok(bytes) = std::fs::read(&json) {
                    if format!("sha256:{}", hex(&sha256(&bytes))) == digest {
                        return Ok(candidate);
                    }
                }
            }
        }
        Err(ImageError::NotFound(r.to_string()))
    }

    /// Adds (or replaces) image `reference`: the files of `from` (none when `None`), with the
    /// settings of an `image.json` at the top of `from` overridden by the arguments (see the
    /// module docs). `entrypoint`/`cmd` `Some(vec![])` clear the default.
    pub fn import(
        &self,
        reference: &str,
        from: Option<&Path>,
        entrypoint: Option<Vec<String>>,
        cmd: Option<Vec<String>>,
        env: &[(String, String)],
        workdir: Option<&str>,
    ) -> Result<ImageConfig, ImageError> {
        let r = Reference::parse(reference)?;
        if r.digest().is_some() {
            return Err(ImageError::Usage(format!(
                "cannot import {reference:?} by digest: import it by tag (name:tag); its IMAGE \
                 ID is then its digest (name@<IMAGE ID>)"
            )));
        }
        for (k, v) in env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(ImageError::Usage(format!(
                    "invalid environment variable name {k:?}"
                )));
            }
        }
        // The defaults, and the tree to copy.
        let mut json = ImageJson::default();
        let mut tree = None;
        if let Some(from) = from {
            let meta = std::fs::metadata(from).map_err(|e| io_err("reading", from, e))?;
            if !meta.is_dir() {
                return Err(ImageError::Usage(format!(
                    "--from {}: not a directory",
                    from.display()
                )));
            }
            let defaults = from.join(IMAGE_JSON);
            if defaults.is_file() {
                json = read_image_json(&defaults, reference)?.0;
                json.rootfs = None;
            }
            let nested = from.join(ROOTFS);
            tree = Some(if defaults.is_file() && nested.is_dir() {
                (nested, false)
            } else {
                (from.to_path_buf(), true)
            });
        }
        if let Some(e) = entrypoint {
            json.config.entrypoint = Some(e);
            if cmd.is_none() {
                json.config.cmd = None;
            }
        }
        if let Some(c) = cmd {
            json.config.cmd = Some(c);
        }
        if !env.is_empty() {
            let mut vars: Vec<String> = json.config.env.take().unwrap_or_default();
            for (k, v) in env {
                vars.retain(|entry| entry.split_once('=').map(|(n, _)| n) != Some(k.as_str()));
                vars.push(format!("{k}={v}"));
            }
            json.config.env = Some(vars);
        }
        if let Some(w) = workdir {
            json.config.working_dir = Some(w.to_string());
        }

        // Build it in a temporary directory of the store, then move it into place.
        let tmp_root = self.dir.join(TMP_DIR);
        std::fs::create_dir_all(&tmp_root).map_err(|e| io_err("creating", &tmp_root, e))?;
        clean_stale_tmp(&tmp_root);
        let tmp = tmp_root.join(format!(
            "import-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = self.build_and_place(&r, &tmp, tree.as_ref(), json);
        if tmp.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result?;
        self.resolve(&r.to_string())
    }

    fn build_and_place(
        &self,
        r: &Reference,
        tmp: &Path,
        tree: Option<&(PathBuf, bool)>,
        mut json: ImageJson,
    ) -> Result<(), ImageError> {
        std::fs::create_dir(tmp).map_err(|e| io_err("creating", tmp, e))?;
        let rootfs = tmp.join(ROOTFS);
        std::fs::create_dir(&rootfs).map_err(|e| io_err("creating", &rootfs, e))?;
        let mut hasher = Sha256::new();
        if let Some((src, skip_image_json)) = tree {
            let store_id = std::fs::metadata(&self.dir)
                .ok()
                .map(|m| (m.dev(), m.ino()));
            let mut rel = Vec::new();
            let skip = Skip {
                dir: store_id,
                top_image_json: *skip_image_json,
            };
            copy_tree(src, &rootfs, &mut rel, &mut hasher, &skip)?;
            let perm = std::fs::metadata(src)
                .map_err(|e| io_err("reading", src, e))?
                .permissions()
                .mode();
            std::fs::set_permissions(&rootfs, std::fs::Permissions::from_mode(perm & 0o7777))
                .map_err(|e| io_err("setting the permissions of", &rootfs, e))?;
        }
        json.rootfs = Some(RootfsJson {
            kind: TREE_KIND.to_string(),
            digest: format!("sha256:{}", hex(&hasher.finish())),
        });
        let mut bytes = serde_json::to_vec_pretty(&json).map_err(|e| ImageError::Invalid {
            reference: r.to_string(),
            reason: e.to_string(),
        })?;
        bytes.push(b'\n');
        let json_path = tmp.join(IMAGE_JSON);
        write_synced(&json_path, &bytes)?;

        let dest = r.dir_in(&self.dir);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        place(tmp, &dest)
    }

    /// The images in the store, by reference.
    pub fn list(&self) -> Result<Vec<ImageSummary>, ImageError> {
        let mut found = Vec::new();
        if !self.dir.exists() {
            return Ok(found);
        }
        let mut stack: Vec<(PathBuf, String, usize)> = Vec::new();
        for (name, path) in sorted_entries(&self.dir) {
            if !name.starts_with('.') && path.is_dir() {
                stack.push((path, name, 1));
            }
        }
        while let Some((dir, rel, depth)) = stack.pop() {
            let last = rel.rsplit('/').next().unwrap_or_default();
            if depth >= 2 && last.contains([':', '@']) {
                if let Ok(r) = Reference::parse(&rel) {
                    // Only a directory whose name is its own normalized reference.
                    if r.to_string() == rel && dir.join(IMAGE_JSON).is_file() {
                        if let Ok((_, id)) = read_image_json(&dir.join(IMAGE_JSON), &rel) {
                            found.push(ImageSummary {
                                reference: rel.clone(),
                                repository: r.familiar_name(),
                                tag: if r.digest().is_some() {
                                    None
                                } else {
                                    r.tag().map(str::to_string)
                                },
                                id,
                                size: tree_size(&dir.join(ROOTFS)),
                            });
                        }
                    }
                }
                continue;
            }
            if depth > 64 {
                continue;
            }
            for (name, path) in sorted_entries(&dir) {
                let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
                if !name.starts_with('.') && is_dir {
                    stack.push((path, format!("{rel}/{name}"), depth + 1));
                }
            }
        }
        found.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(found)
    }

    /// Removes image `reference` (by tag; by digest: every tag of the repository with that
    /// id). Returns the normalized references removed, with their ids.
    pub fn remove(&self, reference: &str) -> Result<Vec<(String, String)>, ImageError> {
        let r = Reference::parse(reference)?;
        let mut targets = Vec::new();
        let dir = r.dir_in(&self.dir);
        if dir.join(IMAGE_JSON).is_file() {
            targets.push((r.to_string(), dir));
        } else if let Some(digest) = r.digest() {
            let (parent, last) = r.repository_dir(&self.dir);
            let prefix = format!("{last}:");
            for (name, candidate) in sorted_entries(&parent) {
                if !name.starts_with(&prefix) {
                    continue;
                }
                if let Ok(bytes) = std::fs::read(candidate.join(IMAGE_JSON)) {
                    if format!("sha256:{}", hex(&sha256(&bytes))) == digest {
                        let tagged = format!("{}:{}", r.name(), &name[prefix.len()..]);
                        targets.push((tagged, candidate));
                    }
                }
            }
        }
        if targets.is_empty() {
            return Err(ImageError::NotFound(r.to_string()));
        }
        let tmp_root = self.dir.join(TMP_DIR);
        std::fs::create_dir_all(&tmp_root).map_err(|e| io_err("creating", &tmp_root, e))?;
        let mut removed = Vec::new();
        for (reference, dir) in targets {
            let id = read_image_json(&dir.join(IMAGE_JSON), &reference)
                .map(|(_, id)| id)
                .unwrap_or_default();
            let trash = tmp_root.join(format!(
                "rm-{}-{}",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::rename(&dir, &trash).map_err(|e| io_err("removing", &dir, e))?;
            let _ = std::fs::remove_dir_all(&trash);
            // Empty repository and registry directories go too.
            let mut parent = dir.parent().map(Path::to_path_buf);
            while let Some(p) = parent {
                if p == self.dir || !p.starts_with(&self.dir) || std::fs::remove_dir(&p).is_err() {
                    break;
                }
                parent = p.parent().map(Path::to_path_buf);
            }
            removed.push((reference, id));
        }
        Ok(removed)
    }
}

/// `WorkingDir` as a path of the machine (see [`ImageConfig::working_dir`]).
fn working_dir_on_machine(root: &Path, w: &str) -> PathBuf {
    let inside = root.join(w.trim_start_matches('/'));
    if inside.is_dir() || !Path::new(w).is_absolute() {
        inside
    } else {
        PathBuf::from(w)
    }
}

/// The entries of `dir` (name, path), by name; none if unreadable.
fn sorted_entries(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<(String, PathBuf)> = rd
        .filter_map(Result::ok)
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), e.path())))
        .collect();
    v.sort();
    v
}

/// The bytes of the regular files under `dir` (symbolic links not followed).
fn tree_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.filter_map(Result::ok) {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total = total.saturating_add(m.len());
            }
        }
    }
    total
}

/// Removes the temporary directories of imports whose process is gone.
fn clean_stale_tmp(tmp_root: &Path) {
    for (name, path) in sorted_entries(tmp_root) {
        let pid = name
            .split('-')
            .nth(1)
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|&p| p > 0);
        let Some(pid) = pid else { continue };
        // SAFETY: kill with signal 0 only checks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let mut f = std::fs::File::create(path).map_err(|e| io_err("creating", path, e))?;
    f.write_all(bytes).map_err(|e| io_err("writing", path, e))?;
    f.sync_all().map_err(|e| io_err("writing", path, e))
}

/// Moves the built image `tmp` to `dest`, atomically replacing an image there.
fn place(tmp: &Path, dest: &Path) -> Result<(), ImageError> {
    match std::fs::rename(tmp, dest) {
        Ok(()) => return Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST)) => {}
        Err(e) => return Err(io_err("moving the image to", dest, e)),
    }
    // An image is there: swap the two directories at once, then delete the old one (now at
    // `tmp`).
    match exchange(tmp, dest) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) => {
            // A filesystem without RENAME_EXCHANGE: move the old one aside first.
            let old = tmp.with_extension("old");
            std::fs::rename(dest, &old).map_err(|e| io_err("replacing", dest, e))?;
            let placed = std::fs::rename(tmp, dest).map_err(|e| io_err("replacing", dest, e));
            if placed.is_err() {
                let _ = std::fs::rename(&old, dest);
            }
            let _ = std::fs::remove_dir_all(&old);
            placed
        }
        Err(e) => Err(io_err("replacing", dest, e)),
    }
}

fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
    let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both are valid NUL-terminated paths that live across the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Copies the tree `src` into the existing directory `dst`, feeding `hasher` a description of
/// every entry (see the module docs). `rel` is `src`'s path relative to the top.
fn copy_tree(
    src: &Path,
    dst: &Path,
    rel: &mut Vec<u8>,
    hasher: &mut Sha256,
    skip: &Skip,
) -> Result<(), ImageError> {
    let rd = std::fs::read_dir(src).map_err(|e| io_err("reading", src, e))?;
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|e| io_err("reading", src, e))?;
        entries.push(e.file_name());
    }
    entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in entries {
        if skip.top_image_json && rel.is_empty() && name.as_bytes() == IMAGE_JSON.as_bytes() {
            continue;
        }
        let s = src.join(&name);
        let d = dst.join(&name);
        let meta = std::fs::symlink_metadata(&s).map_err(|e| io_err("reading", &s, e))?;
        let len_before = rel.len();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        let mode = meta.permissions().mode() & 0o7777;
        let ft = meta.file_type();
        if ft.is_dir() {
            if skip.dir == Some((meta.dev(), meta.ino())) {
                rel.truncate(len_before);
                continue;
            }
            hasher.update(format!("d {mode:o} ").as_bytes());
            hasher.update(rel);
            hasher.update(b"\0");
            std::fs::create_dir(&d).map_err(|e| io_err("creating", &d, e))?;
            copy_tree(&s, &d, rel, hasher, skip)?;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("setting the permissions of", &d, e))?;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&s).map_err(|e| io_err("reading", &s, e))?;
            hasher.update(b"l ");
            hasher.update(rel);
            hasher.update(b"\0");
            hasher.update(target.as_os_str().as_bytes());
            hasher.update(b"\0");
            std::os::unix::fs::symlink(&target, &d).map_err(|e| io_err("creating", &d, e))?;
        } else if ft.is_file() {
            let mut input = std::fs::File::open(&s).map_err(|e| io_err("reading", &s, e))?;
            let mut output = std::fs::File::create(&d).map_err(|e| io_err("creating", &d, e))?;
            hasher.update(format!("f {mode:o} ").as_bytes());
            hasher.update(rel);
            hasher.update(b"\0");
            let mut buf = vec![0u8; 64 * 1024];
            let mut copied = 0u64;
            loop {
                let n = input.read(&mut buf).map_err(|e| io_err("reading", &s, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                output
                    .write_all(&buf[..n])
                    .map_err(|e| io_err("writing", &d, e))?;
                copied += n as u64;
            }
            hasher.update(format!("\0{copied}\0").as_bytes());
            drop(output);
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode))
                .map_err(|e| io_err("setting the permissions of", &d, e))?;
        } else {
            tracing::debug!("image import: skipping a special file");
        }
        rel.truncate(len_before);
    }
    Ok(())
}

/// What [`copy_tree`] leaves out.
struct Skip {
    /// The store's (device, inode): never copied into itself.
    dir: Option<(u64, u64)>,
    /// The `image.json` at the top (the defaults, not a file of the image).
    top_image_json: bool,
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

/// `concord-agent image …`: manage the local image store (see the module docs of
/// `concord_agent::image` for the format).
#[derive(clap::Subcommand, Debug, Clone)]
pub enum ImageCommand {
    /// Add an image to the store, or replace the image of a tag.
    Import {
        /// The image's reference (`python`, `myapp:v1`, `registry.example.com:5000/team/app:v2`).
        reference: String,
        /// The directory whose files become the image's (an `image.json` at its top gives the
        /// defaults); without it the image has no files and runs the machine's programs.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
        /// The program (and its first arguments): one word per flag, repeated for more, or a
        /// JSON array; '' clears it.
        #[arg(long, value_name = "WORD|JSON", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// The default arguments: one word per flag, repeated for more, or a JSON array; ''
        /// clears them.
        #[arg(long, value_name = "WORD|JSON", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// An environment variable, NAME=VALUE (repeated for more).
        #[arg(long, value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// The working directory (a directory of the image, else of the machine).
        #[arg(long, value_name = "DIR")]
        workdir: Option<String>,
    },
    /// List the images in the store.
    #[command(alias = "ls")]
    List,
    /// Show what an image runs, as JSON.
    Inspect {
        /// The image's reference.
        reference: String,
    },
    /// Remove images from the store.
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// The images' references (by tag, or `name@sha256:<IMAGE ID>`).
        #[arg(required = true)]
        references: Vec<String>,
    },
}

/// Words of `--entrypoint`/`--cmd` flags: `None` when none were given.
fn words(flags: &[String], flag: &str) -> Result<Option<Vec<String>>, ImageError> {
    if flags.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for f in flags {
        if f.trim_start().starts_with('[') {
            let v: Vec<String> = serde_json::from_str(f).map_err(|e| {
                ImageError::Usage(format!("--{flag}: not a JSON array of strings: {e}"))
            })?;
            out.extend(v);
        } else if !f.is_empty() {
            out.push(f.clone());
        }
    }
    Ok(Some(out))
}

/// A size as `docker images` shows it: three significant digits, powers of 1000.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 999.5 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    let digits = if v >= 99.95 {
        0
    } else if v >= 9.995 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        while s.ends_with('0') {
            s.pop();
        }
        if s.ends_with('.') {
            s.pop();
        }
    }
    format!("{s}{}", UNITS[unit])
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] - cell.chars().count() + 3;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Runs an image command on `store`; returns the text to print.
pub fn run(store: &ImageStore, cmd: ImageCommand) -> Result<String, ImageError> {
    match cmd {
        ImageCommand::Import {
            reference,
            from,
            entrypoint,
            cmd,
            env,
            workdir,
        } => {
            let entrypoint = words(&entrypoint, "entrypoint")?;
            let cmd = words(&cmd, "cmd")?;
            let mut vars = Vec::new();
            for e in &env {
                match e.split_once('=') {
                    Some((k, v)) if !k.is_empty() => vars.push((k.to_string(), v.to_string())),
                    _ => {
                        return Err(ImageError::Usage(format!(
                            "--env {e:?}: expected NAME=VALUE"
                        )))
                    }
                }
            }
            let image = store.import(
                &reference,
                from.as_deref(),
                entrypoint,
                cmd,
                &vars,
                workdir.as_deref(),
            )?;
            Ok(format!("Imported: {}\nID: {}\n", image.reference, image.id))
        }
        ImageCommand::List => {
            let mut rows = vec![vec![
                "REPOSITORY".to_string(),
                "TAG".to_string(),
                "IMAGE ID".to_string(),
                "SIZE".to_string(),
            ]];
            for image in store.list()? {
                let short = image.id.trim_start_matches("sha256:");
                rows.push(vec![
                    image.repository,
                    image.tag.unwrap_or_else(|| "<none>".to_string()),
                    short.chars().take(12).collect(),
                    human_size(image.size),
                ]);
            }
            Ok(table(&rows))
        }
        ImageCommand::Inspect { reference } => {
            let image = store.resolve(&reference)?;
            let env: Vec<String> = image.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let value = serde_json::json!({
                "Reference": image.reference,
                "Id": image.id,
                "Root": image.root,
                "Entrypoint": image.entrypoint,
                "Cmd": image.cmd,
                "Env": env,
                "WorkingDir": image.working_dir,
            });
            let mut s = serde_json::to_string_pretty(&value)
                .map_err(|e| ImageError::Usage(e.to_string()))?;
            s.push('\n');
            Ok(s)
        }
        ImageCommand::Rm { references } => {
            let mut out = String::new();
            for reference in references {
                for (removed, id) in store.remove(&reference)? {
                    out.push_str(&format!("Untagged: {removed}\nDeleted: {id}\n"));
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalization_table() {
        let cases = [
            ("python", "docker.io/library/python:latest"),
            ("python:latest", "docker.io/library/python:latest"),
            (
                "docker.io/library/python:latest",
                "docker.io/library/python:latest",
            ),
            ("docker.io/python", "docker.io/library/python:latest"),
            ("index.docker.io/python:3", "docker.io/library/python:3"),
            ("python:3.12-slim", "docker.io/library/python:3.12-slim"),
            ("team/app", "docker.io/team/app:latest"),
            ("team/sub/app:v1", "docker.io/team/sub/app:v1"),
            (
                "registry.example.com:5000/team/app:v2",
                "registry.example.com:5000/team/app:v2",
            ),
            (
                "registry.example.com/app",
                "registry.example.com/app:latest",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:dev", "localhost:5000/app:dev"),
            ("my-app_1.x__y", "docker.io/library/my-app_1.x__y:latest"),
            ("a---b", "docker.io/library/a---b:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
        let with_digest = format!("python@{D}");
        assert_eq!(norm(&with_digest), format!("docker.io/library/python@{D}"));
        let tag_and_digest = format!("python:3@{D}");
        let r = Reference::parse(&tag_and_digest).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/python@{D}"));
        assert_eq!(r.tag(), Some("3"));
        assert_eq!(r.familiar_name(), "python");
        assert_eq!(
            Reference::parse("registry.example.com:5000/team/app")
                .unwrap()
                .familiar_name(),
            "registry.example.com:5000/team/app"
        );
        assert_eq!(
            Reference::parse("team/app").unwrap().familiar_name(),
            "team/app"
        );
    }

    #[test]
    fn bad_references_are_refused() {
        let bad = [
            "",
            "Python",
            "docker.io/Library/python",
            "../etc",
            "a/../b",
            "a/./b",
            "/abs",
            "abs/",
            "a//b",
            ".hidden",
            "-dash",
            "a_-b",
            "a___b",
            "python:",
            "python:.x",
            "python:-x",
            "python:a/b",
            "python@sha256:abc",
            "python@md5:0123456789abcdef0123456789abcdef",
            "python@",
            "py thon",
            "py\0thon",
            "reg..example.com/app",
            "reg:port/app",
            "reg.example.com:/app",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        for b in bad {
            let r = Reference::parse(b);
            assert!(
                matches!(r, Err(ImageError::InvalidReference { .. })),
                "{b:?} gave {r:?}"
            );
        }
        let long = format!("team/{}", "a".repeat(260));
        assert!(Reference::parse(&long).is_err());
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        // Every accepted reference stays inside the store.
        let store = Path::new("/store");
        for ok in ["python", "a.b/c", "localhost:1/x:y"] {
            let dir = Reference::parse(ok).unwrap().dir_in(store);
            assert!(dir.starts_with(store));
            assert!(!dir
                .components()
                .any(|c| c == std::path::Component::ParentDir));
        }
    }

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn import_resolve_roundtrip() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&tmp.path().join("images"));
        let src = tmp.path().join("src");
        write(&src.join("app/main.py"), "print('hi')\n");
        write(&src.join("bin/tool"), "#!/bin/sh\necho tool\n");
        std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("app/main.py", src.join("link")).unwrap();
        write(
            &src.join("image.json"),
            r#"{"config": {"Entrypoint": ["python3"], "Cmd": ["app/main.py"],
                "Env": ["A=1", "B=2"], "WorkingDir": "/app"}, "architecture": "amd64"}"#,
        );

        let err = store.resolve("myapp:v1").unwrap_err();
        assert!(matches!(err, ImageError::NotFound(_)));
        assert!(
            err.to_string().contains("concord-agent image import"),
            "{err}"
        );
        assert_eq!(err.reason(), "ErrImagePull");

        let env = vec![
            ("B".to_string(), "3".to_string()),
            ("C".to_string(), "x=y".to_string()),
        ];
        let imported = store
            .import("myapp:v1", Some(&src), None, None, &env, None)
            .unwrap();
        let got = store.resolve("docker.io/library/myapp:v1").unwrap();
        assert_eq!(imported, got);
        assert_eq!(got.reference, "docker.io/library/myapp:v1");
        assert!(
            got.id.starts_with("sha256:") && got.id.len() == 71,
            "{}",
            got.id
        );
        assert!(got.root.is_absolute());
        assert_eq!(
            got.root,
            tmp.path()
                .join("images/docker.io/library/myapp:v1/rootfs")
                .canonicalize()
                .unwrap()
        );
        assert_eq!(got.entrypoint, vec!["python3"]);
        assert_eq!(got.cmd, vec!["app/main.py"]);
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        assert_eq!(got.env, vec![kv("A", "1"), kv("B", "3"), kv("C", "x=y")]);
        assert_eq!(got.working_dir, Some(got.root.join("app")));
        // The files, their modes and links; image.json is not among them.
        assert_eq!(
            std::fs::read_to_string(got.root.join("app/main.py")).unwrap(),
            "print('hi')\n"
        );
        let mode = std::fs::metadata(got.root.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read_link(got.root.join("link")).unwrap(),
            Path::new("app/main.py")
        );
        assert!(!got.root.join("image.json").exists());

        // The id is that of the content: the same import gives the same id, other files another.
        let again = store
            .import("myapp:v2", Some(&src), None, None, &env, None)
            .unwrap();
        assert_eq!(again.id, got.id);
        write(&src.join("app/main.py"), "print('bye')\n");
        let changed = store
            .import("myapp:v3", Some(&src), None, None, &env, None)
            .unwrap();
        assert_ne!(changed.id, got.id);

        // By digest: the image of the repository with that id.
        let by_digest = store.resolve(&format!("myapp@{}", got.id)).unwrap();
        assert_eq!(by_digest.root, got.root);
        assert_eq!(
            by_digest.reference,
            format!("docker.io/library/myapp@{}", got.id)
        );
        assert_eq!(by_digest.id, got.id);
        assert!(matches!(
            store.resolve(&format!("other@{}", got.id)),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            store.import(&format!("myapp@{}", got.id), None, None, None, &[], None),
            Err(ImageError::Usage(_))
        ));

        // An image of the machine's programs: no files; flags override, an entrypoint clears Cmd.
        let host = store
            .import(
                "python",
                None,
                Some(vec!["python3".into()]),
                None,
                &[],
                Some("/tmp"),
            )
            .unwrap();
        assert_eq!(host.reference, "docker.io/library/python:latest");
        assert_eq!(std::fs::read_dir(&host.root).unwrap().count(), 0);
        assert_eq!(host.entrypoint, vec!["python3"]);
        assert!(host.cmd.is_empty());
        assert_eq!(host.working_dir, Some(PathBuf::from("/tmp")));
        let from_image = store
            .import(
                "myapp:v4",
                Some(&src),
                Some(vec!["sh".into()]),
                None,
                &[],
                Some("bin"),
            )
            .unwrap();
        assert!(from_image.cmd.is_empty());
        assert_eq!(from_image.working_dir, Some(from_image.root.join("bin")));

        // Copying an image from a store: its rootfs is what is copied.
        let exported = tmp.path().join("images/docker.io/library/myapp:v1");
        let copy = ImageStore::new(&tmp.path().join("other-store"));
        let copied = copy
            .import("myapp:v1", Some(&exported), None, None, &[], None)
            .unwrap();
        assert_eq!(copied.id, got.id);
        assert!(copied.root.join("app/main.py").is_file());
    }

    #[test]
    fn broken_image_json_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path());
        let dir = tmp.path().join("docker.io/library/bad:latest");
        write(&dir.join("image.json"), "{not json");
        std::fs::create_dir(dir.join("rootfs")).unwrap();
        let err = store.resolve("bad").unwrap_err();
        assert!(matches!(err, ImageError::Invalid { .. }), "{err}");
        assert_eq!(err.reason(), "ImageInspectError");
        write(
            &dir.join("image.json"),
            r#"{"config": {"Env": ["NOEQUALS"]}}"#,
        );
        assert!(matches!(
            store.resolve("bad"),
            Err(ImageError::Invalid { .. })
        ));
        // A hand-made image works.
        write(&dir.join("image.json"), r#"{"config": {"Cmd": ["true"]}}"#);
        let ok = store.resolve("bad").unwrap();
        assert_eq!(ok.cmd, vec!["true"]);
        assert!(ok.entrypoint.is_empty());
        assert_eq!(
            store.resolve("Bad").unwrap_err().reason(),
            "InvalidImageName"
        );
    }

    #[test]
    fn replacing_a_tag_is_atomic() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&tmp.path().join("images"));
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        for i in 0..50 {
            write(&a.join(format!("f{i}")), "a");
            write(&b.join(format!("f{i}")), "b");
        }
        let first = store
            .import("app:v1", Some(&a), None, None, &[], None)
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let store = store.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut checks = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Always a whole image: all of one import's files.
                    let image = store.resolve("app:v1").expect("the tag always resolves");
                    // Read through the directory opened once, as a process started in it would.
                    let mut contents = std::collections::BTreeSet::new();
                    if let Ok(dir) = std::fs::File::open(&image.root) {
                        use std::os::fd::AsRawFd;
                        let through = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
                        for i in 0..50 {
                            if let Ok(c) = std::fs::read_to_string(through.join(format!("f{i}"))) {
                                contents.insert(c);
                            }
                        }
                    }
                    assert!(contents.len() <= 1, "a mixed image: {contents:?}");
                    checks += 1;
                }
                checks
            })
        };
        let mut last = first.clone();
        for i in 0..20 {
            let src = if i % 2 == 0 { &b } else { &a };
            last = store
                .import("app:v1", Some(src), None, None, &[], None)
                .unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let checks = reader.join().expect("the reader saw whole images only");
        assert!(checks > 0);
        assert_eq!(last.id, first.id, "20 imports end with a's files");
        assert_eq!(store.list().unwrap().len(), 1);
        // No temporary directories are left.
        let tmp_dir = tmp.path().join("images/.tmp");
        assert_eq!(std::fs::read_dir(tmp_dir).unwrap().count(), 0);
    }

    #[test]
    fn list_and_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(&tmp.path().join("images"));
        assert!(store.list().unwrap().is_empty());
        let src = tmp.path().join("src");
        write(&src.join("data"), &"x".repeat(1500));
        store
            .import(
                "python",
                None,
                Some(vec!["python3".into()]),
                None,
                &[],
                None,
            )
            .unwrap();
        let app = store
            .import(
                "registry.example.com:5000/team/app:v2",
                Some(&src),
                None,
                None,
                &[],
                None,
            )
            .unwrap();
        store
            .import(
                "registry.example.com:5000/team/app:v3",
                Some(&src),
                None,
                None,
                &[],
                None,
            )
            .unwrap();
        let list = store.list().unwrap();
        let refs: Vec<&str> = list.iter().map(|i| i.reference.as_str()).collect();
        assert_eq!(
            refs,
            [
                "docker.io/library/python:latest",
                "registry.example.com:5000/team/app:v2",
                "registry.example.com:5000/team/app:v3"
            ]
        );
        assert_eq!(list[1].repository, "registry.example.com:5000/team/app");
        assert_eq!(list[1].tag.as_deref(), Some("v2"));
        assert_eq!(list[1].size, 1500);
        assert_eq!(list[0].size, 0);

        let out = run(&store, ImageCommand::List).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("REPOSITORY"));
        assert!(
            lines[0].contains("TAG") && lines[0].contains("IMAGE ID") && lines[0].ends_with("SIZE")
        );
        assert!(lines[1].starts_with("python "), "{out}");
        assert!(
            lines[2].contains(&app.id[7..19]) && lines[2].ends_with("1.5kB"),
            "{out}"
        );

        // By digest: every tag with that id.
        let out = run(
            &store,
            ImageCommand::Rm {
                references: vec![format!("registry.example.com:5000/team/app@{}", app.id)],
            },
        )
        .unwrap();
        assert_eq!(out.matches("Untagged:").count(), 2, "{out}");
        // Empty repository directories are gone too.
        assert!(!tmp.path().join("images/registry.example.com:5000").exists());
        let removed = store.remove("python:latest").unwrap();
        assert_eq!(removed[0].0, "docker.io/library/python:latest");
        assert!(store.list().unwrap().is_empty());
        assert!(matches!(
            store.remove("python"),
            Err(ImageError::NotFound(_))
        ));
        assert!(matches!(
            store.remove("../x"),
            Err(ImageError::InvalidReference { .. })
        ));
    }

    #[test]
    fn cli_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::new(tmp.path());
        let out = run(
            &store,
            ImageCommand::Import {
                reference: "web".into(),
                from: None,
                entrypoint: vec![r#"["python3", "-u"]"#.into()],
                cmd: vec!["-m".into(), "http.server".into()],
                env: vec!["A=b=c".into()],
                workdir: None,
            },
        )
        .unwrap();
        assert!(
            out.starts_with("Imported: docker.io/library/web:latest\nID: sha256:"),
            "{out}"
        );
        let image = store.resolve("web").unwrap();
        assert_eq!(image.entrypoint, vec!["python3", "-u"]);
        assert_eq!(image.cmd, vec!["-m", "http.server"]);
        assert_eq!(image.env, vec![("A".to_string(), "b=c".to_string())]);
        let inspect = run(
            &store,
            ImageCommand::Inspect {
                reference: "web".into(),
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Cmd"][1], "http.server");
        for bad_env in ["NOVALUE", "=x"] {
            let r = run(
                &store,
                ImageCommand::Import {
                    reference: "web".into(),
                    from: None,
                    entrypoint: vec![],
                    cmd: vec![],
                    env: vec![bad_env.into()],
                    workdir: None,
                },
            );
            assert!(matches!(r, Err(ImageError::Usage(_))), "{bad_env}");
        }
        let import = |from: Option<PathBuf>, entrypoint: &str| {
            run(
                &store,
                ImageCommand::Import {
                    reference: "web".into(),
                    from,
                    entrypoint: vec![entrypoint.into()],
                    cmd: vec![],
                    env: vec![],
                    workdir: None,
                },
            )
        };
        assert!(matches!(import(None, "[1]"), Err(ImageError::Usage(_))));
        assert!(matches!(
            import(Some(tmp.path().join("missing")), "x"),
            Err(ImageError::Io { .. })
        ));
        let file = tmp.path().join("file");
        write(&file, "");
        assert!(matches!(import(Some(file), "x"), Err(ImageError::Usage(_))));
        // '' clears the entrypoint.
        assert!(import(None, "").unwrap().contains("Imported"));
        assert!(store.resolve("web").unwrap().entrypoint.is_empty());
        // Clap parses the subcommand as documented.
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(subcommand)]
            cmd: ImageCommand,
        }
        use clap::Parser;
        let cli = Cli::try_parse_from([
            "image",
            "import",
            "x",
            "--entrypoint",
            "python3",
            "--cmd",
            "-m",
            "--cmd",
            "http.server",
            "--env",
            "K=V",
        ])
        .unwrap();
        match cli.cmd {
            ImageCommand::Import {
                entrypoint,
                cmd,
                env,
                ..
            } => {
                assert_eq!(entrypoint, ["python3"]);
                assert_eq!(cmd, ["-m", "http.server"]);
                assert_eq!(env, ["K=V"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["image", "rm"]).is_err());
        assert!(Cli::try_parse_from(["image", "ls"]).is_ok());
    }

    #[test]
    fn sizes_as_docker_shows_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(72_830_000), "72.8MB");
        assert_eq!(human_size(1_020_000_000), "1.02GB");
        assert_eq!(human_size(999_999), "1MB");
    }
}
