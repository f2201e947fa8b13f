//! The server's integration tests: one binary, modules by subject, shared fixtures in `support`.

mod server;
