//! Running the node: open the database, start the network, spawn the tasks (replication,
//! consensus rounds, the settler, anchoring, backups, the HTTP API), and stop them in order on
//! SIGTERM or SIGINT.

pub mod backups;
mod router;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::ChainSpec;
use redb::Database;
use protocol::consensus::{self};
use tokio::sync::{Notify, mpsc, watch};

use crate::anchoring::ergo::{Anchor, ErgoAnchor, NullAnchor};
use crate::config::NodeConfig;
use crate::store::ops::{self, Backups};
use crate::api::limits::{ConnTimeouts, HttpLimits};
use crate::metrics::MetricsBuilder;
use crate::api::nonce::Challenges;
use crate::net::{self, NetConfig};
use crate::net::behaviour::{self, Role, SwarmSettings};
use crate::store::{DbHandle, StoreError};
use crate::store::writer::{Tallies, Writer};
use crate::clock::Clock;
use crate::context::{Counters, Node};
use crate::consensus::settler;
use crate::replication;
use crate::{keys, store};

/// Start the node and run it until SIGTERM or SIGINT.
pub async fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    // Read first, so a missing or unsafe key file stops the start before anything is opened.
    let admin_key = cfg.admin_key()?;
    let mut metrics = MetricsBuilder::new();
    // libp2p's metrics go into the same registry (prefix `libp2p_`), before it is frozen.
    let p2p_metrics = libp2p::metrics::Metrics::new(metrics.registry());
    let (metrics, registry) = metrics.into_shared();

    let spec = cfg.load_spec()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    remove_stale_partials(&cfg.data_dir);
    let key = keys::load_or_create_node_key(&cfg.data_dir)?;
    let clock = Clock;
    let db_path = cfg.db_path();
    let current_epoch = spec.epoch_at(clock.now_unix());
    let db = open_db(&cfg, &spec, current_epoch)?;
    let first_epoch = store::first_epoch(&db)?;
    let tallies = Arc::new(Tallies::load(&db, current_epoch)?);
    tracing::info!(
        network = %spec.network_id, data_dir = %cfg.data_dir.display(), node_key = %hex::encode(key.public()),
        epoch = current_epoch, "database open"
    );
    let reopen_path = db_path.clone();
    let cache = cfg.db_cache_bytes();
    let db = Arc::new(DbHandle::new(db, move || store::open_file_with_cache(&reopen_path, cache)));

    let (writer, writer_handle) = Writer::spawn(db.clone(), spec.clone(), tallies.clone(), metrics.clone(), 8192);
    let backups = Backups::default();
    if let Some(t) = cfg.backup_dir.as_deref().and_then(|d| ops::newest_backup_unix(d, &spec.network_id)) {
        backups.record_success(t);
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let validators = consensus::validator_set(&spec, &key.public()).context("chain spec validators")?;
    let is_validator = validators.contains(&key.public());
    tracing::info!(validators = validators.len(), quorum = consensus::quorum(validators.len()), is_validator, "validator set");

    let (anchor, anchoring) = anchor_backend(&cfg)?;

    let mut net_task = None;
    let (net, net_events, announcements) = if cfg.no_p2p {
        tracing::info!("p2p disabled (--no-p2p): this node neither relays nor syncs");
        (None, None, None)
    } else {
        let settings = SwarmSettings {
            network_id: spec.network_id.clone(),
            role: cfg.role,
            preset: cfg.gossip_preset,
            max_peers: cfg.max_peers,
            heartbeat: Duration::from_millis(cfg.gossip_heartbeat_ms),
        };
        let swarm = behaviour::build_swarm(&key, &settings)?;
        let mut bootnodes = cfg.bootnode_addrs()?;
        for b in &spec.bootnodes {
            let addr = b.parse().with_context(|| format!("chain spec bootnode {b:?}"))?;
            if !bootnodes.contains(&addr) {
                bootnodes.push(addr);
            }
        }
        // A chain spec may list every node of a network, this one included: never dial ourselves.
        let own = *swarm.local_peer_id();
        bootnodes.retain(|a| !matches!(a.iter().last(), Some(libp2p::multiaddr::Protocol::P2p(p)) if p == own));
        let net_cfg = NetConfig { listen: cfg.p2p_addr.clone(), bootnodes, role: cfg.role, history_epochs: cfg.history_epochs };
        let (handle, events, task) = net::start(swarm, net_cfg, spec.clone(), validators.clone(), db.clone(), p2p_metrics, stop_rx.clone())?;
        net_task = Some(task);
        let (ann_tx, ann_rx) = mpsc::channel(65_536);
        tokio::spawn(replication::announcer(handle.clone(), ann_rx));
        tracing::info!(peer_id = %handle.state.local_peer_id, role = cfg.role.as_str(), "p2p started");
        (Some(handle), Some(events), Some(ann_tx))
    };

    let node = Arc::new(Node {
        peer_records: crate::net::budget::peer_budget(),
        challenges: Challenges::new(keys::nonce_secret(&key), spec.nonce_ttl_seconds),
        spec,
        db: db.clone(),
        db_path,
        data_dir: cfg.data_dir.clone(),
        writer,
        key,
        admin_key,
        clock,
        started: Instant::now(),
        first_epoch,
        net: net.clone(),
        announcements,
        history_epochs: cfg.history_epochs,
        validators,
        is_validator,
        rounds: Mutex::new(BTreeMap::new()),
        mismatches: Mutex::new(BTreeMap::new()),
        refused: Mutex::new(std::collections::BTreeSet::new()),
        counters: Counters::default(),
        metrics,
        tallies,
        backups,
        min_peers: cfg.min_peers,
        anchor: anchor.clone(),
        anchor_wake: Notify::new(),
        events: crate::events::Events::default(),
    });
    if node.admin_key.is_none() {
        tracing::info!("no admin key configured: /admin/* answers 503");
    }
    let relay_task = match (net, net_events) {
        (Some(net), Some(events)) => Some(tokio::spawn(router::route(node.clone(), net, events, stop_rx.clone()))),
        _ => None,
    };

    let stopped = |rx: &watch::Receiver<bool>| {
        let mut rx = rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let epochs = tokio::spawn(settler::run(node.clone(), stop_rx.clone()));
    let rounds = tokio::spawn(crate::consensus::run(node.clone(), stop_rx.clone()));
    let healer = tokio::spawn(heal_when_closed(node.clone(), stop_rx.clone()));
    let anchorer = anchoring.then(|| tokio::spawn(crate::anchoring::run(node.clone(), anchor, stop_rx.clone())));
    let backups = cfg.backup_dir.clone().map(|dir| {
        tracing::info!(dir = %dir.display(), every = %cfg.backup_every, keep = cfg.backup_keep, "scheduled backups on");
        tokio::spawn(backups::run_schedule(node.clone(), dir, cfg.backup_every, cfg.backup_keep, stop_rx.clone()))
    });

    let metrics_listener = tokio::net::TcpListener::bind(cfg.metrics_addr)
        .await
        .with_context(|| format!("binding the metrics listener to {}", cfg.metrics_addr))?;
    tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening on /metrics");
    let metrics_server = tokio::spawn(crate::api::metrics::serve(metrics_listener, registry, node.clone(), ConnTimeouts::from_config(&cfg), stopped(&stop_rx)));

    let listener = tokio::net::TcpListener::bind(cfg.http_addr)
        .await
        .with_context(|| format!("binding the HTTP API to {}", cfg.http_addr))?;
    tracing::info!(
        addr = %listener.local_addr()?, header_read_timeout = %cfg.header_read_timeout, idle_timeout = %cfg.idle_timeout,
        "HTTP API listening"
    );
    let limits = HttpLimits::from_config(&cfg);
    let http = tokio::spawn(crate::api::serve(listener, node.clone(), limits, stopped(&stop_rx)));

    let mut writer_handle = writer_handle;
    tokio::select! {
        signal = shutdown_signal() => tracing::info!("{signal} received"),
        res = &mut writer_handle => {
            // Without its writer the node can acknowledge nothing: stop, so the supervisor restarts it.
            tracing::error!(result = ?res, "the database writer stopped unexpectedly; exiting");
            let _ = stop_tx.send(true);
            anyhow::bail!("the database writer stopped unexpectedly");
        }
    }
    tracing::info!("shutting down: no new requests; finishing writes");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), http).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), metrics_server).await;
    let _ = epochs.await;
    let _ = rounds.await;
    if let Some(t) = relay_task {
        let _ = t.await;
    }
    if let Some(t) = net_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let _ = healer.await;
    if let Some(a) = anchorer {
        let _ = a.await;
    }
    if let Some(b) = backups {
        // A backup in progress finishes in its blocking task; the schedule itself stops here.
        let _ = tokio::time::timeout(Duration::from_secs(5), b).await;
    }
    drop(node); // the last writer handle: the writer drains its queue and stops
    let _ = tokio::time::timeout(Duration::from_secs(10), writer_handle).await;
    match tokio::task::spawn_blocking(move || db.close(Duration::from_secs(10))).await {
        Ok(Ok(())) => tracing::info!("database closed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "database not closed cleanly (it recovers on the next start)"),
        Err(e) => tracing::warn!(error = %e, "closing the database failed"),
    }
    tracing::info!("stopped cleanly");
    Ok(())
}

