//! Reaching Redis: the three topologies behind one connection type.
//! A standalone server (`url`) and the master Sentinel names (`sentinel:`)
//! give a multiplexed connection; a Cluster (`cluster:`) gives the
//! client's cluster connection, which follows slots and nodes itself.
//! Each connect is bounded by `connect_timeout`; a Sentinel connect asks
//! the sentinels again, so after a failover it finds the new master.

use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, Cmd, ConnectionAddr, Pipeline, RedisFuture, Value};
use shoal_config::StateConfig;

/// One connection of the pool.
#[derive(Clone)]
pub enum Conn {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Where the connections go.
pub enum Topology {
    Single(Client),
    /// The client asks the sentinels for the master at each connect.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster(ClusterClient),
}

impl Topology {
    pub fn for_config(state: &StateConfig) -> Result<Topology, String> {
        if let Some(s) = &state.sentinel {
            let nodes = s
                .nodes
                .iter()
                .map(|n| {
                    let (host, port) = n.rsplit_once(':').unwrap_or((n, "26379"));
                    let port = port
                        .parse()
                        .map_err(|_| format!("`{n}` is not host:port"))?;
                    Ok(ConnectionAddr::Tcp(host.to_string(), port))
                })
                .collect::<Result<Vec<_>, String>>()?;
            let mut b = SentinelClientBuilder::new(nodes, &s.master, SentinelServerType::Master)
                .map_err(|e| e.to_string())?;
            if let Some(p) = &s.password {
                b = b.set_client_to_redis_password(p);
            }
            if let Some(p) = &s.sentinel_password {
                b = b.set_client_to_sentinel_password(p);
            }
            let client = b.build().map_err(|e| e.to_string())?;
            return Ok(Topology::Sentinel(tokio::sync::Mutex::new(client)));
        }
        if !state.cluster.is_empty() {
            let client = ClusterClient::builder(state.cluster.clone())
                .connection_timeout(state.connect_timeout)
                .response_timeout(state.command_timeout)
                // One retry (a MOVED after a resharding); the command
                // timeout bounds the whole call anyway.
                .retries(1)
                .build()
                .map_err(|e| e.to_string())?;
            return Ok(Topology::Cluster(client));
        }
        let url = state.url.as_deref().unwrap_or("redis://127.0.0.1:6379");
        Client::open(url)
            .map(Topology::Single)
            .map_err(|e| e.to_string())
    }

    /// `standalone`, `sentinel` or `cluster`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Topology::Single(_) => "standalone",
            Topology::Sentinel(_) => "sentinel",
            Topology::Cluster(_) => "cluster",
        }
    }

    /// A new connection, within `connect` (the whole of it: asking the
    /// sentinels, then the master).
    pub async fn connect(&self, connect: Duration, command: Duration) -> Result<Conn, String> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(command));
        let work = async {
            match self {
                Topology::Single(c) => c
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map(Conn::Single),
                Topology::Sentinel(s) => s
                    .lock()
                    .await
                    .get_async_connection_with_config(&config)
                    .await
                    .map(Conn::Single),
                Topology::Cluster(c) => c.get_async_connection().await.map(Conn::Cluster),
            }
        };
        match tokio::time::timeout(connect, work).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {connect:?}")),
        }
    }
}
