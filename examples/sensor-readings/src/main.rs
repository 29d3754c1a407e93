//! The connector binary: one CLI for every runner (`spec`, `check`, `discover`,
//! `extract`, `daemon`, Lambda mode, ...), from the shared facade.

fn main() -> std::process::ExitCode {
    connector_cli::main(sensor_readings::SensorReadings)
}
