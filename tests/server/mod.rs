mod api;
mod durability;
mod ingest;
mod interop;
mod query;
mod support;
