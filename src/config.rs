//! Configuration shared by the commands: where the data lives and the HMAC secret.
//! Every flag can also be set through its `CREDIT_HUB_*` environment variable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use rand::RngCore;

use crate::domain::grading::{Model, ModelError, ModelSet};
use crate::domain::ids::PersonKeyer;
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
        let mut best: Option<VettingPolicy> = None;
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
            if best.as_ref().is_none_or(|b| policy.version() > b.version()) {
                best = Some(policy);
            }
        }
        best.with_context(|| format!("no vetting policy (*.toml) in {}", dir.display()))
    }

    /// Opens the configured database (not migrating it), grading with the configured
    /// models.
    pub async fn open_store(&self) -> anyhow::Result<Store> {
        let models = self.models()?;
        Ok(match &self.database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Store::open_postgres(url, 16)
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
        } else if self.database_url.is_none() {
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
        let text = if let Some(file) = &self.audit_key_file {
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read audit key file {}", file.display()))?
        } else if self.database_url.is_none() {
            let path = self.data_dir.join("audit-signing.key");
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(_) => {
                    std::fs::create_dir_all(&self.data_dir)?;
                    let key = hex::encode(crate::audit::random_key().to_bytes());
                    write_private(&path, &key)?;
                    key
                }
            }
        } else {
            bail!("with PostgreSQL, set --audit-key-file (CREDIT_HUB_AUDIT_KEY_FILE) to the audit signing key on every replica");
        };
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .context("the audit signing key must be 64 hex characters (an Ed25519 secret key)")?;
        Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
    }

    /// The public key audit verification trusts, if a signing key is configured or
    /// present; never generates one.
    pub fn audit_public_key(&self) -> anyhow::Result<Option<String>> {
        let present = self.audit_key_file.is_some()
            || (self.database_url.is_none() && self.data_dir.join("audit-signing.key").exists());
        Ok(if present {
            Some(crate::audit::public_key_hex(&self.audit_key()?))
        } else {
            None
        })
    }
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
    let mut models = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
        models.push(Model::parse(&path.display().to_string(), &text)?);
    }
    ModelSet::new(models)
}

/// Reads `data_dir/hmac.key`, creating it with a random key readable only by the owner.
fn local_key(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    let path = data_dir.join("hmac.key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = hex::encode(bytes);
    write_private(&path, &key)?;
    Ok(key.into_bytes())
}

/// Writes a file only its owner can read.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    Ok(())
}
