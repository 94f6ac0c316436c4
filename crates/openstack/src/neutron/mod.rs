//! Neutron v2.0: floating IPs and ports (limit/marker + `*_links`).

pub mod floating_ips;
pub mod networks;
pub mod ports;

pub use floating_ips::{FloatingIp, ListFloatingIps};
pub use networks::{ListNetworks, Network};
pub use ports::{FixedIp, ListPorts, Port};
