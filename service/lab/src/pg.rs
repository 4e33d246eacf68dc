//! A throwaway PostgreSQL cluster for a lab site with replicas: Debian's
//! binaries, a temp dir, a free loopback port; it can be stopped and started
//! again (the chaos suite's database faults) and is removed on drop.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

pub struct Pg {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    pub url: String,
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// A PostgreSQL tool, as the `postgres` user when we are root (initdb refuses root).
fn tool(bin: &Path, name: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(name));
        c
    } else {
        Command::new(bin.join(name))
    }
}

fn run(mut c: Command, what: &str) -> anyhow::Result<()> {
    let out = c.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

impl Pg {
    pub fn start() -> anyhow::Result<Pg> {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed; run scripts/setup.sh")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .collect();
        versions.sort();
        let bin = versions.pop().context("no initdb under /usr/lib/postgresql/*/bin; run scripts/setup.sh")?;
        let dir = tempfile::Builder::new().prefix("tundra-pg-").tempdir()?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(dir.path());
                    c
                },
                "chown postgres",
            )?;
        }
        let mut init = tool(&bin, "initdb");
        init.args(["-A", "trust", "-U", "tundra", "--no-sync", "-E", "UTF8", "-D"]).arg(dir.path().join("data"));
        run(init, "initdb")?;
        // Below the ephemeral range: once stopped, its port must not become
        // some client's source port before it starts again.
        let port = (0..200)
            .map(|_| 20000 + (crate::faults::unit() * 12000.0) as u16)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .context("no free port in 20000–31999 for PostgreSQL")?;
        let pg = Pg { url: format!("postgres://tundra@127.0.0.1:{port}/postgres"), dir, bin, port };
        pg.up()?;
        Ok(pg)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Start the (stopped) server again on its port.
    pub fn up(&self) -> anyhow::Result<()> {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        let mut c = tool(&self.bin, "pg_ctl");
        c.args(["-w", "-t", "60", "-D"]).arg(self.dir.path().join("data")).args(["-o", &opts, "-l"]);
        c.arg(self.dir.path().join("log")).arg("start");
        run(c, "pg_ctl start").map_err(|e| {
            let log = std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default();
            anyhow::anyhow!("{e}\n{log}")
        })
    }

    /// Stop the server: `fast` ends sessions and shuts down cleanly,
    /// `immediate` is a crash.
    pub fn down(&self, how: &str) -> anyhow::Result<()> {
        let mut c = tool(&self.bin, "pg_ctl");
        c.args(["-w", "-m", how, "-D"]).arg(self.dir.path().join("data")).arg("stop");
        run(c, "pg_ctl stop")
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = self.down("immediate");
    }
}
