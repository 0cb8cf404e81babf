#![forbid(unsafe_code)]

/// mimalloc rather than glibc's malloc: HTTP/2's path allocates per
/// request, and mimalloc's per-size pages also leave less of a burst of
/// connections behind. Built with `no_thp`: it asks for no transparent
/// huge pages (2 MiB pages held 6 MiB of a resting proxy). See
/// docs/ARCHITECTURE.md, "Dependencies and why".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(shoal::cli::main());
}
