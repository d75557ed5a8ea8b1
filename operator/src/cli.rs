//! Subcommands. Each reads files, calls the core, and prints; nothing here decides anything.

mod chart;
mod live;
pub mod output;
mod render;

use output::{CliError, say};
use render::{RenderArgs, render_app, runtime_config_of};

use clap::{Parser, Subcommand, ValueEnum};
use kommander_operator::controller::{self, settings::Settings};
use kommander_operator::metallb::{self, config::SpeakerMode};
use kommander_operator::render::ConfigSource;
use kommander_operator::resources::SafetyCheck;
use kommander_operator::rollout::{LiveState, RuntimeConfig};
use kommander_operator::{checks, crdgen, yaml};
use std::path::PathBuf;
use std::process::ExitCode;

const ABOUT: &str = "Deploys catalog apps (ClusterApps) to every attached cluster of a Kommander workspace, \
and rolls MetalLB configuration only when the change cannot break a running Service.";

const RENDER_EXAMPLE: &str = "\
Example: render MetalLB with the overrides of the load-balancing guide

  cat > overrides.yaml <<'YAML'
  configInline:
    address-pools:
    - name: default
      protocol: layer2
      addresses:
      - 10.0.50.25-10.0.50.50
  YAML
  kommander-operator render --app manifests/catalog/metallb-0.12.3.yaml \\
      --values overrides.yaml --namespace kommander

Several --values files merge like `helm template -f a.yaml -f b.yaml`: later files win,
maps merge key by key, lists are replaced whole, and `key: null` deletes a default.

Example: render an upstream Helm chart with Helm's own engine (the output is `helm template`'s)

  kommander-operator render --chart metallb-0.16.2.tgz --values overrides.yaml \\
      --name metallb --namespace ws-a --kube-version v1.31.2 --include-crds";

const CHECK_EXAMPLE: &str = "\
Example: validate a MetalLB overrides file before you `kubectl apply` it

  kommander-operator check --app manifests/catalog/metallb-0.12.3.yaml --values overrides.yaml

Exits 0 and prints each pool and how many addresses it offers when the config is valid;
exits 1 and lists every problem (naming the pool or peer and the rule) when it is not.

With --kubeconfig/--context it is a dry run against a live cluster: the config is also checked
against the cluster's networks and kube-proxy mode, and against the LoadBalancer Services that
hold IPs there. Nothing is written. Exit 0: safe to roll (or unchanged); 1: invalid;
3: it would be held because these Services would break (each is listed):

  kommander-operator check --app manifests/catalog/metallb-0.12.3.yaml --values overrides.yaml \\
      --kubeconfig ~/.kube/attached-1 --namespace kommander

