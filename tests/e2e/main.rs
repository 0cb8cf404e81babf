//! End-to-end tests: the real `shoal` binary, real demo-app instances, real
//! sockets on free loopback ports, a real HTTP client.

mod support;

mod access_log;
mod admin_auth;
mod autoscale;
mod balancing;
mod cache;
mod compress;
mod dashboard;
mod data_path;
mod deploy;
mod desync;
mod discovery;
mod events;
mod failures;
mod files;
mod health;
mod http2;
mod hygiene;
mod instance_logs;
mod large_bodies;
mod lifecycle;
mod limits;
mod listeners;
mod metrics;
mod monitoring_kit;
mod native_engine;
mod newcomer;
mod outliers;
mod rate_limits;
mod routes;
mod shutdown;
mod slow_clients;
mod smuggling;
mod state_redis;
mod state_redis_topologies;
mod sticky;
mod supervision;
mod systemd;
mod timeouts;
mod tls;
mod upstream_tls;
mod verify;
mod vtc;
mod websocket;
