//! Delivery: the dirq QueueSimple spool, S/MIME signing, the AMS client,
//! sender and receiver. Filled in by issue #4.
