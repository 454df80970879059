//! `kuvert`: the one binary. `kuvert serve` runs everything in one process; the admin
//! subcommands work on the same data directory or database, also while the server runs.

mod admin;
mod config;
mod instance;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "kuvert",
    version,
    about = "Kuvert: self-hosted, privacy-first email delivery"
)]
struct Cli {
    /// Holds the embedded database and the master key file.
    #[arg(
        long,
        global = true,
        env = "KUVERT_DATA_DIR",
        default_value = "./kuvert-data"
    )]
    data_dir: PathBuf,
    /// PostgreSQL URL; overrides [database] url.
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// TOML configuration file (see kuvert.example.toml).
    #[arg(long, global = true, env = "KUVERT_CONFIG")]
    config: Option<PathBuf>,
    /// Log format on standard error.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "KUVERT_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Print results as JSON, for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: the HTTP API, SMTP submission, the inbound MX and delivery.
    Serve {
        /// A ready-to-try instance: a demo account, a sandbox domain and an API key.
        #[arg(long)]
        dev: bool,
    },
    /// Accounts.
    #[command(subcommand)]
    Account(admin::AccountCmd),
    /// API keys.
    #[command(subcommand)]
    Key(admin::KeyCmd),
    /// Sending domains.
    #[command(subcommand)]
    Domain(admin::DomainCmd),
    /// Support's access to account data (needs the account's grant).
    #[command(subcommand)]
    Support(admin::SupportCmd),
    /// Privacy policy and terms versions.
    #[command(subcommand)]
    Policy(admin::PolicyCmd),
    /// Contacts: import a CSV file, export them.
    #[command(subcommand)]
    Contacts(admin::ContactsCmd),
    /// Templates: save a version from a file, list them, preview one.
    #[command(subcommand)]
    Templates(admin::TemplatesCmd),
    /// Campaigns: list them, show one, pause, resume or cancel one.
    #[command(subcommand)]
    Campaigns(admin::CampaignsCmd),
    /// Privacy requests of account holders.
    #[command(subcommand)]
    Privacy(admin::PrivacyCmd),
    /// Delete what is past its retention (the server also does this daily).
    Purge {
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the OpenAPI document of the HTTP API.
    Openapi,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KUVERT_LOG")
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        println!("{}", kuvert_http::openapi_json());
        return Ok(());
    }
    init_logs(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let dev = matches!(cli.command, Command::Serve { dev: true });
        let config = config::Config::load(cli.config.as_deref(), std::env::vars(), dev)?;
        let instance =
            instance::Instance::open(&cli.data_dir, cli.database_url.as_deref(), config).await?;
        let result = match cli.command {
            Command::Serve { dev } => serve::run(&instance, dev).await,
            Command::Account(cmd) => admin::account(&instance, cmd, cli.json).await,
            Command::Key(cmd) => admin::key(&instance, cmd, cli.json).await,
            Command::Domain(cmd) => admin::domain(&instance, cmd, cli.json).await,
            Command::Support(cmd) => admin::support(&instance, cmd).await,
            Command::Policy(cmd) => admin::policy(&instance, cmd, cli.json).await,
            Command::Privacy(cmd) => admin::privacy(&instance, cmd, cli.json).await,
            Command::Contacts(cmd) => admin::contacts(&instance, cmd, cli.json).await,
            Command::Templates(cmd) => admin::templates(&instance, cmd, cli.json).await,
            Command::Campaigns(cmd) => admin::campaigns(&instance, cmd, cli.json).await,
            Command::Purge { dry_run } => admin::purge(&instance, dry_run, cli.json).await,
            Command::Openapi => Ok(()),
        };
        instance.store.close().await;
        result
    })
}
