//! Thin typed async clients for what fedsite needs from Keystone v3, Nova
//! v2.1, Cinder v3, Neutron v2.0 and Glance v2. PLACEHOLDER: being written.
