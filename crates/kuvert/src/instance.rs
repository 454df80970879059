//! Opening an instance: data directory, master key, store. The server and every admin
//! command start here, so they always see the same data.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use kuvert_core::SystemClock;
use kuvert_dns::Dns;
use kuvert_store::{Store, StoreOptions};

use crate::config::Config;

pub struct Instance {
    pub config: Config,
    pub store: Store,
    pub data_dir: std::path::PathBuf,
}

impl Instance {
    pub async fn open(
        data_dir: &Path,
        database_url: Option<&str>,
        mut config: Config,
    ) -> Result<Self> {
        if let Some(url) = database_url {
            config.database.url = url.to_owned();
        }
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let master_key = master_key(&config.master_key_file(data_dir))?;
        let url = if config.database.url.is_empty() {
            StoreOptions::sqlite_url(data_dir)
        } else {
            config.database.url.clone()
        };
        let store = Store::open(StoreOptions {
            url,
            master_key,
            clock: Arc::new(SystemClock),
        })
        .await
        .context("cannot open the database")?;
        Ok(Self {
            config,
            store,
            data_dir: data_dir.to_owned(),
        })
    }

    /// This node's name in delivery leases, kept in the data directory: a restarted node
    /// knows its old leases, and nodes sharing PostgreSQL tell theirs apart.
    /// The acceptor every entrance (HTTP, SMTP, notices, the CLI) hands messages to.
    pub fn acceptor(&self) -> kuvert_submit::Acceptor {
        kuvert_submit::Acceptor::new(
            self.store.clone(),
            self.config.submission_limits(),
            self.config.plan_limits(),
        )
    }

    /// Kuvert's own mail to account holders, from the system account.
    pub async fn notices(&self) -> Result<kuvert_admin::notices::Notices> {
        Ok(kuvert_admin::notices::Notices::open(
            &self.store,
            self.acceptor(),
            &self.config.notices_from(),
            &self.config.domain_settings(),
        )
        .await?)
    }

    pub fn node_id(&self) -> Result<String> {
        let path = self.data_dir.join("node-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            let id = id.trim().to_owned();
            if !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Ok(id);
            }
        }
        let id = kuvert_core::lookup::hex(&rand::random::<[u8; 8]>());
        std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(id)
    }

    pub fn dns(&self) -> Result<Dns> {
        Ok(Dns::new(
            &self.config.nameservers()?,
            kuvert_dns::Caching::Off,
        )?)
    }
}

fn parse_hex_key(text: &str) -> Result<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("a master key is 64 hex digits (32 bytes)");
    }
    let mut key = [0u8; 32];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("checked hex");
    }
    Ok(key)
}

/// `KUVERT_MASTER_KEY`, else the key file, created with mode 0600 on first start.
fn master_key(file: &Path) -> Result<[u8; 32]> {
    if let Ok(hex) = std::env::var("KUVERT_MASTER_KEY") {
        return parse_hex_key(&hex).context("KUVERT_MASTER_KEY");
    }
    let mut fresh = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut fresh);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(mut f) => {
            f.write_all(kuvert_core::lookup::hex(&fresh).as_bytes())?;
            f.sync_all()?;
            tracing::info!(file = %file.display(), "created a new master key: back it up, data sealed under it is unreadable without it");
            Ok(fresh)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            parse_hex_key(&text).with_context(|| file.display().to_string())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", file.display())),
    }
}
