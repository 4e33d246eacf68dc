//! `tundrad`: everything is in the library (`cli.rs` parses the arguments).

fn main() -> std::process::ExitCode {
    tundrad::cli::main()
}
