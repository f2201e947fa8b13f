mod api;
mod differential;
mod durability;
mod ingest;
mod interop;
mod query;
mod scrape;
mod support;
