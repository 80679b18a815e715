//! Configuration shared by the commands: where the data lives and the HMAC secret.
//! Every flag can also be set through its `CREDIT_HUB_*` environment variable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::RngCore;

use crate::api::certificates::{key_fingerprint, CertificateSettings};
use crate::domain::certificate::Issuer;
use crate::domain::grading::{Model, ModelError, ModelSet};
use crate::domain::ids::PersonKeyer;
use crate::domain::repair::{RepairPolicy, WorkCalendar};
use crate::domain::vetting::VettingPolicy;
use crate::store::Store;

/// Where the database is and how persons are keyed.
#[derive(clap::Args, Clone)]
pub struct StorageArgs {
    /// Directory of the embedded SQLite database (and, in SQLite mode, the generated
    /// HMAC key file `hmac.key`).
    #[arg(long, env = "CREDIT_HUB_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// PostgreSQL URL (`postgres://user:pass@host/db`); when set it is used instead of
    /// the SQLite file.
    #[arg(long, env = "CREDIT_HUB_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the PostgreSQL URL (e.g. a mounted Kubernetes secret), instead of
    /// --database-url.
    #[arg(
        long,
        env = "CREDIT_HUB_DATABASE_URL_FILE",
        conflicts_with = "database_url"
    )]
    pub database_url_file: Option<PathBuf>,

    /// Secret for person keys (HMAC-SHA256 of ID numbers), at least 16 characters.
    /// Never stored in the database. Required with PostgreSQL unless a key file is given.
    #[arg(long, env = "CREDIT_HUB_HMAC_KEY", hide_env_values = true)]
    pub hmac_key: Option<String>,

    /// File holding the person-key secret (e.g. a mounted Kubernetes secret).
    #[arg(long, env = "CREDIT_HUB_HMAC_KEY_FILE")]
    pub hmac_key_file: Option<PathBuf>,

    /// File holding the Ed25519 key (64 hex characters) that signs audit-log checkpoints
    /// (e.g. a mounted Kubernetes secret). Without it, SQLite mode generates
    /// `audit-signing.key` in the data directory; PostgreSQL requires it.
    #[arg(long, env = "CREDIT_HUB_AUDIT_KEY_FILE")]
    pub audit_key_file: Option<PathBuf>,

    /// Directory of grading models (`*.toml`). Default: `./models` if it exists, else
    /// the models compiled into the binary. A bad model file stops startup.
    #[arg(long, env = "CREDIT_HUB_MODELS_DIR")]
    pub models_dir: Option<PathBuf>,
}

impl std::fmt::Debug for StorageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "[REDACTED]"),
            )
            .field("hmac_key", &self.hmac_key.as_ref().map(|_| "[REDACTED]"))
            .field("hmac_key_file", &self.hmac_key_file)
            .field("audit_key_file", &self.audit_key_file)
            .field("models_dir", &self.models_dir)
            .finish()
    }
}

impl StorageArgs {
    /// Storage settings for a SQLite data directory (tests and tools).
    pub fn sqlite(data_dir: &Path) -> Self {
        StorageArgs {
            data_dir: data_dir.to_path_buf(),
            database_url: None,
            database_url_file: None,
            hmac_key: None,
            hmac_key_file: None,
            audit_key_file: None,
            models_dir: None,
        }
    }

    /// The grading models: from `--models-dir`, else `./models` if present, else the
    /// shipped ones. Errors name the file, line and reason.
    pub fn models(&self) -> anyhow::Result<ModelSet> {
        let dir = match &self.models_dir {
            Some(dir) => dir.clone(),
            None if Path::new("models").is_dir() => PathBuf::from("models"),
            None => return Ok(ModelSet::builtin()),
        };
        load_models(&dir).map_err(|e| anyhow::anyhow!("invalid grading model: {e}"))
    }

