//! Kubernetes manifests, one file per object kind, in two patterns:
//!
//! - **proxy**: shoal as its own Deployment (the proxy tier) in front of
//!   the app's Deployment and Service. shoal's config loses `app` and
//!   gains `upstreams` at the app's Service;
//! - **entrypoint**: shoal as the entrypoint of each app pod, supervising
//!   the config's instances there (the app's image must hold the shoal
//!   binary: `COPY --from=IMAGE /usr/local/bin/shoal /usr/local/bin/`).
//!
//! Both get probes on the admin listener (`/ready`, `/health`), a stop
//! that lets shoal finish (`preStop` while endpoints are updated, then
//! `terminationGracePeriodSeconds` covering `shutdown.delay` +
//! `shutdown.grace` + the instances' `stop_timeout`), a
//! PodDisruptionBudget, an HPA on CPU, spreading over nodes, and a
//! container that runs as non-root with a read-only root filesystem.

use super::config::{for_container, Apps};
use super::{header, secs, Facts, File, Options, Pattern, Source};

/// Seconds the `preStop` hook waits before SIGTERM, so that Services and
/// Ingresses stop sending to the pod before shoal stops accepting.
const PRE_STOP_SECS: u64 = 5;

pub fn files(src: &Source<'_>, opts: &Options) -> Result<Vec<File>, String> {
    let facts = Facts::of(src.config);
    let head = header(src, "kubernetes");
    let (name, apps) = match (opts.pattern, &facts.app) {
        (Pattern::Proxy, Some((app, ..))) => (
            "shoal".to_string(),
            Apps::Upstreams(vec![format!("http://{}:{}", dns_name(app), opts.app_port)]),
        ),
        (Pattern::Proxy, None) => ("shoal".to_string(), Apps::Keep),
        (Pattern::Entrypoint, Some((app, ..))) => (dns_name(app), Apps::Keep),
        (Pattern::Entrypoint, None) => return Err(
            "--pattern entrypoint runs the config's app in each pod, and this config has no `app`"
                .into(),
        ),
    };
    if src.config.apps.len() > 1 && opts.pattern == Pattern::Proxy {
        return Err("the proxy pattern writes one app's Deployment; with several `apps`, use --pattern entrypoint or write `upstreams` yourself".into());
    }
    let config = for_container(src.text, src.config, apps)?;
    let mut files = vec![
        File {
            name: "configmap.yaml".into(),
            text: format!("{head}{}", configmap(&name, &config)),
        },
        File {
            name: "deployment.yaml".into(),
            text: format!("{head}{}", deployment(&name, &facts, opts, &config)),
        },
        File {
            name: "service.yaml".into(),
            text: format!("{head}{}", service(&name, &facts)),
        },
        File {
            name: "pdb.yaml".into(),
            text: format!("{head}{}", pdb(&name)),
        },
        File {
            name: "hpa.yaml".into(),
            text: format!("{head}{}", hpa(&name, opts)),
        },
    ];
    if let (Pattern::Proxy, Some((app, instances, health))) = (opts.pattern, &facts.app) {
        files.push(File {
            name: "app.yaml".into(),
            text: format!(
                "{head}{}",
                app_objects(&dns_name(app), *instances, health.as_deref(), opts)
            ),
        });
    }
    Ok(files)
}

/// An app's name as a Kubernetes object name (RFC 1123 label).
fn dns_name(name: &str) -> String {
    let mut out: String = name
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "app".into()
    } else {
        out.chars().take(63).collect()
    }
}

fn labels(name: &str, indent: &str) -> String {
    format!("{indent}app.kubernetes.io/name: {name}\n{indent}app.kubernetes.io/part-of: shoal\n")
}

fn configmap(name: &str, config: &str) -> String {
    let body: String = config.lines().map(|l| format!("    {l}\n")).collect();
    format!(
        "# The config shoal runs with: yours, listening on every interface, the admin
# token from the Secret `{name}-admin` (create it once:
#   kubectl create secret generic {name}-admin --from-literal=token=$(openssl rand -hex 32)).
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
  labels:
{labels}data:
  shoal.yaml: |
{body}",
        labels = labels(name, "    "),
    )
}

