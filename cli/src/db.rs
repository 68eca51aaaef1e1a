//! The `rustchain db` commands: backup, restore, check and compact a node's database, offline or
//! (backup) through the running node's admin API. The operations themselves are the node's
//! (`rustchain_node::store::ops`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use protocol::ChainSpec;
use rustchain_node::config::{self, NodeArgs, NodeConfig};
use rustchain_node::store::ops::{OpenFailure, check, compact, open_guarded, parent, restore, snapshot, sync_dir};


/// Where the database is: `--data-dir` (or `--config`, or the environment, as for `node`).
#[derive(Debug, Clone, clap::Args)]
pub struct Location {
    /// Node config file (its data_dir and spec are used).
    #[arg(long, env = "RUSTCHAIN_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The node's data dir. [default: ./rustchain-data]
    #[arg(long, env = "RUSTCHAIN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Chain spec, to check the network and verify record signatures. [default: the built-in spec
    /// the database names, if any]
    #[arg(long, env = "RUSTCHAIN_SPEC", value_name = "NAME|FILE")]
    pub spec: Option<String>,
}

impl Location {
    fn resolve(&self) -> anyhow::Result<NodeConfig> {
        NodeConfig::resolve(&NodeArgs { config: self.config.clone(), data_dir: self.data_dir.clone(), spec: self.spec.clone(), ..Default::default() })
    }

    /// The chain spec when one was given (flag, environment or config file); else `check` uses
    /// the built-in spec the database names.
    fn given_spec(&self, cfg: &NodeConfig) -> anyhow::Result<Option<ChainSpec>> {
        if self.spec.is_some() || self.config.is_some() { Ok(Some(cfg.load_spec()?)) } else { Ok(None) }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum DbCommand {
    /// Write a consistent snapshot to a file. With --node, the running node takes it (online);
    /// without, the database file is opened directly (the node must be stopped).
    Backup {
        #[command(flatten)]
        loc: Location,
        /// Running node's HTTP API, e.g. http://127.0.0.1:8099 (needs the admin key).
        #[arg(long, value_name = "URL")]
        node: Option<String>,
        /// File holding the admin key (first line; not readable by every user); or set
        /// RUSTCHAIN_ADMIN_KEY to the key itself.
        #[arg(long, env = "RUSTCHAIN_ADMIN_KEY_FILE", value_name = "FILE")]
        admin_key_file: Option<PathBuf>,
        /// Where to write the backup; refuses to overwrite.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// gzip-compress (also implied by an --out ending in .gz).
        #[arg(long)]
        compress: bool,
    },
    /// Replace the data dir's database with a backup (plain or gzip). The node must be stopped.
    Restore {
        #[command(flatten)]
        loc: Location,
        /// The backup file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Verify page checksums, schema and data consistency. Exit code 0: consistent; 1: corrupt or
    /// inconsistent; 2: could not check (missing, or in use by a running node).
    Check {
        #[command(flatten)]
        loc: Location,
        /// Check this file (a database or a backup) instead of the data dir's database.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Compact the database file (reclaims free pages). The node must be stopped.
    Compact {
        #[command(flatten)]
        loc: Location,
    },
    /// Rebuild the read indexes derived from other tables (the miners' epoch index of the history
    /// API) from scratch. The node must be stopped.
    Reindex {
        #[command(flatten)]
        loc: Location,
    },
}

/// Run a `rustchain db` command; returns the process exit code.
pub fn run_command(cmd: DbCommand) -> anyhow::Result<i32> {
    match cmd {
        DbCommand::Backup { loc, node, admin_key_file, out, compress } => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite it", out.display());
            }
            let compress = compress || out.extension().is_some_and(|e| e == "gz");
            let cfg = loc.resolve()?;
            match node {
                Some(url) => online_backup(&url, admin_key_file.as_deref(), &out, compress)?,
                None => {
                    let db = open_guarded(&cfg.db_path()).map_err(|e| match e {
                        OpenFailure::InUse => anyhow::anyhow!("{e}"),
                        e => anyhow::anyhow!("{}: {e}", cfg.db_path().display()),
                    })?;
                    snapshot(&db, &out, compress)?;
                }
            }
            let spec = loc.given_spec(&cfg)?;
            let outcome = check(&out, spec.as_ref());
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            if !outcome.ok {
                eprintln!("the backup was written but does NOT pass the check");
            }
            Ok(outcome.exit_code)
        }
        DbCommand::Restore { loc, from } => {
            let cfg = loc.resolve()?;
            let spec = loc.given_spec(&cfg)?;
            let aside = restore(&from, &cfg.data_dir, spec.as_ref())?;
            println!("restored {} into {}", from.display(), cfg.db_path().display());
            if !aside.as_os_str().is_empty() {
                println!("the previous database is kept as {}", aside.display());
            }
            Ok(0)
        }
        DbCommand::Check { loc, file } => {
            let cfg = loc.resolve()?;
            let spec = loc.given_spec(&cfg)?;
            let path = file.unwrap_or_else(|| cfg.db_path());
            let outcome = check(&path, spec.as_ref());
            println!("{}", serde_json::to_string_pretty(&outcome)?);
            Ok(outcome.exit_code)
        }
        DbCommand::Reindex { loc } => {
            let cfg = loc.resolve()?;
            let db = open_guarded(&cfg.db_path()).map_err(|e| match e {
                OpenFailure::InUse => anyhow::anyhow!("{e}"),
                e => anyhow::anyhow!("{}: {e}", cfg.db_path().display()),
            })?;
            let started = std::time::Instant::now();
            for (index, rows) in rustchain_node::store::reindex(&db)? {
                println!("rebuilt {index}: {rows} rows");
            }
            println!("reindexed {} in {:.1}s", cfg.db_path().display(), started.elapsed().as_secs_f64());
            Ok(0)
        }
        DbCommand::Compact { loc } => {
            let cfg = loc.resolve()?;
            let (before, after) = compact(&cfg.db_path())?;
            println!("compacted {}: {before} -> {after} bytes", cfg.db_path().display());
            Ok(0)
        }
    }
}

fn online_backup(url: &str, admin_key_file: Option<&Path>, out: &Path, compress: bool) -> anyhow::Result<()> {
    let env_key = std::env::var(config::ADMIN_KEY_ENV).ok().map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
    let key = match (admin_key_file, env_key) {
        (Some(f), _) => config::read_admin_key_file(f)?,
        (None, Some(k)) => k,
        (None, None) => bail!("an online backup needs the admin key: --admin-key-file FILE or RUSTCHAIN_ADMIN_KEY"),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let endpoint = format!("{}/admin/backup?compress={}", url.trim_end_matches('/'), if compress { "gzip" } else { "none" });
        let mut resp = reqwest::Client::new()
            .post(&endpoint)
            .header("x-admin-key", key)
            .send()
            .await
            .with_context(|| format!("contacting {url}"))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().await.unwrap_or_default();
            bail!("the node refused the backup ({status}): {body}");
        }
        let partial = out.with_extension("partial");
        let mut f = BufWriter::new(File::create(&partial).with_context(|| format!("creating {}", partial.display()))?);
        let res: anyhow::Result<()> = async {
            while let Some(chunk) = resp.chunk().await? {
                f.write_all(&chunk)?;
            }
            f.flush()?;
            f.get_ref().sync_all()?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            let _ = std::fs::remove_file(&partial);
            return Err(e.context("downloading the backup"));
        }
        std::fs::rename(&partial, out)?;
        sync_dir(parent(out));
        Ok(())
    })
}