/// The anchoring backend, and whether this node anchors (the primary, with an Ergo node and its
/// API key). Every node with an Ergo URL can verify anchors.
fn anchor_backend(cfg: &NodeConfig) -> anyhow::Result<(Arc<dyn Anchor>, bool)> {
    let primary = cfg.role == Role::Primary;
    let Some(url) = &cfg.ergo_url else {
        if primary {
            tracing::info!("anchoring off: no --ergo-url (certified hashes are not anchored on Ergo)");
        }
        return Ok((Arc::new(NullAnchor), false));
    };
    let key = cfg.ergo_api_key()?;
    let mut ergo = ErgoAnchor::new(url.clone(), key.clone().unwrap_or_default());
    ergo.pay_to_address = cfg.ergo_address.clone();
    let anchoring = match (primary, key.is_some()) {
        (true, true) => true,
        (true, false) => {
            tracing::warn!(ergo_url = %url, "no --ergo-api-key-file: this primary verifies anchors but cannot anchor");
            false
        }
        (false, _) => false,
    };
    tracing::info!(ergo_url = %url, anchoring, "Ergo node configured");
    Ok((Arc::new(ergo), anchoring))
}

/// Ask the writer to reopen the database when a storage failure left it closed and no write
/// came along to do it.
async fn heal_when_closed(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        if node.db.is_closed() {
            node.writer.heal().await;
        }
    }
}

