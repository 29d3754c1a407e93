//! Fargate runner (being built).
