//! `yimen serve` as a library: [`Server::start`] opens the store, loads the catalogue, builds one
//! adapter per line system and starts the intake writer and the dispatcher; [`Server::serve`]
//! answers HTTP on a given listener until `shutdown` resolves. [`run`] does both. Tests start it on
//! port 0 with their own shutdown future.
//!
//! Shutdown order: stop accepting connections and finish open requests → stop claiming and let
//! running attempts finish → flush the intake writer → close the store. Anything cut short by a
//! crash instead is safe: accepted cases are committed before the answer, and deliveries caught
//! mid-attempt are reclaimed after their lease expires (asking the line system first).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use yimen_adapters::AdapterRegistry;
use yimen_mappings::catalog::{Catalog, LoadErrors};

use crate::api::materials::MaterialStore;
use crate::api::{AppState, Backlog, app};
use crate::config::{ServeConfig, StoreLocation};
use crate::dispatch::{DispatchHandle, Dispatcher};
use crate::lines::Lines;
use crate::store::{self, IntakeBatcher, Store, StoreError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    /// The mapping files do not load.
    #[error("loading the mapping catalogue:\n{0}")]
    Catalog(#[from] LoadErrors),
    /// Serving failed.
    #[error("serving http: {0}")]
    Io(#[from] std::io::Error),
}

/// A started node, ready to serve.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
    listener: TcpListener,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    dispatcher: Option<JoinHandle<()>>,
    writer: JoinHandle<()>,
}

impl Server {
    /// Opens everything the node needs; the listener is already bound.
    pub async fn start(config: ServeConfig, listener: TcpListener) -> Result<Self, ServeError> {
        let store: Arc<dyn Store> = match &config.store {
            StoreLocation::Sqlite(dir) => store::open_sqlite(dir).await?,
            StoreLocation::Postgres(url) => store::open_postgres(url).await?,
        };
        let catalog = Arc::new(Catalog::load(&config.mappings)?);
        let lines = Arc::new(Lines::build(
            &catalog,
            &config.mappings,
            &config.lines,
            &AdapterRegistry::builtin(),
            &config.dispatch,
        ));
        Ok(Self::assemble(config, listener, store, catalog, lines).await)
    }

    /// Starts with an open store and built lines (tests, embedding).
    pub async fn assemble(
        config: ServeConfig,
        listener: TcpListener,
        store: Arc<dyn Store>,
        catalog: Arc<Catalog>,
        lines: Arc<Lines>,
    ) -> Self {
        let stop = CancellationToken::new();
        let (batcher, writer) = IntakeBatcher::spawn(store.clone(), config.intake.max_batch);
        let handle = DispatchHandle::default();
        let backlog = Backlog::default();
        backlog.refresh(store.as_ref()).await;
        let state = Arc::new(AppState {
            store: store.clone(),
            lines: lines.clone(),
            keys: config.api_keys.clone(),
            batcher,
            dispatch: handle.clone(),
            intake: config.intake.clone(),
            materials: MaterialStore::new(config.data_dir.join("materials")),
            backlog,
            node_id: config.node_id.clone(),
            sync: crate::sync::SyncContext::new(
                store.clone(),
                catalog.clone(),
                lines.clone(),
                config.sync.clone(),
            ),
            catalog,
        });
        let dispatcher = config.dispatch.enabled.then(|| {
            Dispatcher {
                store: store.clone(),
                lines,
                node_id: config.node_id.clone(),
                config: config.dispatch.clone(),
                handle,
            }
            .spawn(stop.clone())
        });
        let mut tasks = vec![tokio::spawn(housekeeping(state.clone(), stop.clone()))];
        tasks.extend(crate::sync::spawn(&state.sync, &stop));
        tracing::info!(
            node = %config.node_id,
            systems = state.lines.len(),
            backend = ?store.backend(),
            "node started"
        );
        Self {
            state,
            listener,
            stop,
            tasks,
            dispatcher,
            writer,
        }
    }

    /// The address HTTP is served on.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The shared state (tests look at the store through it).
    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops in order.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let router = app(self.state.clone());
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await;
        tracing::info!("http stopped; stopping the dispatcher");
        self.stop.cancel();
        if let Some(dispatcher) = self.dispatcher {
            let _ = dispatcher.await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let store = self.state.store.clone();
        // The writer ends when the last batcher handle (in the state) is dropped.
        drop(self.state);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.writer).await;
        store.close().await;
        served.map_err(ServeError::Io)
    }
}

/// Starts a node on `listener` and serves until `shutdown` resolves.
pub async fn run(
    config: ServeConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::start(config, listener).await?.serve(shutdown).await
}

/// Periodic chores: fold the delivery counts, recount the backlog (other nodes' intake and
/// deliveries) and forget expired jump tickets.
async fn housekeeping(state: Arc<AppState>, stop: CancellationToken) {
    let mut backlog = tokio::time::interval(Duration::from_secs(2));
    let mut tickets = tokio::time::interval(Duration::from_secs(300));
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = backlog.tick() => {
                if let Err(error) = state.store.fold_counts().await {
                    tracing::warn!(%error, "folding the delivery counts failed");
                }
                state.backlog.refresh(state.store.as_ref()).await;
            }
            _ = tickets.tick() => {
                if let Err(error) = state.store.purge_expired_tickets(jiff::Timestamp::now()).await {
                    tracing::warn!(%error, "purging expired jump tickets failed");
                }
            }
        }
    }
}
