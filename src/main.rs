use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    cutover::cli::small_pages();
    if let Err(e) = color_eyre::install() {
        eprintln!("warning: error reporting not installed: {e}");
    }
    let cli = cutover::cli::Cli::parse();
    if cli.command.as_ref().is_some_and(|c| c.only_reports()) {
        cutover::cli::end_quietly_on_closed_pipe();
    }
    let _log = match cutover::logging::init(cli.log_file.clone()) {
        Ok(guard) => Some(guard),
        Err(e) => {
            eprintln!("warning: logging disabled: {e:#}");
            None
        }
    };
    let code = cutover::cli::main_with(cli);
    drop(_log);
    std::process::exit(code);
}
