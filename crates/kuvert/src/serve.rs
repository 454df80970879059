//! `kuvert serve`: every part in one process, stopped gracefully by SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use kuvert_core::apikey::Scope;
use kuvert_http::{AppState, Metrics};
use kuvert_store::StoreError;
use kuvert_submit::Acceptor;

use crate::instance::Instance;

pub const DEV_EMAIL: &str = "demo@sandbox.kuvert.test";
pub const DEV_DOMAIN: &str = "sandbox.kuvert.test";
const DEV_KEY_FILE: &str = "dev-api-key";

pub async fn run(instance: &Instance, dev: bool) -> Result<()> {
    let config = &instance.config;
    let dev_key = if dev {
        Some(dev_setup(instance).await?)
    } else {
        None
    };
    // Bound first: tracking links point at it unless [tracking] base_url says otherwise.
    let listen: SocketAddr = config.http.listen.parse()?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} ([http] listen)"))?;
    let addr = listener.local_addr()?;
    let mut delivery = config.delivery.clone();
    delivery.tracking_base_url = if config.tracking.base_url.is_empty() {
        format!("http://{addr}")
    } else {
        config.tracking.base_url.clone()
    };
    // The public form and its confirmation links are reached where the tracking links are.
    let delivery_base_url = delivery.tracking_base_url.clone();
    // Delivery uses a caching resolver (MX answers are kept for their TTL); domain
    // verification does not (a record just published must be seen at once).
    let engine = kuvert_mta::Engine::start(
        instance.store.clone(),
        delivery,
        kuvert_dns::Dns::new(&config.nameservers()?, kuvert_dns::Caching::On)?,
        &config.domain_settings(),
        &instance.node_id()?,
    );
    tracing::info!(mode = ?config.delivery.mode, "delivery started");
    let _webhooks = kuvert_webhooks::Dispatcher::start(
        instance.store.clone(),
        config.webhooks.clone(),
        instance.dns()?,
    );
    // Rotations and new keys end without anyone calling verify.
    let _dkim = kuvert_admin::dkim::start_rotations(
        instance.store.clone(),
        instance.dns()?,
        config.domain_settings(),
    );
    let acceptor = instance.acceptor().notify_on_queue(engine.waker());
    let notices = kuvert_admin::notices::Notices::open(
        &instance.store,
        acceptor.clone(),
        &config.notices_from(),
        &config.domain_settings(),
    )
    .await?;
    let _domain_health = kuvert_admin::health::DomainHealth {
        store: instance.store.clone(),
        dns: instance.dns()?,
        notices: notices.clone(),
        settings: config.domain_settings(),
    }
    .start();
    let _reputation = kuvert_admin::reputation::ReputationGuard {
        store: instance.store.clone(),
        notices: notices.clone(),
        plans: config.plan_limits(),
    }
    .start();
    // TLS reports of the sessions counted under recipient domains' MTA-STS policies; they go
    // out as the notices account's mail, which MTA-STS must not hold back.
    engine.exempt_reports_of(notices.account().clone());
    let sts = &config.delivery.mta_sts;
    let report_dns = instance.dns()?;
    let _tls_reports = (config.delivery.mode == kuvert_mta::Mode::Mx && sts.enabled).then(|| {
        let extra_roots = (!sts.ca_file.is_empty())
            .then(|| std::fs::read(&sts.ca_file).ok())
            .flatten();
        kuvert_admin::tls_reports::TlsReporter::new(
            instance.store.clone(),
            report_dns,
            notices.clone(),
            &config.domain_settings().hostname,
            sts.allow_private,
            extra_roots.as_deref(),
        )
        .start()
    });
    let _housekeeping = kuvert_admin::retention::Housekeeping {
        store: instance.store.clone(),
        retention: config.retention_policy(),
        inactivity: config.inactivity_policy(),
        notices: notices.clone(),
        interval: config.retention.purge_interval.0,
    }
    .start();
    // One registry for `/metrics`: each part registers its series, read at every scrape.
    let mut registry = prometheus_client::registry::Registry::default();
    acceptor.register_metrics(&mut registry);
    engine.register_metrics(&mut registry);
    instance.store.register_metrics(&mut registry);
    let (stop_smtp, smtp_stopped) = tokio::sync::watch::channel(false);
    let (stop_imports, imports_stopped) = tokio::sync::watch::channel(false);
    let campaigns_stopped = imports_stopped.clone();
    let importer = kuvert_admin::contacts::import::Importer::new(
        instance.store.clone(),
        &instance.node_id()?,
        imports_stopped,
    );
    let imports = importer.waker();
    let importer = tokio::spawn(importer.run(std::time::Duration::from_secs(5)));
    let runner = kuvert_admin::campaigns::CampaignRunner::new(
        instance.store.clone(),
        acceptor.clone(),
        &instance.node_id()?,
        campaigns_stopped,
    );
    let campaigns = runner.waker();
    let runner = tokio::spawn(runner.run(std::time::Duration::from_secs(5)));
    let smtp = start_smtp(instance, dev, acceptor.clone(), smtp_stopped, &mut registry).await?;
    let optin = kuvert_admin::contacts::optin::OptIn::new(
        instance.store.clone(),
        acceptor.clone(),
        &delivery_base_url,
    );
    let state = Arc::new(AppState {
        store: instance.store.clone(),
        acceptor,
        optin,
        form_hits: kuvert_core::ratelimit::RateLimiter::per_minute(
            config.contacts.form_requests_per_minute,
            config.contacts.form_requests_per_minute,
        ),
        form_addresses: kuvert_http::form_addresses(),
        form_work: Arc::new(tokio::sync::Semaphore::new(kuvert_http::MAX_FORM_WORK)),
        dns: instance.dns()?,
        domain_settings: config.domain_settings(),
        metrics: Metrics::new(registry),
        allow_private_webhooks: config.webhooks.allow_private,
        stopping: tokio::sync::watch::channel(false).0,
        notices,
        account_purge_after: config.retention.deleted_accounts.0,
        password_attempts: kuvert_http::password_attempts(),
        streams: Default::default(),
        imports,
        campaigns,
        max_import_bytes: config.contacts.max_import_bytes,
        disposable_domains: config.contacts.disposable_domains.clone(),
        tracking_hits: kuvert_core::ratelimit::RateLimiter::per_minute(
            config.tracking.requests_per_minute,
            config.tracking.requests_per_minute,
        ),
    });
    tracing::info!(%addr, "http listening");
    if let Some(key) = dev_key {
        print_dev_banner(addr, &key);
    }
    let limits = kuvert_http::ServeLimits {
        max_connections: config.http.max_connections.max(1) as usize,
        header_read_timeout: config.http.header_read_timeout.0,
    };
    kuvert_http::serve(listener, state, limits, shutdown_signal()).await?;
    let _ = stop_smtp.send(true);
    for listener in smtp {
        let _ = listener.await;
    }
    tracing::info!("stopped accepting; in-flight requests finished");
    // An import stops between batches; the next start resumes it.
    let _ = stop_imports.send(true);
    let _ = importer.await;
    let _ = runner.await;
    engine.shutdown(std::time::Duration::from_secs(30)).await;
    tracing::info!("delivery stopped");
    Ok(())
}

