//! Process start-up as a go-plugin: the magic cookie, AutoMTLS, the one-line
//! handshake on stdout, and the go-plugin side services (controller, stdio,
//! broker) next to the tfplugin6 `Provider` service.
//!
//! Facts this relies on (measured with Terraform 1.15.5, see
//! `../shared/notes/terraform-plugin-protocol.md`): Terraform's client cert
//! is a P-521 CA-flagged self-signed cert, so the verifier accepts exactly the
//! DER announced in `PLUGIN_CLIENT_CERT` and checks the handshake signature
//! with aws-lc-rs; ALPN must be h2; every socket needs TCP_NODELAY; and
//! `GRPCController.Shutdown` must end the process or core waits 2 s for it.

use std::io;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::Connected;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::plugin as gp;
use crate::proto::tfplugin6::provider_server::ProviderServer;
use crate::resource::Provider;
use crate::server::Server;

pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// Largest message accepted or sent: states of big resources exceed gRPC's 4 MiB default.
const MAX_MESSAGE: usize = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("Terraform offered plugin protocol versions {0:?}; this provider speaks only 6 (Terraform 1.0 or later)")]
    Protocol(String),
    #[error(
        "PLUGIN_CLIENT_CERT is missing or not a PEM certificate; Terraform sets it unless TF_DISABLE_PLUGIN_TLS is set"
    )]
    ClientCert,
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("listening on loopback: {0}")]
    Io(#[from] io::Error),
    #[error("gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// True when Terraform (or go-plugin) started this process.
pub fn launched_by_terraform() -> bool {
    std::env::var(MAGIC_COOKIE_KEY).is_ok_and(|v| v == MAGIC_COOKIE_VALUE)
}

/// The whole `main` of a provider binary.
pub fn main<P: Provider>(provider: P) -> ExitCode {
    if !launched_by_terraform() {
        eprintln!(
            "This binary is a plugin. These are not meant to be executed directly.\n\
             Please execute the program that consumes these plugins, which will\n\
             load any plugins automatically"
        );
        return ExitCode::from(1);
    }
    init_logging();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(provider)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr (stdout carries the handshake); Terraform shows them
/// under `TF_LOG` / `TF_LOG_PROVIDER`.
fn init_logging() {
    let level = std::env::var("TF_LOG_PROVIDER")
        .or_else(|_| std::env::var("TF_LOG"))
        .map(|l| l.to_ascii_lowercase())
        .unwrap_or_else(|_| "warn".into());
    let level = match level.as_str() {
        "trace" | "debug" | "info" | "warn" | "error" => level,
        "json" => "trace".into(),
        _ => "warn".into(),
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(io::stderr)
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new(level))
        .try_init();
}

/// Serves `provider` until Terraform shuts it down.
pub async fn serve<P: Provider>(provider: P) -> Result<(), ServeError> {
    if let Ok(v) = std::env::var("PLUGIN_PROTOCOL_VERSIONS")
        && !v.split(',').any(|x| x.trim() == "6")
    {
        return Err(ServeError::Protocol(v));
    }
    let tls = if std::env::var_os("TF_DISABLE_PLUGIN_TLS").is_some() { None } else { Some(tls_setup()?) };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;

    let server = Arc::new(Server::new(provider));
    let shutdown = CancellationToken::new();
    let (tx, rx) = mpsc::channel::<io::Result<Io>>(16);
    let acceptor = tls.as_ref().map(|(cfg, _)| TlsAcceptor::from(cfg.clone()));
    tokio::spawn(accept_loop(listener, acceptor, tx));

    let cert_field = tls.as_ref().map(|(_, der)| base64::engine::general_purpose::STANDARD_NO_PAD.encode(der));
    {
        use std::io::Write;
        let mut out = io::stdout().lock();
        writeln!(out, "1|6|tcp|{addr}|grpc|{}", cert_field.unwrap_or_default())?;
        out.flush()?;
    }
    tracing::info!(%addr, "provider {} serving", server.provider_name());

    let stop = server.stop_token();
    let grpc = tonic::transport::Server::builder()
        .add_service(
            ProviderServer::new(server).max_decoding_message_size(MAX_MESSAGE).max_encoding_message_size(MAX_MESSAGE),
        )
        .add_service(gp::grpc_controller_server::GrpcControllerServer::new(Controller { shutdown: shutdown.clone() }))
        .add_service(gp::grpc_stdio_server::GrpcStdioServer::new(Stdio))
        .add_service(gp::grpc_broker_server::GrpcBrokerServer::new(Broker))
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            shutdown.clone().cancelled_owned(),
        );
    tokio::select! {
        r = grpc => r?,
        // Terraform keeps its connection open after Shutdown; do not wait on it long.
        _ = async { shutdown.cancelled().await; tokio::time::sleep(Duration::from_millis(500)).await } => {}
    }
    stop.cancel();
    Ok(())
}

async fn accept_loop(listener: TcpListener, acceptor: Option<TlsAcceptor>, tx: mpsc::Sender<io::Result<Io>>) {
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                continue;
            }
        };
        // Without this each RPC round trip stalls ~40 ms on delayed ACKs.
        let _ = sock.set_nodelay(true);
        let tx = tx.clone();
        match acceptor.clone() {
            None => {
                if tx.send(Ok(Io::Plain(sock))).await.is_err() {
                    return;
                }
            }
            Some(acc) => {
                tokio::spawn(async move {
                    match acc.accept(sock).await {
                        Ok(s) => {
                            let _ = tx.send(Ok(Io::Tls(Box::new(s)))).await;
                        }
                        Err(e) => tracing::error!("TLS handshake with Terraform failed: {e}"),
                    }
                });
            }
        }
    }
}