With several --kubeconfig, each cluster is checked, then the fleet: a layer2 range handed out
on two clusters whose nodes share a subnet (one layer-2 segment), and an address Services hold
on two such clusters, are named (warnings: the exit code is the clusters' worst):

  kommander-operator check --app manifests/catalog/metallb-0.12.3.yaml --values overrides.yaml \\
      --kubeconfig ~/.kube/attached-1 --kubeconfig ~/.kube/attached-2 --namespace ws-a";

#[derive(Parser, Debug)]
#[command(name = "kommander-operator", version, about = ABOUT)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

const RUN_EXAMPLE: &str = "\
Examples:

  # against the cluster of your current kubeconfig context, one replica:
  kommander-operator run --no-leader-election

  # in a Deployment (see manifests/): leader election over a Lease, JSON logs
  kommander-operator run --lease-namespace kommander-system --log-format json

It watches Workspaces, KommanderClusters, ClusterApps, Apps, AppDeployments and their
ConfigMaps and Secrets on the management cluster, and applies apps to the attached clusters.
Logs: RUST_LOG (default info). Metrics: /metrics; health: /healthz, /readyz.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the operator (controllers for Workspaces, KommanderClusters and AppDeployments).
    #[command(after_help = RUN_EXAMPLE)]
    Run(RunArgs),
    /// One render job as JSON on stdin, the result as JSON on stdout, under memory and CPU
    /// limits; the operator runs every render this way.
    #[command(name = "render-worker", hide = true)]
    RenderWorker,
    /// Print the CustomResourceDefinitions (or write one file per CRD with --dir).
    Crds {
        /// Write `<name>.yaml` files into this directory instead of printing.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Render an app with values files, offline, like `helm template`.
    #[command(after_help = RENDER_EXAMPLE)]
    Render(RenderArgs),
    /// Validate an app's runtime configuration (for MetalLB: every rule of its version), offline.
    #[command(after_help = CHECK_EXAMPLE)]
    Check {
        #[command(flatten)]
        render: RenderArgs,
        /// Which BGP speaker MetalLB runs; FRR allows bfd-profiles and keepalive-time.
        #[arg(long, value_enum, default_value_t = Mode::Native)]
        speaker_mode: Mode,
        /// Also check against this live cluster (a dry run: nothing is written). Repeat it for
        /// several clusters: each is checked, then the fleet (addresses handed out on two
        /// clusters of one layer-2 segment, and addresses Services hold on two).
        #[arg(long, value_name = "FILE")]
        kubeconfig: Vec<PathBuf>,
        /// Context of the kubeconfig to use (implies a live check).
        #[arg(long)]
        context: Option<String>,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:8080")]
    metrics_addr: std::net::SocketAddr,
    /// Namespace of the leader-election Lease (default: $POD_NAMESPACE, else kommander-system).
    #[arg(long)]
    lease_namespace: Option<String>,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kommander-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (default: $HOSTNAME).
    #[arg(long)]
    identity: Option<String>,
    /// Act without leader election (only when exactly one replica runs).
    #[arg(long)]
    no_leader_election: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// The host workspace's namespace: only KommanderClusters there may omit kubeconfigRef
    /// (and so target the management cluster).
    #[arg(long, default_value = "kommander")]
    host_namespace: String,
    /// Let tenant kubeconfigs run `exec` credential plugins inside the operator (bounded by a
    /// deadline, with a clean environment). Off by default: a tenant could run any command.
    #[arg(long)]
    insecure_kubeconfig_exec: bool,
    /// Let tenant kubeconfigs skip TLS verification (`insecure-skip-tls-verify`, `http://`).
    /// Off by default: credentials could go to whoever answers.
    #[arg(long)]
    insecure_kubeconfig_tls: bool,
    /// How long one operation on one attached cluster (probe, deploy, clean-up) may take, in
    /// seconds, however slowly it answers.
    #[arg(long, default_value_t = controller::context::CLUSTER_DEADLINE.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    cluster_deadline_seconds: u64,
    /// How long a deleted KommanderCluster waits for its apps to be removed from the cluster
    /// (an unreachable one cannot be cleaned) before it is released anyway, in seconds.
    #[arg(long, default_value_t = controller::context::DETACH_TIMEOUT.as_secs())]
    detach_timeout_seconds: u64,
    /// PEM CA certificates that Helm repositories' TLS is verified against, beside the
    /// system's (a platform's own repository).
    #[arg(long, value_name = "FILE")]
    chart_ca_file: Option<PathBuf>,
    /// Where private Helm repositories' credentials are: Secrets labelled
    /// apps.kommander.d2iq.io/chart-repository-credentials (default: $POD_NAMESPACE, else
    /// kommander-system, the operator's own namespace).
    #[arg(long, value_name = "NAMESPACE")]
    chart_credentials_namespace: Option<String>,
    /// Helm's engine for chart apps (default: $KOMMANDER_HELM_RENDER, else
    /// kommander-helm-render beside this binary).
    #[arg(long, value_name = "FILE")]
    helm_render: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum LogFormat {
    Text,
    Json,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Mode {
    Native,
    Frr,
}

fn render_worker() -> Result<ExitCode, CliError> {
    use kommander_operator::render::job;
    use std::io::Read as _;
    controller::sandbox::limit_this_process()?;
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(|e| format!("render-worker: cannot read the job: {e}"))?;
    let job: job::RenderJob = serde_json::from_slice(&input)
        .map_err(|e| format!("render-worker: not a render job: {e}"))?;
    let result = job::run(&job);
    let text = serde_json::to_string(&result)
        .map_err(|e| format!("render-worker: cannot encode the result: {e}"))?;
    say(text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Run(args) => run_operator(args),
        Command::RenderWorker => render_worker(),
        Command::Crds { dir } => crds(dir),
        Command::Render(args) if args.app.is_none() => chart::render(
            &args.chart,
            &args.values,
            args.name.as_deref(),
            &args.namespace,
        ),
        Command::Render(args) => {
            let r = render_app(&args)?;
            for o in &r.objects {
                let text =
                    yaml::to_yaml(&o.body).map_err(|e| format!("{}: {e}", o.display_name()))?;
                say(format!(
                    "---\n# Source: {}/{}\n{text}",
                    r.app.name, o.template
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            render,
            speaker_mode,
            kubeconfig,
            context,
        } => {
            if kubeconfig.is_empty() && context.is_none() {
                check(&render, speaker_mode)
            } else {
                live::check_live(&render, &kubeconfig, context)
            }
        }
    }
}

fn run_operator(args: RunArgs) -> Result<ExitCode, CliError> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let own_namespace = env("POD_NAMESPACE").unwrap_or_else(|| "kommander-system".into());
    let settings = Settings {
        metrics_addr: args.metrics_addr,
        lease_namespace: args
            .lease_namespace
            .unwrap_or_else(|| own_namespace.clone()),
        lease_name: args.lease_name,
        identity: args
            .identity
            .or_else(|| env("HOSTNAME"))
            .unwrap_or_else(|| format!("kommander-operator-{}", std::process::id())),
        no_leader_election: args.no_leader_election,
        host_namespace: args.host_namespace,
        kubeconfig_policy: kommander_operator::kubeconfig::Policy {
            allow_exec: args.insecure_kubeconfig_exec,
            allow_insecure_tls: args.insecure_kubeconfig_tls,
        },
        cluster_deadline: std::time::Duration::from_secs(args.cluster_deadline_seconds),
        detach_timeout: std::time::Duration::from_secs(args.detach_timeout_seconds),
        chart_ca: match &args.chart_ca_file {
            Some(path) => std::fs::read(path)
                .map_err(|e| e.to_string())
                .and_then(|pem| controller::charts::parse_ca(&pem))
                .map_err(|e| format!("--chart-ca-file {}: {e}", path.display()))?,
            None => Vec::new(),
        },
        chart_credentials_namespace: args
            .chart_credentials_namespace
            .clone()
            .unwrap_or(own_namespace),
        helm_render: args.helm_render.clone(),
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime
        .block_on(controller::run(settings))
        .map_err(|e| CliError::Message(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

fn crds(dir: Option<PathBuf>) -> Result<ExitCode, CliError> {
    match dir {
        None => say(crdgen::stream()?.trim_end())?,
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            for crd in crdgen::all() {
                let path = dir.join(crdgen::file_name(&crd));
                std::fs::write(&path, crdgen::to_yaml(&crd)?)
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                say(format!("wrote {}", path.display()))?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn check(args: &RenderArgs, mode: Mode) -> Result<ExitCode, CliError> {
    let r = render_app(args)?;
    say(format!(
        "{}: rendered {} objects for {}/{}",
        r.app.name,
        r.objects.len(),
        r.release.namespace,
        r.release.name
    ))?;
    let Some((plan, config)) = runtime_config_of(&r)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let key = match &plan.source {
        ConfigSource::ConfigMap { key: Some(k), .. } => format!(" key {k}"),
        _ => String::new(),
    };
    say(format!(
        "runtime config: {}{key} (hash {})",
        config.source, config.hash
    ))?;
    match plan.safety_check {
        None => {
            say("no safety check: every valid change is rolled out")?;
            Ok(ExitCode::SUCCESS)
        }
        Some(SafetyCheck::MetallbV012) => check_v012(&config, &key, mode),
        Some(check) => check_crs(&config, check),
    }
}

/// A MetalLB 0.12 ConfigMap config: valid, with its pools and peers; or its problems.
fn check_v012(config: &RuntimeConfig, key: &str, mode: Mode) -> Result<ExitCode, CliError> {
    let mode = match mode {
        Mode::Native => SpeakerMode::Native,
        Mode::Frr => SpeakerMode::Frr,
    };
    let cfg = match metallb::config::parse(&config.text, mode) {
        Ok(cfg) => cfg,
        Err(errors) => {
            let what = format!("{}{key} is not a valid MetalLB 0.12 config", config.source);
            return problems(&what, errors.0.iter().map(ToString::to_string));
        }
    };
    say(format!(
        "valid MetalLB 0.12 config: {} pool(s), {} peer(s)",
        cfg.pools.len(),
        cfg.peers.len()
    ))?;
    for p in &cfg.pools {
        say(format!(
            "  pool {:?} ({}): {} -> {} addresses",
            p.name,
            p.protocol,
            p.addresses.join(", "),
            p.capacity()
        ))?;
    }
    for p in &cfg.peers {
        say(format!(
            "  peer {} (my-asn {}, peer-asn {}, port {})",
            p.peer_address, p.my_asn, p.peer_asn, p.peer_port
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// MetalLB 0.13+ resources: valid, with their pools and how each is announced; or their
/// problems.
fn check_crs(config: &RuntimeConfig, check: SafetyCheck) -> Result<ExitCode, CliError> {
    let release = checks::crs_release(check).unwrap_or(metallb::crs::Release::V0_15);
    let rules = checks::adapter(check).rules();
    let found = rules.validate(&config.text, &LiveState::default());
    if !found.is_empty() {
        let what = format!("{} are not a valid MetalLB configuration", config.source);
        return problems(&what, found.into_iter());
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(&config.text).unwrap_or_default();
    let (bgp, defaults) = (metallb::crs::BgpMode::Frr, Default::default());
    let cfg = metallb::crs::parse(&items, release, bgp, &defaults).unwrap_or_default();
    say(format!(
        "valid MetalLB {} resources: {} pool(s), {} peer(s)",
        release.version(),
        cfg.pools.len(),
        cfg.peers.len()
    ))?;
    for p in &cfg.pools {
        let by: Vec<String> = cfg.announced(p).iter().map(ToString::to_string).collect();
        let by = match by.is_empty() {
            true => "not announced".to_string(),
            false => by.join("+"),
        };
        say(format!(
            "  IPAddressPool {} ({by}): {} -> {} addresses",
            p.name,
            p.addresses.join(", "),
            p.capacity()
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Say on stderr what is wrong, one problem a line; the command fails.
fn problems(
    what: &str,
    found: impl ExactSizeIterator<Item = String>,
) -> Result<ExitCode, CliError> {
    eprintln!("error: {what} ({} problem(s)):", found.len());
    for p in found {
        eprintln!("  - {p}");
    }
    Ok(ExitCode::FAILURE)
}