    /// The vetting policy: the highest `version` among `<models dir>/vetting/*.toml`
    /// (older versions may stay beside it for reference), else the shipped one. A bad
    /// file stops startup naming the file, line and reason.
    pub fn vetting_policy(&self) -> anyhow::Result<VettingPolicy> {
        let dir = match &self.models_dir {
            Some(dir) => dir.join("vetting"),
            None => PathBuf::from("models/vetting"),
        };
        if !dir.is_dir() {
            return Ok(VettingPolicy::builtin());
        }
        let mut best: Option<(VettingPolicy, PathBuf)> = None;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let policy = VettingPolicy::parse(&text)
                .map_err(|e| anyhow::anyhow!("invalid vetting policy {}: {e}", path.display()))?;
            let order = best
                .as_ref()
                .map(|(b, _)| VettingPolicy::compare_versions(policy.version(), b.version()));
            match order {
                None | Some(std::cmp::Ordering::Greater) => best = Some((policy, path)),
                Some(std::cmp::Ordering::Equal) => bail!(
                    "vetting policies {} and {} both have version {}: every change needs a new one",
                    best.as_ref().expect("compared").1.display(),
                    path.display(),
                    policy.version()
                ),
                Some(std::cmp::Ordering::Less) => {}
            }
        }
        best.map(|(policy, _)| policy)
            .with_context(|| format!("no vetting policy (*.toml) in {}", dir.display()))
    }

    /// Whether a PostgreSQL URL is configured (directly or in a file).
    pub fn uses_postgres(&self) -> bool {
        self.database_url.is_some() || self.database_url_file.is_some()
    }

    /// The PostgreSQL URL, from --database-url or the file --database-url-file names.
    pub fn postgres_url(&self) -> anyhow::Result<Option<String>> {
        match (&self.database_url, &self.database_url_file) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(file)) => Ok(Some(
                std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read database URL file {}", file.display()))?
                    .trim()
                    .to_string(),
            )),
            (None, None) => Ok(None),
        }
    }

    /// Opens the configured database (not migrating it), grading with the configured
    /// models.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        self.open_store_bounded(None).await
    }

    /// Opens the configured database for a command that works on an existing service
    /// (agencies, audit verification, regrading): refused, creating nothing, when the
    /// SQLite file is not there or the schema is not migrated, so a mistyped
    /// `--data-dir` is said to be one instead of becoming a new empty database.
    pub async fn open_existing_store(&self) -> anyhow::Result<Store> {
        if !self.uses_postgres() {
            let file = self.data_dir.join("credit-hub.db");
            if !file.is_file() {
                bail!(
                    "no credit-hub database in {} (no credit-hub.db there): give the \
                     server's --data-dir (CREDIT_HUB_DATA_DIR), or create one with \
                     `credit-hub migrate`",
                    self.data_dir.display()
                );
            }
        }
        let store = self.open_store().await?;
        if !store.is_migrated().await? {
            bail!(
                "the database is not migrated to this version of credit-hub: run \
                 `credit-hub migrate` with the same storage flags first"
            );
        }
        Ok(store)
    }

    /// [`StorageArgs::open_store`], each PostgreSQL statement bounded by
    /// `statement_timeout` (SQLite statements are bounded by the call's deadline).
    pub async fn open_store_bounded(
        &self,
        statement_timeout: Option<std::time::Duration>,
    ) -> anyhow::Result<Store> {
        let models = self.models()?;
        Ok(match &self.postgres_url()? {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::open_postgres_bounded(url, 16, statement_timeout)
                    .await
                    .context("cannot connect to PostgreSQL")?
            }
            Some(_) => bail!("--database-url must be a postgres:// URL"),
            None => Store::open_sqlite(&self.data_dir)
                .await
                .with_context(|| format!("cannot open SQLite in {}", self.data_dir.display()))?,
        }
        .with_models(models))
    }

    /// The person keyer: from the flag, the key file, or (SQLite only) a key generated
    /// once into the data directory.
    pub fn keyer(&self) -> anyhow::Result<PersonKeyer> {
        let secret = if let Some(key) = &self.hmac_key {
            key.clone().into_bytes()
        } else if let Some(file) = &self.hmac_key_file {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read HMAC key file {}", file.display()))?
                .trim()
                .as_bytes()
                .to_vec()
        } else if !self.uses_postgres() {
            local_key(&self.data_dir)?
        } else {
            bail!("with PostgreSQL, set --hmac-key or --hmac-key-file (CREDIT_HUB_HMAC_KEY[_FILE]) on every replica");
        };
        if secret.len() < 16 {
            bail!("the HMAC key must be at least 16 characters");
        }
        Ok(PersonKeyer::new(secret))
    }
}