/// Temporary files of snapshots that a crash interrupted.
fn remove_stale_partials(dir: &Path) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') && (name.ends_with(".partial") || name.ends_with(".tmp")) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn open_db(cfg: &NodeConfig, spec: &ChainSpec, epoch: u64) -> anyhow::Result<Database> {
    let path = cfg.db_path();
    let opened = {
        let (p, s, cache) = (path.clone(), spec.clone(), cfg.db_cache_bytes());
        std::panic::catch_unwind(move || store::open(&p, &s, epoch, cache))
    };
    let err = match opened {
        Ok(Ok(db)) => return Ok(db),
        Ok(Err(e @ (StoreError::Schema { .. } | StoreError::Network { .. }))) => return Err(anyhow::anyhow!("{e}")),
        // Not damage: another process holds it. Restoring or moving it aside would lose data.
        Ok(Err(StoreError::Db(redb::Error::DatabaseAlreadyOpen))) => anyhow::bail!(
            "the database at {} is in use by another process (another `rustchain node` on this --data-dir?): \
             stop that one first, or give this node its own --data-dir. Nothing was changed.",
            path.display()
        ),
        Ok(Err(e)) => e.to_string(),
        Err(_) => "the storage engine failed while reading the file".to_owned(),
    };
    let backups = match &cfg.backup_dir {
        Some(d) => match ops::list_backups(d, &spec.network_id).last() {
            Some(newest) => format!("the newest scheduled backup is {}", newest.display()),
            None => format!("no scheduled backup found in {}", d.display()),
        },
        None => "no --backup-dir is configured".to_owned(),
    };
    anyhow::bail!(
        "cannot open the database at {path}: {err}\n\
         The node refuses to start on a damaged database. To recover:\n\
         1. check it:   rustchain db check --data-dir {dir}\n\
         2. restore a backup ({backups}):\n\
            rustchain db restore --data-dir {dir} --from <backup file>\n\
            (the damaged file is kept beside it as rustchain.redb.pre-restore-<time>)\n\
         or move {path} aside and start with an empty database (the node then holds only what it accepts from now on).",
        path = path.display(),
        dir = cfg.data_dir.display(),
    )
}

/// Resolves on SIGINT or SIGTERM, naming the signal.
pub async fn shutdown_signal() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => "SIGINT",
        _ = term => "SIGTERM",
    }
}
