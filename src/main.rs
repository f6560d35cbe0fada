//! The `edgenet` command line (see `cli`).
mod cli;

fn main() {
    std::process::exit(cli::main());
}
