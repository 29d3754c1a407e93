//! Glue runner (being built).
