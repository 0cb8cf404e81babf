#![forbid(unsafe_code)]

fn main() {
    std::process::exit(shoal::cli::main());
}
