//! The child of the checkpoint kill test: runs `crux_tests::kill`'s solve
//! with checkpoints to the path given as the first argument, until killed.

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: ckpt_child CHECKPOINT");
        std::process::exit(2);
    };
    // SIGINT asks the solve to stop at the next chunk boundary.
    let _ = ctrlc::set_handler(crux::interrupt);
    let run = || -> crux::Result<()> {
        let q = crux_tests::kill::problem()?;
        q.problem
            .solve_with(usize::MAX, &crux_tests::kill::options().checkpoint(&path))?;
        Ok(())
    };
    match run() {
        Ok(()) => {}
        Err(e @ crux::Error::Interrupted { .. }) => {
            eprintln!("{e}");
            std::process::exit(130);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
