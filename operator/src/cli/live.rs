//! `check --kubeconfig`: the operator's gate as a dry run against live clusters, and with
//! several, the fleet's view (addresses handed out on two clusters of one layer-2 segment, and
//! addresses Services hold on two). Nothing is written.

use super::output::{CliError, say};
use super::render::{RenderArgs, render_app, runtime_config_of};
use kommander_operator::checks;
use kommander_operator::metallb::capacity::{Fill, PoolUse};
use kommander_operator::metallb::segments::{self, Claim, Held, Neighbour};
use kommander_operator::render::ResolvedRollout;
use kommander_operator::rollout::{self, Decision, LiveState, RuntimeConfig};
use std::path::PathBuf;
use std::process::ExitCode;

/// One cluster as read: how it is named here, its API server, what it holds.
struct Read {
    name: String,
    server: String,
    live: LiveState,
}

/// Dry run of the operator's gate against each cluster, then the fleet's view.
pub fn check_live(
    args: &RenderArgs,
    kubeconfigs: &[PathBuf],
    context: Option<String>,
) -> Result<ExitCode, CliError> {
    let r = render_app(args)?;
    let Some((plan, desired)) = runtime_config_of(&r)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let paths: Vec<Option<&PathBuf>> = if kubeconfigs.is_empty() {
        vec![None]
    } else {
        kubeconfigs.iter().map(Some).collect()
    };
    let mut reads = Vec::new();
    let mut worst = 0u8;
    for path in paths {
        let read = runtime.block_on(read(
            path,
            context.clone(),
            &r.release.namespace,
            &plan,
            &desired,
        ))?;
        if reads.len() + kubeconfigs.len() > 1 {
            say(format!("== {}", read.name))?;
        }
        // Invalid (1) is worse than held (3), held worse than safe (0).
        let rank = |code: u8| [0u8, 2, 0, 1].get(usize::from(code)).copied().unwrap_or(2);
        let code = report(&read, &plan, &desired)?;
        if rank(code) > rank(worst) {
            worst = code;
        }
        reads.push(read);
    }
    if reads.len() > 1 {
        fleet(&reads, &plan, &desired)?;
    }
    Ok(ExitCode::from(worst))
}

async fn read(
    path: Option<&PathBuf>,
    context: Option<String>,
    namespace: &str,
    plan: &ResolvedRollout,
    desired: &RuntimeConfig,
) -> Result<Read, String> {
    let options = kube::config::KubeConfigOptions {
        context,
        ..Default::default()
    };
    let kc = match path {
        Some(path) => kube::config::Kubeconfig::read_from(path)
            .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?,
        None => kube::config::Kubeconfig::read().map_err(|e| format!("kubeconfig: {e}"))?,
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|e| format!("kubeconfig: {e}"))?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|e| format!("client: {e}"))?;
    let source = checks::adapter::Source {
        client: &client,
        network: None,
        services: None,
    };
    let live = checks::live_state(&source, namespace, plan, &desired.defaults)
        .await
        .map_err(|e| format!("{server}: {e}"))?;
    let name = path.map_or_else(|| server.clone(), |p| p.display().to_string());
    Ok(Read { name, server, live })
}

/// One cluster's verdict, printed; its exit code (0 safe or unchanged, 1 invalid, 3 held).
fn report(read: &Read, plan: &ResolvedRollout, desired: &RuntimeConfig) -> Result<u8, CliError> {
    let live = &read.live;
    say(format!(
        "{}: live config {}, new config {} ({} LoadBalancer Service(s) checked)",
        read.server,
        live.config
            .as_deref()
            .map(rollout::config_hash)
            .unwrap_or_else(|| "none".into()),
        desired.hash,
        live.services.len()
    ))?;
    for note in &live.notes {
        say(format!("note: {note}"))?;
    }
    let rules = plan.safety_check.map(|c| checks::adapter(c).rules());
    if let Some(rules) = rules {
        if let Some(text) = &live.config {
            pool_table("in force", &rules.capacity(text, live))?;
        }
        pool_table("new config", &rules.capacity(&desired.text, live))?;
    }
    verdict(rollout::decide(desired, rules, live, None), plan, desired)
}

