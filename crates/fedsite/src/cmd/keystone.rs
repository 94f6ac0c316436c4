//! `fedsite keystone federation|lint`: the Keystone OIDC federation with EGI
//! Check-in — generate (and `--apply`) the identity provider, the per-VO
//! mapping rules and the protocol; lint an existing setup and print the
//! Apache `mod_auth_openidc` and `keystone.conf` fragments.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use openstack::{CloudConfig, Session};
use sitecheck::Report;
use sitecheck::federation::{self, Change, FederationSpec};

#[derive(Debug, Args)]
pub struct KeystoneArgs {
    #[command(subcommand)]
    pub command: KeystoneCommand,
}

#[derive(Debug, Subcommand)]
pub enum KeystoneCommand {
    /// Generate the IdP, mapping and protocol for EGI Check-in; --apply them.
    Federation(FederationArgs),
    /// Check an existing federation setup; print the Apache and keystone.conf fragments.
    Lint(LintArgs),
}

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Admin account of clouds.yaml; OS_* variables when neither this nor OS_CLOUD is set.
    #[arg(long, env = "OS_CLOUD")]
    pub os_cloud: Option<String>,
    /// A VO and its project (name or id; the VO's name by default). Repeatable.
    #[arg(long = "vo", value_name = "VO[=PROJECT]")]
    pub vos: Vec<String>,
    /// A VO's entitlement when it is not urn:mace:egi.eu:group:<vo>:role=vm_operator#aai.egi.eu.
    #[arg(long = "entitlement", value_name = "VO=URN")]
    pub entitlements: Vec<String>,
    /// Identity provider id.
    #[arg(long, default_value = "egi.eu")]
    pub idp: String,
    /// Check-in issuer (default: production; --demo for aai-demo).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Use the Check-in demo issuer.
    #[arg(long)]
    pub demo: bool,
    /// Mapping id.
    #[arg(long, default_value = "egi-mapping")]
    pub mapping: String,
    /// Protocol name: openid (EGI's docs) or oidc.
    #[arg(long, default_value = "openid")]
    pub protocol: String,
    /// Role the VO groups get on their projects.
    #[arg(long, default_value = "member")]
    pub role: String,
    /// Domain id of the VO groups.
    #[arg(long, default_value = "default")]
    pub group_domain: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

impl SpecArgs {
    fn spec(&self) -> Result<FederationSpec> {
        Ok(siteconf::resolve::keystone::federation_spec(&siteconf::resolve::keystone::FederationFlags {
            vos: &self.vos,
            entitlements: &self.entitlements,
            idp: &self.idp,
            issuer: self.issuer.as_deref(),
            demo: self.demo,
            mapping: &self.mapping,
            protocol: &self.protocol,
            role: &self.role,
            group_domain: &self.group_domain,
        })?)
    }
    async fn session(&self) -> Result<Session> {
        let cfg = CloudConfig::load(self.os_cloud.as_deref())?;
        Session::connect(&cfg).await.with_context(|| format!("authenticating to {}", cfg.auth_url))
    }
}

#[derive(Debug, Args)]
pub struct FederationArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Create or update the objects through the Keystone API (idempotent).
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Project property holding the VO (default: egi.VO, egi.eu:VO, egi.eu_VO or VO).
    #[arg(long)]
    pub vo_property: Option<String>,
    /// Public Keystone URL for the Apache fragment (default: the cloud's auth URL).
    #[arg(long)]
    pub keystone_url: Option<String>,
    /// Horizon URL for keystone.conf's trusted_dashboard.
    #[arg(long, default_value = "https://<horizon>/dashboard")]
    pub horizon_url: String,
}

pub async fn run(args: KeystoneArgs) -> Result<ExitCode> {
    match args.command {
        KeystoneCommand::Federation(a) => federation_cmd(a).await,
        KeystoneCommand::Lint(a) => lint_cmd(a).await,
    }
}

async fn federation_cmd(a: FederationArgs) -> Result<ExitCode> {
    let spec = a.spec.spec()?;
    if spec.vos.is_empty() {
        bail!("no VO given (--vo VO[=PROJECT])");
    }
    if !a.apply {
        println!("{}", serde_json::to_string_pretty(&federation::generate(&spec))?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = a.spec.session().await?;
    let actions = federation::apply(&s, &spec).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    if a.spec.json {
        println!("{}", serde_json::to_string_pretty(&actions)?);
    } else {
        for x in &actions {
            let c = match x.change {
                Change::Created => "created",
                Change::Updated => "updated",
                Change::Unchanged => "unchanged",
            };
            println!("{c:<9} {}", x.object);
        }
        let changed = actions.iter().filter(|x| x.change != Change::Unchanged).count();
        println!("{changed} change(s)");
    }
    Ok(ExitCode::SUCCESS)
}

async fn lint_cmd(a: LintArgs) -> Result<ExitCode> {
    let spec = a.spec.spec()?;
    let s = a.spec.session().await?;
    let props = siteconf::resolve::keystone::vo_properties(a.vo_property.as_deref());
    let report = Report { checks: federation::lint(&s, &spec, &props).await };
    let keystone_url = a.keystone_url.clone().unwrap_or_else(|| s.config().auth_url.clone());
    let apache = federation::apache_fragment(&spec, &keystone_url);
    let conf = federation::keystone_conf_fragment(&spec, &a.horizon_url);
    if a.spec.json {
        let mut v = report.to_json();
        v["apache"] = apache.into();
        v["keystone_conf"] = conf.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", report.to_text());
        println!("\n# ---- Apache (mod_auth_openidc) ----\n{apache}\n# ---- keystone.conf ----\n{conf}");
    }
    Ok(ExitCode::from(report.exit_code()))
}