fn tls_setup() -> Result<(Arc<rustls::ServerConfig>, Vec<u8>), ServeError> {
    let pem = std::env::var("PLUGIN_CLIENT_CERT").map_err(|_| ServeError::ClientCert)?;
    let client = CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|_| ServeError::ClientCert)?;
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let key =
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| ServeError::Tls(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| ServeError::Tls(e.to_string()))?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.self_signed(&key).map_err(|e| ServeError::Tls(e.to_string()))?;
    let der = cert.der().to_vec();

    let verifier = Arc::new(ExactClientCert { der: client, crypto: crypto.clone() });
    let mut cfg = rustls::ServerConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok((Arc::new(cfg), der))
}

/// Accepts exactly the client certificate Terraform announced; the TLS
/// handshake signature proves the peer holds its key.
#[derive(Debug)]
struct ExactClientCert {
    der: CertificateDer<'static>,
    crypto: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ExactClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.der.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General("client certificate is not the one announced in PLUGIN_CLIENT_CERT".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.crypto.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.crypto.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.crypto.signature_verification_algorithms.supported_schemes()
    }
}

/// A connection, plain or TLS.
enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connected for Io {
    type ConnectInfo = ();
    fn connect_info(&self) -> Self::ConnectInfo {}
}

impl AsyncRead for Io {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

struct Controller {
    shutdown: CancellationToken,
}

#[tonic::async_trait]
impl gp::grpc_controller_server::GrpcController for Controller {
    async fn shutdown(&self, _: Request<()>) -> Result<Response<()>, Status> {
        tracing::debug!("GRPCController.Shutdown: exiting");
        self.shutdown.cancel();
        Ok(Response::new(()))
    }
}

type Pending<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Logs go to stderr directly, so the stdio stream stays open and silent.
struct Stdio;

#[tonic::async_trait]
impl gp::grpc_stdio_server::GrpcStdio for Stdio {
    type StreamStdioStream = Pending<gp::StdioData>;
    async fn stream_stdio(&self, _: Request<()>) -> Result<Response<Self::StreamStdioStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}

/// Terraform providers never broker extra connections.
struct Broker;

#[tonic::async_trait]
impl gp::grpc_broker_server::GrpcBroker for Broker {
    type StartStreamStream = Pending<gp::ConnInfo>;
    async fn start_stream(
        &self,
        _: Request<Streaming<gp::ConnInfo>>,
    ) -> Result<Response<Self::StartStreamStream>, Status> {
        Ok(Response::new(Box::pin(tokio_stream::pending())))
    }
}
