//! The REST API connector binary: every subcommand of the shared connector CLI.

fn main() -> std::process::ExitCode {
    connector_cli::main(http_api::HttpApi)
}
