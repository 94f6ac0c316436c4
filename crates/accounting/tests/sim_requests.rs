//! Request economy against the sim: flavors, images and users once per run,
//! one all-projects listing per resource with a system reader (servers: the
//! changed ones, and the live ones instead of a GET per usage-only server),
//! bounded totals
//! (cASO: ~10 tokens and ~30 calls per project: testdata/caso-5.2.2/api-requests.log).

use std::collections::BTreeMap;

use accounting::ExtractConfig;
use apel::{ApelText, SiteName, Window};

fn window() -> Window {
    Window::new("2023-05-21T00:00:00Z".parse().unwrap(), "2023-05-25T00:00:00Z".parse().unwrap()).unwrap()
}

async fn run(scenario: &str) -> (BTreeMap<String, u64>, usize, usize) {
    let spec = sim::scenario::builtin(scenario).unwrap();
    let sim = sim::start(sim::SimConfig::new(spec.generate())).await.unwrap();
    let c =
        openstack::CloudConfig::from_clouds_yaml(&sim.clouds_yaml(), None, "sim-accounting", "clouds.yaml").unwrap();
    let s = openstack::Session::connect(&c).await.unwrap();
    s.reset_counters();
    let cfg = ExtractConfig::new(SiteName::new("TEST-SITE").unwrap(), ApelText::new("TEST-SITE-cloud").unwrap());
    let x = accounting::Extract::new(&s, &cfg, |_| window()).run().await;
    let counts: BTreeMap<String, u64> = s.counters().into_iter().map(|(k, v)| (k.to_string(), v.calls)).collect();
    let servers = x.records().filter(|r| matches!(r, apel::Record::Cloud(_))).count();
    let projects = x.projects.len();
    eprintln!("{scenario}: {projects} projects, {servers} cloud records, {} requests", counts.values().sum::<u64>());
    for (k, v) in &counts {
        eprintln!("  {v:5} {k}");
    }
    sim.stop().await;
    (counts, projects, servers)
}

fn get(c: &BTreeMap<String, u64>, k: &str) -> u64 {
    c.get(k).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_fetches_flavors_images_and_listings_once() {
    let (c, projects, _) = run("tiny").await;
    assert_eq!(projects, 3);
    assert_eq!(get(&c, "compute GET /flavors/detail"), 1);
    assert_eq!(get(&c, "image GET /images"), 1);
    assert_eq!(get(&c, "identity GET /projects"), 1);
    // The changes-since listing, and one of the live servers that replaces the
    // per-server GETs of the usage-only servers (more of them than its pages).
    assert_eq!(get(&c, "compute GET /servers/detail"), 2, "two all-projects listings");
    assert_eq!(get(&c, "compute GET /servers/{id}"), 0, "usage-only servers come from the live listing");
    assert_eq!((get(&c, "identity GET /users"), get(&c, "identity GET /users/{id}")), (1, 0), "users listed once");
    assert_eq!(get(&c, "compute GET /os-simple-tenant-usage"), 1, "one usage listing per window");
    assert_eq!(get(&c, "volume GET /volumes/detail"), 1);
    assert_eq!(get(&c, "network GET /floatingips"), 1);
    assert_eq!(get(&c, "compute GET /flavors/{id}/os-extra_specs"), 0, "extra specs come embedded (2.61)");
    // one token per project scope at most (projects with a VO)
    assert!(get(&c, "identity POST /auth/tokens") <= 2, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_runs_with_bounded_requests() {
    let (c, projects, servers) = run("small").await;
    assert!(projects >= 5, "{projects}");
    assert_eq!(get(&c, "compute GET /flavors/detail"), 1);
    assert_eq!(get(&c, "image GET /images"), 1);
    assert_eq!(get(&c, "compute GET /servers/detail"), 2);
    assert_eq!(get(&c, "compute GET /servers/{id}"), 0);
    assert_eq!((get(&c, "identity GET /users"), get(&c, "identity GET /users/{id}")), (1, 0));
    assert_eq!(get(&c, "volume GET /volumes/detail"), 1);
    assert_eq!(get(&c, "network GET /floatingips"), 1);
    let tokens = get(&c, "identity POST /auth/tokens");
    assert!(tokens <= projects as u64, "tokens {tokens} for {projects} projects");
    // Per server: instance actions (+ a GET for usage-only ones); per user one lookup.
    let total: u64 = c.values().sum();
    assert!(total <= 10 + projects as u64 * 3 + servers as u64 * 2 + 40, "total {total}: {c:?}");
}