/// The SMTP submission listeners ([smtp]); their tasks end when `stop` turns true.
async fn start_smtp(
    instance: &Instance,
    dev: bool,
    acceptor: Acceptor,
    stop: tokio::sync::watch::Receiver<bool>,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let c = &instance.config.smtp;
    let (cert, key) = if c.tls_cert.is_empty() && dev {
        // A dev instance offers STARTTLS with a certificate of its own making.
        let cert = instance.data_dir.join("dev-tls-cert.pem");
        let key = instance.data_dir.join("dev-tls-key.pem");
        if !cert.exists() || !key.exists() {
            let (c_pem, k_pem) = kuvert_smtpd::tls::self_signed(&instance.config.domains.hostname)?;
            std::fs::write(&cert, c_pem)?;
            write_private(&key, &k_pem)?;
        }
        (Some(cert), Some(key))
    } else if c.tls_cert.is_empty() {
        (None, None)
    } else {
        (
            Some(c.tls_cert.clone().into()),
            Some(c.tls_key.clone().into()),
        )
    };
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => Some(kuvert_smtpd::tls::acceptor(&cert, &key)?),
        _ => None,
    };
    let ctx = kuvert_smtpd::SmtpContext::new(
        instance.store.clone(),
        acceptor,
        c.clone(),
        &instance.config.domain_settings(),
        tls.clone(),
    );
    ctx.register_metrics(registry);
    let mut tasks = Vec::new();
    use kuvert_smtpd::Listener;
    for (listen, what) in [
        (&c.submission_listen, Listener::Submission),
        (&c.submission_tls_listen, Listener::SubmissionTls),
        (&c.inbound_listen, Listener::Inbound),
    ] {
        let kind = what.name();
        if listen.is_empty() || (what == Listener::SubmissionTls && tls.is_none()) {
            continue;
        }
        let listener = tokio::net::TcpListener::bind(listen.as_str())
            .await
            .with_context(|| format!("cannot listen on {listen} ([smtp] {kind}_listen)"))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, kind, tls = tls.is_some(), "smtp listening");
        tasks.push(tokio::spawn(kuvert_smtpd::serve(
            listener,
            ctx.clone(),
            what,
            stop.clone(),
        )));
    }
    Ok(tasks)
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down");
}

