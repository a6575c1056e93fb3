//! The `pare` command-line program.

mod cli;

use pare::profile::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    std::process::exit(cli::main());
}
