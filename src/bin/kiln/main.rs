//! The `kiln` command-line tool: a thin layer over the library.

fn main() {
    eprintln!("kiln: no subcommands are available in this build yet");
    std::process::exit(2);
}
