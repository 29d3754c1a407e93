//! The S3 file connector binary: every subcommand of the shared connector CLI.

fn main() -> std::process::ExitCode {
    connector_cli::main(s3_files::S3Files)
}
