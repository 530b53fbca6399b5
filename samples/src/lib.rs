//! Shared pieces of the sample programs: the `--inspect` / `--ir` reports.

#![warn(missing_docs)]

pub mod problems;

use crux::LogDensity;

/// The compiler-report flags every sample takes.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Print per-stage compiler statistics as JSON and stop.
    #[arg(long)]
    pub inspect: bool,
    /// Print the graph IR of a stage (traced, differentiated, staged, optimised) and stop.
    #[arg(long, value_name = "STAGE")]
    pub ir: Option<String>,
}

/// The `--inspect` JSON object: points, parameter count, and per-stage
/// node, flop and transcendental counts in pipeline order.
pub fn inspect_json(ld: &LogDensity) -> serde_json::Value {
    let stages: Vec<serde_json::Value> = ld
        .stages()
        .iter()
        .map(|s| {
            serde_json::json!({
                "stage": s.stage,
                "nodes": s.nodes,
                "flops": s.flops,
                "transcendentals": s.transcendentals,
            })
        })
        .collect();
    serde_json::json!({
        "points": ld.num_points(),
        "params": ld.dim(),
        "stages": stages,
    })
}

/// Handles `--inspect` and `--ir STAGE`: prints the report and returns
/// `true` when one of them was requested (the sample then stops).
pub fn report(ld: &LogDensity, args: &InspectArgs) -> crux::Result<bool> {
    if let Some(stage) = &args.ir {
        print!("{}", ld.stage_ir(stage)?);
        return Ok(true);
    }
    if args.inspect {
        println!("{}", inspect_json(ld));
        return Ok(true);
    }
    Ok(false)
}

/// Prints an error and its chain of causes, then exits with status 1.
pub fn exit_with(e: crux::Error) -> ! {
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        eprintln!("  caused by: {cause}");
        source = cause.source();
    }
    std::process::exit(1)
}