impl StorageArgs {
    /// The key that signs audit checkpoints: from `--audit-key-file`, or (SQLite only)
    /// generated once into the data directory.
    pub fn audit_key(&self) -> anyhow::Result<ed25519_dalek::SigningKey> {
        self.signing_key(
            self.audit_key_file.as_deref(),
            "audit-signing.key",
            "--audit-key-file (CREDIT_HUB_AUDIT_KEY_FILE)",
            "audit signing key",
        )
    }

    /// An Ed25519 signing key (64 hex characters) read from `file`, or (SQLite only)
    /// generated once into `generated` in the data directory. `flag` and `what` name it
    /// in errors.
    pub fn signing_key(
        &self,
        file: Option<&Path>,
        generated: &str,
        flag: &str,
        what: &str,
    ) -> anyhow::Result<ed25519_dalek::SigningKey> {
        let text = if let Some(file) = file {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the {what} file {}", file.display()))?
        } else if !self.uses_postgres() {
            let path = self.data_dir.join(generated);
            read_or_create_private(&path, || hex::encode(crate::audit::random_key().to_bytes()))?
        } else {
            bail!("with PostgreSQL, set {flag} to the {what} on every replica");
        };
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .with_context(|| {
                format!("the {what} must be 64 hex characters (an Ed25519 secret key)")
            })?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
    }

    /// The public key audit verification trusts, if a signing key is configured or
    /// present; never generates one.
    pub fn audit_public_key(&self) -> anyhow::Result<Option<String>> {
        let present = self.audit_key_file.is_some()
            || (!self.uses_postgres() && self.data_dir.join("audit-signing.key").exists());
        Ok(if present {
            Some(crate::audit::public_key_hex(&self.audit_key()?))
        } else {
            None
        })
    }
}

/// How certificates are signed and presented.
#[derive(clap::Args, Clone, Debug)]
pub struct CertificateArgs {
    /// File holding the Ed25519 key (64 hex characters) that signs certificates (e.g. a
    /// mounted Kubernetes secret). Without it, SQLite mode generates `cert-signing.key`
    /// in the data directory; PostgreSQL requires it. To rotate, point this at a new
    /// key: new certificates use it, older ones keep verifying with the retired key.
    #[arg(long, env = "CREDIT_HUB_CERT_KEY_FILE")]
    pub cert_key_file: Option<PathBuf>,

    /// Id of the signing key, as certificates and ListIssuerKeys name it (default:
    /// derived from the public key). A new key needs a new id.
    #[arg(long, env = "CREDIT_HUB_CERT_KEY_ID")]
    pub cert_key_id: Option<String>,

    /// The issuer's id (a URL or DID) written into every certificate; key ids are its
    /// fragments (`{issuer}#{key id}`).
    #[arg(
        long,
        env = "CREDIT_HUB_CERT_ISSUER",
        default_value = "did:web:credit-hub.localhost"
    )]
    pub cert_issuer: String,

    /// The issuing bureau's name, printed on certificates.
    #[arg(
        long,
        env = "CREDIT_HUB_CERT_ISSUER_NAME",
        default_value = "市场监督管理局（credit-hub）"
    )]
    pub cert_issuer_name: String,

    /// Where relying parties check a certificate's status online, written into its
    /// credentialStatus (the public VerifyCertificate RPC of this service).
    #[arg(
        long,
        env = "CREDIT_HUB_CERT_STATUS_SERVICE",
        default_value = "grpc://127.0.0.1:50051/credithub.v1.CertificateService/VerifyCertificate"
    )]
    pub cert_status_service: String,

    /// Days a new certificate is valid.
    #[arg(long, env = "CREDIT_HUB_CERT_VALIDITY_DAYS", default_value_t = crate::api::certificates::DEFAULT_VALIDITY_DAYS)]
    pub cert_validity_days: u32,

    /// Calls per second per client address of the public RPCs (VerifyCertificate,
    /// ListIssuerKeys, VerifyDraw, ListPublishedResults: no token). Over it:
    /// RESOURCE_EXHAUSTED with RetryInfo.
    #[arg(long, env = "CREDIT_HUB_PUBLIC_RATE_LIMIT", default_value_t = crate::api::certificates::DEFAULT_PUBLIC_RATE)]
    pub public_rate_limit: u32,
}