/// The demo account, sandbox domain and API key of `serve --dev`, made on first start and
/// reused after. The key is kept in the data directory so that it can be shown again.
async fn dev_setup(instance: &Instance) -> Result<String> {
    let store = &instance.store;
    let account = match store.find_account(DEV_EMAIL).await {
        Ok(a) => a,
        Err(StoreError::NotFound(_)) => {
            let password = kuvert_core::password::random();
            let (account, _) = kuvert_admin::create_account(
                store,
                kuvert_admin::AccountRequest {
                    email: DEV_EMAIL.into(),
                    password,
                    plan: Default::default(),
                    region: Default::default(),
                    company: kuvert_core::account::CompanyProfile {
                        company: Some("Kuvert demo".into()),
                        ..Default::default()
                    },
                    owner: Default::default(),
                },
            )
            .await?;
            // A trial should not stop at a new account's warm-up.
            store.set_warmup(&account.id, None).await?;
            tracing::info!(account = %account.id, "created the demo account");
            account
        }
        Err(e) => return Err(e.into()),
    };
    if store.account_domain(&account.id, DEV_DOMAIN).await.is_err() {
        kuvert_admin::add_domain(
            store,
            &account.id,
            DEV_DOMAIN,
            &instance.config.domain_settings(),
            true,
        )
        .await?;
    }
    let key_file = instance.data_dir.join(DEV_KEY_FILE);
    if let Ok(key) = std::fs::read_to_string(&key_file) {
        let key = key.trim().to_owned();
        if store
            .authenticate(&kuvert_core::apikey::hash_key(&key))
            .await?
            .is_some()
        {
            return Ok(key);
        }
    }
    let (_, secret) = kuvert_admin::create_key(store, &account.id, "dev", Scope::Full).await?;
    write_private(&key_file, &secret)?;
    Ok(secret)
}

fn write_private(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

fn print_dev_banner(addr: SocketAddr, key: &str) {
    println!(
        "\nKuvert dev instance on http://{addr}\n\
         \n  account:  {DEV_EMAIL}\
         \n  domain:   {DEV_DOMAIN} (sandbox: sends without DNS verification)\
         \n  API key:  {key}\n\
         \nSend a message:\n\
         \n  curl -s http://{addr}/v1/messages -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\\
         \n    -d '{{\"from\": \"Demo <{DEV_EMAIL}>\", \"to\": [\"you@example.com\"], \"subject\": \"Hello\", \"text\": \"It works.\"}}'\n\
         \nList its events:\n\
         \n  curl -s http://{addr}/v1/events -H 'Authorization: Bearer {key}'\n"
    );
}
