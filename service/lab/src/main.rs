//! `tundra-lab`: run a simulated site until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
tundra-lab — a simulated site for tundrad (needs root: it builds network namespaces)

USAGE:
    tundra-lab up --site FILE [--dir DIR] [--venv DIR]
        Build the site and run it until SIGINT/SIGTERM, then tear it all down.
        Writes DIR/lab.json (mode 0600): the provisioning network to give tundrad
        (interface, address, pool) and every machine's BMC and MACs.
        DIR defaults to .tundra/lab, the venv to .venv (scripts/setup.sh).
    tundra-lab clean
        Remove what crashed labs left behind (namespaces, links, emulators).
    tundra-lab image build [--set NAME]... [--package PKG]... [--qcow2] [--bootable] [--cache DIR]
        Build a Debian 12 node image offline from Debian packages (the machine's
        apt sources): GPT, ext4 root labelled `root`, systemd, cloud-init, sshd,
        plus the named package sets (slurm, dask, ceph-client, nfs-client,
        glusterfs-client, docker, jupyterhub) and packages. Cached by content in
        DIR (default .venv/images): the same recipe again is a no-op. Prints the
        image's paths as JSON. --bootable adds Debian's kernel and extlinux, for
        QEMU machines (which boot the disk through their BIOS).
    tundra-lab ramdisk build --agent FILE [--cache DIR]
        Debian's kernel and an initramfs running FILE (tundra-agent) after a DHCP
        lease: tundrad's boot assets (vmlinuz, initramfs) for QEMU machines.
        The namespace machines run the agent inside it too. Cached in DIR.
    tundra-lab ssh --lab DIR MACHINE [-i KEY] [--user USER] [-- COMMAND...]
        SSH into the OS a lab machine booted from its disk, as a person would:
        to its address on the provisioning network, through the lab fabric.
        USER defaults to debian (cloud-init's default user). Every deploy makes
        new host keys, so the lab's nodes are not pinned in known_hosts.
";

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// Every value of a repeated option.
fn args_of(args: &[String], name: &str) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == name).map(|w| w[1].clone()).collect()
}

fn image_build(args: &[String]) -> anyhow::Result<()> {
    let recipe = tundra_lab::image::Recipe {
        sets: args_of(args, "--set"),
        packages: args_of(args, "--package"),
        qcow2: args.iter().any(|a| a == "--qcow2"),
        bootable: args.iter().any(|a| a == "--bootable"),
    };
    let cache = PathBuf::from(arg(args, "--cache").unwrap_or_else(|| ".venv/images".into()));
    let built = tundra_lab::image::build(&recipe, &std::path::absolute(cache)?)?;
    println!("{}", serde_json::to_string_pretty(&built)?);
    Ok(())
}

fn ramdisk_build(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let agent = PathBuf::from(arg(args, "--agent").context("--agent FILE is required (see --help)")?);
    let cache = PathBuf::from(arg(args, "--cache").unwrap_or_else(|| ".venv/images".into()));
    let built = tundra_lab::ramdisk::build(&agent, &std::path::absolute(cache)?)?;
    println!("{}", serde_json::to_string_pretty(&built)?);
    Ok(())
}

fn ssh(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let (ours, command) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => (args, &[][..]),
    };
    let dir = PathBuf::from(arg(ours, "--lab").unwrap_or_else(|| ".tundra/lab".into()));
    let mut skip = false;
    let mut positional = Vec::new();
    for a in ours {
        if skip {
            skip = false;
        } else if matches!(a.as_str(), "--lab" | "-i" | "--user") {
            skip = true;
        } else {
            positional.push(a.clone());
        }
    }
    let [machine] = positional.as_slice() else {
        anyhow::bail!("name one machine of the lab (see --help)");
    };
    let lab: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("lab.json"))
            .with_context(|| format!("reading {}/lab.json (is the lab up?)", dir.display()))?,
    )?;
    let address = tundra_lab::os_address(&lab, machine)?;
    let user = arg(ours, "--user").unwrap_or_else(|| "debian".into());
    let mut c = std::process::Command::new("ssh");
    c.args(tundra_lab::ssh_options());
    if let Some(k) = arg(ours, "-i") {
        c.arg("-i").arg(k);
    }
    c.arg(format!("{user}@{address}")).args(command);
    let status = c.status().context("running ssh (openssh-client)")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(255));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("up") => up(&args).await,
        Some("image") if args.get(1).map(String::as_str) == Some("build") => image_build(&args[2..]),
        Some("ramdisk") if args.get(1).map(String::as_str) == Some("build") => ramdisk_build(&args[2..]),
        Some("ssh") => ssh(&args[1..]),
        Some("clean") => {
            let removed = tundra_lab::fabric::remove_leftovers();
            println!("removed {} lab(s) {:?}", removed.len(), removed);
            Ok(())
        }
        Some("-h" | "--help") | None => {
            print!("{HELP}");
            Ok(())
        }
        Some(other) => Err(anyhow::anyhow!("unknown command {other:?} (see --help)")),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tundra-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn up(args: &[String]) -> anyhow::Result<()> {
    use anyhow::Context;
    let site_file = arg(args, "--site").context("--site FILE is required (see --help)")?;
    let text = std::fs::read_to_string(&site_file).with_context(|| format!("reading {site_file}"))?;
    let site = tundra_lab::site::Site::parse(&text).map_err(|e| anyhow::anyhow!("{site_file}: {e}"))?;
    let dir = PathBuf::from(arg(args, "--dir").unwrap_or_else(|| ".tundra/lab".into()));
    let venv = PathBuf::from(arg(args, "--venv").unwrap_or_else(|| ".venv".into())).join("bin");
    let dir = std::path::absolute(&dir)?;
    let lab = tundra_lab::Lab::start(&site, &tundra_lab::Options { dir: dir.clone(), venv }).await?;
    let out = dir.join("lab.json");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&out)?;
        f.write_all(serde_json::to_string_pretty(&lab.describe())?.as_bytes())?;
    }
    tracing::info!(lab = %lab.id, machines = lab.machines.len(), interface = %lab.provisioning.interface, file = %out.display(), "lab up");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("tearing the lab down");
    lab.stop().await;
    Ok(())
}
