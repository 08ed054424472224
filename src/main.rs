fn main() {
    std::process::exit(cirrus::cli::main());
}
