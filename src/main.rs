//! The `edgenet` command line (see `cli`).
mod cli;

/// Counts heap use for `edgenet footprint` and `edgenet bench`: a few relaxed atomic adds per
/// allocation, forwarded unchanged to the system allocator.
#[global_allocator]
static ALLOC: edgenet::alloc::CountingAlloc = edgenet::alloc::CountingAlloc::new();

fn main() {
    std::process::exit(cli::main());
}