/// The gate's decision, printed; its exit code.
fn verdict(
    decision: Decision,
    plan: &ResolvedRollout,
    desired: &RuntimeConfig,
) -> Result<u8, CliError> {
    match decision {
        Decision::Unchanged => {
            say("unchanged: this config is already in force")?;
            Ok(0)
        }
        Decision::Roll | Decision::Accepted(_) => {
            let restart: Vec<String> = plan
                .restart
                .iter()
                .map(|t| format!("{}/{}", t.kind, t.name))
                .collect();
            if restart.is_empty() {
                say("safe: the operator would apply it (the app reloads it itself)")?;
            } else {
                say(format!(
                    "safe: the operator would apply it and restart {}",
                    restart.join(", ")
                ))?;
            }
            Ok(0)
        }
        Decision::Invalid(errors) => {
            eprintln!(
                "error: the new config is invalid on this cluster ({} problem(s)):",
                errors.len()
            );
            for e in &errors {
                eprintln!("  - {e}");
            }
            Ok(1)
        }
        Decision::Blocked(blockers) => {
            eprintln!(
                "held: {} Service(s) would break; the operator would keep the old config:",
                blockers.len()
            );
            for b in &blockers {
                eprintln!("  - {b}");
            }
            eprintln!(
                "to accept: annotate the AppDeployment {}={}",
                rollout::ACCEPT_DISRUPTION_ANNOTATION,
                desired.hash
            );
            Ok(3)
        }
    }
}

/// The fleet's view: each cluster's segment, the ranges two clusters of one segment would
/// both hand out (in the order the kubeconfigs came: the earlier has it first), and the
/// addresses Services hold on two.
fn fleet(reads: &[Read], plan: &ResolvedRollout, desired: &RuntimeConfig) -> Result<(), CliError> {
    let Some(rules) = plan.safety_check.map(|c| checks::adapter(c).rules()) else {
        return Ok(());
    };
    say(format!("== fleet: {} clusters", reads.len()))?;
    let claims: Vec<Claim> = reads
        .iter()
        .enumerate()
        .map(|(i, r)| Claim {
            app: "this app".into(),
            cluster: r.name.clone(),
            segment: r.live.facts.node_subnets.clone(),
            pools: rules.addresses(&desired.text, &r.live),
            holds: false,
            order: i as u64,
        })
        .collect();
    for c in &claims {
        say(format!("  {}: nodes in {}", c.cluster, c.segment))?;
    }
    let mut shared = 0;
    for c in &claims {
        for o in segments::overlaps(c, claims.iter().filter(|o| o.order < c.order)) {
            shared += 1;
            say(format!("warning: {}: {}", c.cluster, o.describe()))?;
        }
    }
    shared += conflicts(reads, &claims)?;
    if shared == 0 {
        say("no address is handed out on two clusters of one segment")?;
    }
    Ok(())
}

/// What a cluster's LoadBalancer Services hold.
fn held(r: &Read) -> Vec<Held> {
    r.live
        .services
        .iter()
        .flat_map(|s| {
            s.ips.iter().map(|ip| Held {
                service: s.id(),
                ip: *ip,
            })
        })
        .collect()
}

/// The addresses Services hold on two clusters of one segment, printed; how many.
fn conflicts(reads: &[Read], claims: &[Claim]) -> Result<usize, CliError> {
    let mut found = 0;
    for (i, (r, c)) in reads.iter().zip(claims).enumerate() {
        let neighbours: Vec<Neighbour> = reads
            .iter()
            .zip(claims)
            .skip(i + 1)
            .filter_map(|(other, oc)| {
                Some(Neighbour {
                    cluster: other.name.clone(),
                    segment: segments::shared_subnet(&c.segment, &oc.segment)?,
                    held: held(other),
                })
            })
            .collect();
        for conflict in segments::conflicts(&held(r), &neighbours) {
            found += 1;
            say(format!("conflict: {}", conflict.describe(&r.name)))?;
        }
    }
    Ok(found)
}

/// Each pool's size and use against the cluster's Services, as the AppDeployment's status
/// shows them.
fn pool_table(which: &str, uses: &[PoolUse]) -> Result<(), CliError> {
    if uses.is_empty() {
        return Ok(());
    }
    say(format!("address pools ({which}):"))?;
    let width = uses.iter().map(|u| u.pool.len()).max().unwrap_or(0).max(4);
    say(format!(
        "  {:<width$}  {:>8}  {:>8}  {:>8}  WAITING",
        "POOL", "SIZE", "USED", "FREE"
    ))?;
    for u in uses {
        let full = match u.fill() {
            Fill::Fine => "",
            Fill::NearlyFull => "  (90% or more in use)",
            Fill::Full => "  (full)",
        };
        say(format!(
            "  {:<width$}  {:>8}  {:>8}  {:>8}  {}{full}",
            u.pool,
            u.size,
            u.used,
            u.free(),
            if u.waiting.is_empty() {
                "-".to_string()
            } else {
                u.waiting.join(",")
            }
        ))?;
    }
    Ok(())
}