impl CertificateArgs {
    /// The certificate settings: the key from `--cert-key-file`, or (SQLite only) one
    /// generated once into the data directory.
    pub fn settings(&self, storage: &StorageArgs) -> anyhow::Result<CertificateSettings> {
        let signing_key = storage.signing_key(
            self.cert_key_file.as_deref(),
            "cert-signing.key",
            "--cert-key-file (CREDIT_HUB_CERT_KEY_FILE)",
            "certificate signing key",
        )?;
        let key_id = match &self.cert_key_id {
            Some(id) if is_key_id(id) => id.clone(),
            Some(id) => bail!("--cert-key-id {id:?}: use 1 to 64 letters, digits, '-', '_' or '.'"),
            None => key_fingerprint(&signing_key.verifying_key()),
        };
        if self.cert_validity_days == 0 {
            bail!("--cert-validity-days must be at least 1");
        }
        Ok(CertificateSettings {
            signing_key,
            key_id,
            issuer: Issuer {
                id: self.cert_issuer.clone(),
                name: self.cert_issuer_name.clone(),
                status_service: self.cert_status_service.clone(),
            },
            validity: std::time::Duration::from_secs(u64::from(self.cert_validity_days) * 86_400),
            public_rate: self.public_rate_limit.max(1),
        })
    }
}

fn is_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The credit-repair rules: `policy_file` or the shipped `policies/repair.toml`, and
/// the working-day calendar: every `*.toml` in `calendar_dir` or the shipped
/// `policies/calendar/`. A bad file stops startup naming it and the reason.
pub fn repair_rules(
    policy_file: Option<&Path>,
    calendar_dir: Option<&Path>,
) -> anyhow::Result<(RepairPolicy, WorkCalendar)> {
    let policy = match policy_file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            RepairPolicy::parse(&text)
                .map_err(|e| anyhow::anyhow!("invalid repair policy {}: {e}", file.display()))?
        }
        None => RepairPolicy::builtin(),
    };
    let calendar = match calendar_dir {
        Some(dir) => {
            let mut texts = Vec::new();
            for entry in
                std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|x| x == "toml") {
                    texts.push(
                        std::fs::read_to_string(&path)
                            .with_context(|| format!("cannot read {}", path.display()))?,
                    );
                }
            }
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            WorkCalendar::from_years(&texts)
                .map_err(|e| anyhow::anyhow!("invalid calendar in {}: {e}", dir.display()))?
        }
        None => WorkCalendar::builtin(),
    };
    Ok((policy, calendar))
}

/// Loads every `*.toml` directly in `dir` (not its subfolders) as a grading model.
fn load_models(dir: &Path) -> Result<ModelSet, ModelError> {
    let io = |file: &Path, e: std::io::Error| ModelError {
        file: file.display().to_string(),
        line: 0,
        reason: e.to_string(),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut models: Vec<Model> = Vec::new();
    let mut named_in: std::collections::HashMap<String, PathBuf> = Default::default();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        let model = Model::parse(&path.display().to_string(), &text)?;
        if let Some(first) = named_in.insert(model.name.clone(), path.clone()) {
            // Named at the file's `name = …` line, and the other file named too.
            let line = text
                .lines()
                .position(|l| l.trim_start().starts_with("name"))
                .map_or(1, |i| i + 1);
            return Err(ModelError {
                file: path.display().to_string(),
                line,
                reason: format!(
                    "model name {:?} is already used by {}",
                    model.name,
                    first.display()
                ),
            });
        }
        models.push(model);
    }
    ModelSet::new(models)
}

