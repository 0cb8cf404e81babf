//! A systemd unit for local mode: `Type=notify`, so `systemctl start`
//! returns once a backend is in rotation and `systemctl reload` once the
//! config is applied (see `crate::systemd`); a watchdog; a stop that lets
//! shoal drain its instances itself (`KillMode=mixed`: SIGTERM to shoal
//! only, SIGKILL to what is left only at the end); and the sandboxing a
//! network service should have.

use super::{header, secs, Facts, File, Options, Source};

pub fn files(src: &Source<'_>, opts: &Options) -> Vec<File> {
    let f = Facts::of(src.config);
    let stop = secs(f.stop) + 10;
    let text = format!(
        "{head}# Install: copy to /etc/systemd/system/shoal.service, then
#   systemctl daemon-reload && systemctl enable --now shoal
[Unit]
Description=shoal: {what}
Documentation=https://github.com/shoal-proxy/shoal/blob/main/docs/DEPLOY.md
Wants=network-online.target
After=network-online.target

[Service]
# READY=1 once a backend is in rotation; RELOADING=1/READY=1 around a reload.
Type=notify
NotifyAccess=main
ExecStartPre={exe} check -c {config}
ExecStart={exe} up -c {config}
# SIGHUP re-reads the config; an invalid file changes nothing.
ExecReload=/bin/kill -HUP $MAINPID
# shoal stops its instances itself, after draining them: SIGTERM goes to
# shoal alone; whatever is left when TimeoutStopSec ends gets SIGKILL.
KillMode=mixed
KillSignal=SIGTERM
# shutdown.delay + shutdown.grace + the instances' stop_timeout, and a margin.
TimeoutStopSec={stop}
TimeoutStartSec=120
# shoal pings every WatchdogSec/2 while its runtime runs.
WatchdogSec=30
Restart=on-failure
RestartSec=2
# The admin token, if the config reads ${{SHOAL_ADMIN_TOKEN}}: one line,
# SHOAL_ADMIN_TOKEN=..., readable by root only.
EnvironmentFile=-/etc/shoal/env
LimitNOFILE=1048576
DynamicUser=yes
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
LockPersonality=yes
# Logs (the access log, if written to a file) go here.
LogsDirectory=shoal

[Install]
WantedBy=multi-user.target
",
        head = header(src, "systemd"),
        what = match &f.app {
            Some((name, n, _)) => format!("{n} instances of {name} behind one load balancer"),
            None => "load balancer".to_string(),
        },
        exe = opts.exe.display(),
        config = opts.config_path.display(),
    );
    vec![File {
        name: "shoal.service".into(),
        text,
    }]
}