fn deployment(name: &str, f: &Facts, opts: &Options, config: &str) -> String {
    let grace = PRE_STOP_SECS + secs(f.stop) + 5;
    let (image, component) = match opts.pattern {
        Pattern::Proxy => (opts.image.as_str(), "proxy"),
        Pattern::Entrypoint => (opts.app_image.as_str(), "app"),
    };
    // A change of the config rolls the pods (a ConfigMap change alone does not).
    let digest = fnv(config);
    format!(
        "# shoal ({component}). A rolling update adds a pod before it removes one
# (maxUnavailable 0); a removed pod leaves the Service while preStop waits
# {PRE_STOP_SECS}s, then shoal drains: shutdown.delay ({delay}s) with /ready
# at 503, shutdown.grace for in-flight requests, then the instances stop.
# terminationGracePeriodSeconds covers all of it ({grace}s).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
{labels}    app.kubernetes.io/component: {component}
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
{labels6}        app.kubernetes.io/component: {component}
      annotations:
        shoal/config-digest: \"{digest:016x}\"
    spec:
      terminationGracePeriodSeconds: {grace}
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      # Spread the replicas over nodes, so losing one loses one replica.
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    app.kubernetes.io/name: {name}
      containers:
        - name: {container}
          image: {image}
          args: [\"up\", \"-c\", \"/etc/shoal/shoal.yaml\"]
{command}          ports:
            - name: http
              containerPort: {port}
            - name: admin
              containerPort: {admin}
          env:
            - name: SHOAL_ADMIN_TOKEN
              valueFrom:
                secretKeyRef:
                  name: {name}-admin
                  key: token
          # Ready once a backend is in rotation; 503 as soon as shutdown begins.
          readinessProbe:
            httpGet:
              path: /ready
              port: admin
            periodSeconds: 2
            failureThreshold: 2
          # Alive while the admin listener answers.
          livenessProbe:
            httpGet:
              path: /health
              port: admin
            periodSeconds: 10
            failureThreshold: 3
          startupProbe:
            httpGet:
              path: /health
              port: admin
            periodSeconds: 1
            failureThreshold: 60
          lifecycle:
            preStop:
              sleep:
                seconds: {PRE_STOP_SECS}
          resources:
            requests:
              cpu: 250m
              memory: 64Mi
            limits:
              memory: {memory}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [\"ALL\"]
          volumeMounts:
            - name: config
              mountPath: /etc/shoal
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: {name}-config
",
        delay = secs(f.shutdown_delay),
        labels = labels(name, "    "),
        labels6 = labels(name, "        "),
        replicas = opts.replicas,
        container = if component == "proxy" { "shoal" } else { "app" },
        command = match opts.pattern {
            Pattern::Proxy => String::new(),
            Pattern::Entrypoint =>
                "          # The app's image, with shoal as its entrypoint.\n          command: [\"/usr/local/bin/shoal\"]\n"
                    .to_string(),
        },
        port = f.port,
        admin = f.admin_port,
        memory = match opts.pattern {
            Pattern::Proxy => "256Mi",
            Pattern::Entrypoint => "1Gi",
        },
    )
}

fn service(name: &str, f: &Facts) -> String {
    format!(
        "# The Service clients (or an Ingress) send to; it only lists ready pods.
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
{labels}spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
    - name: admin
      port: {admin}
      targetPort: admin
      protocol: TCP
",
        labels = labels(name, "    "),
        admin = f.admin_port,
    )
}

fn pdb(name: &str) -> String {
    format!(
        "# A node drain or upgrade takes at most one pod at a time.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {name}
  labels:
{labels}spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
",
        labels = labels(name, "    "),
    )
}

fn hpa(name: &str, opts: &Options) -> String {
    format!(
        "# More replicas when the pods' CPU passes 70 % of their request; scale-down
# waits 5 minutes of lower load (Kubernetes' default), one pod a minute.
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {name}
  labels:
{labels}spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {name}
  minReplicas: {min}
  maxReplicas: {max}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 70
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 60
",
        labels = labels(name, "    "),
        min = opts.replicas,
        max = opts.max_replicas.max(opts.replicas),
    )
}

fn app_objects(name: &str, instances: u32, health: Option<&str>, opts: &Options) -> String {
    let probe = match health {
        Some(path) => format!(
            "          readinessProbe:
            httpGet:
              path: {path}
              port: http
            periodSeconds: 2
"
        ),
        None => String::new(),
    };
    format!(
        "# The app: `app.instances` pods of its image, listening on $PORT, behind a
# Service that shoal's upstream names. shoal keeps pooled connections to the
# Service's address; Kubernetes spreads new connections over the ready pods.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
{labels}    app.kubernetes.io/component: app
spec:
  replicas: {instances}
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  template:
    metadata:
      labels:
{labels6}        app.kubernetes.io/component: app
    spec:
      containers:
        - name: app
          image: {image}
          env:
            - name: PORT
              value: \"{port}\"
          ports:
            - name: http
              containerPort: {port}
{probe}---
apiVersion: v1
kind: Service
metadata:
  name: {name}
  labels:
{labels}spec:
  selector:
    app.kubernetes.io/name: {name}
  ports:
    - name: http
      port: {port}
      targetPort: http
",
        labels = labels(name, "    "),
        labels6 = labels(name, "        "),
        image = opts.app_image,
        port = opts.app_port,
    )
}

/// FNV-1a: a short, stable digest of the config for the pod annotation.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