/// Reads `data_dir/hmac.key`, creating it with a random key readable only by the owner.
fn local_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let key = read_or_create_private(&data_dir.join("hmac.key"), || {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    })?;
    Ok(key.trim().as_bytes().to_vec())
}

/// Reads a generated secret at `path`, or writes `make()` there when the file does not
/// exist yet. A file that exists but cannot be read, or is empty, stops the caller:
/// replacing it would lose the key (every person keyed with an HMAC key that is gone
/// can never be found again). Two processes creating it at once (a server and `agency
/// add` on a new data directory) keep the first one written, whole: each writes and
/// syncs a file of its own and links it into place, which fails if one is there
/// already. Where the file system has no hard links, the file is created exclusively
/// in place instead.
fn read_or_create_private(path: &Path, make: impl FnOnce() -> String) -> anyhow::Result<String> {
    let read = |path: &Path| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if text.trim().is_empty() {
            bail!(
                "{} is empty: restore the key from a backup (a new one would not find what the old one keyed)",
                path.display()
            );
        }
        Ok(text)
    };
    match std::fs::metadata(path) {
        Ok(_) => return read(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = make();
    let mut unique = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut unique);
    let staged = path.with_extension(format!("new-{}", hex::encode(unique)));
    let linked = write_new_private(&staged, &key).and_then(|()| std::fs::hard_link(&staged, path));
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::Unsupported | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            match write_new_private(path, &key) {
                Ok(()) => Ok(key),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
                Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
            }
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// Creates `path` (which must not exist) readable only by its owner, holding
/// `contents`, synced to disk.
fn write_new_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// Writes a file only its owner can read. Written new beside `path` and renamed over
/// it: a file already there keeps none of its permissions, and a symbolic link planted
/// at that name is replaced, never written through.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    replace_file(path, contents.as_bytes(), false)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Writes `bytes` to a new file beside `path` (its owner's alone, or with the
/// permissions of the file it replaces when `keep_permissions`), synced, then renamed
/// over `path`: a failure half-way never leaves a truncated file, and whatever stood at
/// that name (a symbolic link too) is replaced, never written through.
pub fn replace_file(path: &Path, bytes: &[u8], keep_permissions: bool) -> std::io::Result<()> {
    use std::io::Write;
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ));
    };
    // A random name: a process id repeats (1 in every container), and a partial file
    // left by a crash must not stop the next run.
    let partial = path.with_file_name(format!(
        ".{}.partial-{:016x}",
        name.to_string_lossy(),
        rand::random::<u64>()
    ));
    let written = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&partial)?;
        if keep_permissions {
            if let Ok(existing) = std::fs::metadata(path) {
                file.set_permissions(existing.permissions())?;
            }
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_private_file_replaces_what_stood_there_and_is_its_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere.txt");
        std::fs::write(&elsewhere, "public").unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o644)).unwrap();
        let tokens = dir.path().join("demo-tokens.txt");
        std::os::unix::fs::symlink(&elsewhere, &tokens).unwrap();
        write_private(&tokens, "secret").unwrap();
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "public");
        assert!(!std::fs::symlink_metadata(&tokens).unwrap().is_symlink());
        assert_eq!(std::fs::read_to_string(&tokens).unwrap(), "secret");
        let mode = std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A world-readable file there is replaced by one that is not.
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&tokens, "again").unwrap();
        let mode = std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_generated_secret_is_made_once_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("hmac.key");
        let first = read_or_create_private(&path, || "first".into()).unwrap();
        assert_eq!(first, "first");
        let again = read_or_create_private(&path, || "second".into()).unwrap();
        assert_eq!(again, "first", "an existing key is read, not replaced");
        assert_eq!(
            std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
            1,
            "no staged file is left behind"
        );

        // A key file that cannot be read stops the caller; it is kept as it was.
        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        assert!(read_or_create_private(&path, || "third".into()).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), [0xff, 0xfe, 0x00]);
        // So does an empty one (a crash before the key reached the disk).
        std::fs::write(&path, "").unwrap();
        assert!(read_or_create_private(&path, || "fourth".into()).is_err());
        assert!(std::fs::read(&path).unwrap().is_empty());
    }
}
