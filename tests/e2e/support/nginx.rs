//! nginx as a backend, started by the test: one process (no master, no
//! daemon) with its files in a temporary directory, killed by PID when
//! dropped. Debian's `nginx` package; `scripts/test` installs it.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::{eventually, free_port};

pub struct Nginx {
    child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// A program from PATH or where Debian puts it (`/usr/sbin`, outside most
/// users' PATH): nginx, haproxy.
pub fn sbin(name: &str) -> std::path::PathBuf {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| name.into())
}

/// nginx, from PATH or `/usr/sbin`.
pub fn exe() -> std::path::PathBuf {
    sbin("nginx")
}

impl Nginx {
    /// nginx on a free loopback port with `server_body` inside its
    /// `server { listen …; }` block (e.g. `location / { return 200 "x"; }`).
    pub async fn start(server_body: &str) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n\
               proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
               scgi_temp_path {d}/scgi;\n\
               server {{\n    listen 127.0.0.1:{port};\n    {server_body}\n  }}\n}}\n"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new(exe())
            .args(["-p", dir.path().to_str().unwrap(), "-e"])
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx) must be installed");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let nginx = Nginx { child, addr, dir };
        eventually(Duration::from_secs(10), "nginx listening", || async {
            tokio::net::TcpStream::connect(addr).await.ok().map(|_| ())
        })
        .await;
        nginx
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
