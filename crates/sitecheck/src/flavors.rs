//! Flavor checks: every flavor carries benchmark metadata (what accounting
//! normalises CPU time with), and GPU flavors carry the accelerator keys
//! (what the accelerator records and the site description read).

use openstack::Paged;
use openstack::Session;
use openstack::nova::{self, Flavor, FlavorVisibility, ListFlavors};

use crate::check::Check;
use crate::config::CheckConfig;

pub const BENCHMARK_KEYS: [&str; 2] = ["accounting:benchmark_type", "accounting:benchmark_value"];
pub const ACCELERATOR_KEYS: [&str; 4] =
    ["Accelerator:Type", "Accelerator:Vendor", "Accelerator:Model", "Accelerator:Number"];

/// A flavor that hands out GPUs: PCI passthrough, vGPU/PGPU resources,
/// any `Accelerator:` key, or "gpu" in its name.
pub fn is_gpu(f: &Flavor) -> bool {
    let specs = f.extra_specs.as_ref();
    specs.is_some_and(|s| {
        s.keys().any(|k| {
            k.starts_with("Accelerator:")
                || k.starts_with("pci_passthrough:")
                || k == "resources:VGPU"
                || k == "resources:PGPU"
        })
    }) || f.name.to_ascii_lowercase().contains("gpu")
}

fn missing<'a>(f: &Flavor, keys: &[&'a str]) -> Vec<&'a str> {
    keys.iter()
        .copied()
        .filter(|k| f.extra_specs.as_ref().is_none_or(|s| s.get(*k).is_none_or(|v| v.trim().is_empty())))
        .collect()
}

fn names(v: &[(&Flavor, Vec<&str>)]) -> String {
    let shown: Vec<String> = v.iter().take(10).map(|(f, m)| format!("{} (no {})", f.name, m.join(", "))).collect();
    let more = v.len().saturating_sub(10);
    if more > 0 { format!("{} and {more} more", shown.join("; ")) } else { shown.join("; ") }
}

/// The flavors family.
pub async fn run(_cfg: &CheckConfig, admin: &Session) -> Vec<Check> {
    let mut flavors =
        match (ListFlavors { is_public: Some(FlavorVisibility::All), ..Default::default() }).list(admin).await {
            Ok(f) => f,
            Err(e) => {
                return vec![Check::critical(
                    "flavors.list",
                    "listing the flavors",
                    e.to_string(),
                    "run with an admin account (--os-cloud)",
                )];
            }
        };
    // Before microversion 2.61 the extra specs are not embedded.
    for f in flavors.iter_mut().filter(|f| f.extra_specs.is_none()) {
        if let Ok(s) = nova::flavors::extra_specs(admin, &f.id).await {
            f.extra_specs = Some(s);
        }
    }
    let flavors: Vec<&Flavor> = flavors.iter().filter(|f| !f.disabled).collect();
    let no_bench: Vec<(&Flavor, Vec<&str>)> =
        flavors.iter().map(|f| (*f, missing(f, &BENCHMARK_KEYS))).filter(|(_, m)| !m.is_empty()).collect();
    let gpus: Vec<&Flavor> = flavors.iter().copied().filter(|f| is_gpu(f)).collect();
    let no_acc: Vec<(&Flavor, Vec<&str>)> =
        gpus.iter().map(|f| (*f, missing(f, &ACCELERATOR_KEYS))).filter(|(_, m)| !m.is_empty()).collect();
    let mut out = Vec::new();
    let tested = format!("every flavor has {}", BENCHMARK_KEYS.join(" and "));
    out.push(if no_bench.is_empty() {
        Check::ok("flavors.benchmark", tested, format!("all {} flavors have benchmark metadata", flavors.len()))
    } else {
        let (f, _) = &no_bench[0];
        Check::warning(
            "flavors.benchmark",
            tested,
            format!("{} of {} flavors lack benchmark metadata: {}", no_bench.len(), flavors.len(), names(&no_bench)),
            format!(
                "openstack flavor set --property accounting:benchmark_type=HEPscore23 --property accounting:benchmark_value=<score per core> {} (and the others)",
                f.name
            ),
        )
    });
    let tested = format!("every GPU flavor has {}", ACCELERATOR_KEYS.join(", "));
    out.push(if gpus.is_empty() {
        Check::ok("flavors.accelerator", tested, "no GPU flavors")
    } else if no_acc.is_empty() {
        Check::ok("flavors.accelerator", tested, format!("all {} GPU flavors have the accelerator keys", gpus.len()))
    } else {
        let (f, m) = &no_acc[0];
        Check::warning(
            "flavors.accelerator",
            tested,
            format!("{} of {} GPU flavors lack accelerator keys: {}", no_acc.len(), gpus.len(), names(&no_acc)),
            format!(
                "openstack flavor set {} {}",
                m.iter()
                    .map(|k| format!("--property {k}=<{}>", k.trim_start_matches("Accelerator:").to_lowercase()))
                    .collect::<Vec<_>>()
                    .join(" "),
                f.name
            ),
        )
    });
    out
}
