//! Information discovery: the GLUE 2.1 JSON site description as
//! cloud-info-provider 1.2 emits it. Filled in by issue #5.
