//! A private Kamailio 5.6 registrar/proxy per test, configured by
//! `tests/interop/pbx/kamailio.cfg`.
//!
//! Each [`Kamailio`] has its own loopback port (UDP and TCP share the number; TLS, when
//! enabled, gets a second one), its own temp dir (db_text tables, pid file, ctl socket, log) and runs in the foreground
//! (`-DD -E`) in its own process group, so dropping it stops every Kamailio process.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{dump_log, find_binary, free_port, poll_until, read_lossy, send_signal, temp_dir};

/// The Kamailio configuration kept in the project.
pub const KAMAILIO_CFG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/interop/pbx/kamailio.cfg"
);

/// Realm and local domain of the test PBX (the cfg's `DOMAIN` define).
pub const DOMAIN: &str = "127.0.0.1";

/// How a test PBX is set up.
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    /// Subscribers as (user, password); all in [`DOMAIN`].
    pub users: Vec<(String, String)>,
    /// Registrar `min_expires`: shorter REGISTERs are rejected with 423 and Min-Expires.
    pub min_expires: u32,
    /// Listen on UDP.
    pub udp: bool,
    /// Listen on TCP (same port number as UDP).
    pub tcp: bool,
    /// Listen on TLS (own port) with this certificate; needs the `tls` module
    /// (Debian: kamailio-tls-modules).
    pub tls: Option<KamailioTls>,
    /// Extra `-A` defines passed to kamailio, e.g. `"MAX_EXPIRES=600"`.
    pub defines: Vec<String>,
    /// How long [`Kamailio::start`] waits for the server to answer.
    pub start_timeout: Duration,
}

impl Default for KamailioOptions {
    /// Users 1001/secret1001 and 1002/secret1002, min_expires 60, UDP and TCP.
    fn default() -> Self {
        KamailioOptions {
            users: vec![
                ("1001".to_owned(), "secret1001".to_owned()),
                ("1002".to_owned(), "secret1002".to_owned()),
            ],
            min_expires: 60,
            udp: true,
            tcp: true,
            tls: None,
            defines: Vec::new(),
            start_timeout: Duration::from_secs(20),
        }
    }
}

impl KamailioOptions {
    /// Replaces the subscriber list.
    pub fn users(mut self, users: &[(&str, &str)]) -> Self {
        self.users = users
            .iter()
            .map(|(u, p)| ((*u).to_owned(), (*p).to_owned()))
            .collect();
        self
    }

    /// Sets the registrar's `min_expires`.
    pub fn min_expires(mut self, secs: u32) -> Self {
        self.min_expires = secs;
        self
    }

    /// Chooses the transports to listen on.
    pub fn transports(mut self, udp: bool, tcp: bool) -> Self {
        self.udp = udp;
        self.tcp = tcp;
        self
    }

    /// Also listens on TLS, presenting `cert_file` (PEM chain) with `key_file` (PEM key).
    pub fn tls(mut self, cert_file: &Path, key_file: &Path) -> Self {
        self.tls = Some(KamailioTls {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
        });
        self
    }
}

/// The server certificate of a TLS listener.
#[derive(Debug, Clone)]
pub struct KamailioTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// One contact bound to an AoR, as reported by `kamcmd ul.lookup location s:USER`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Binding {
    /// Contact URI as stored, e.g. `sip:1001@127.0.0.1:40000;transport=UDP`.
    pub contact: String,
    /// Seconds left; `None` for "permanent", "expired", "deleted".
    pub expires: Option<i64>,
    /// Raw `Expires` field.
    pub expires_raw: String,
    /// Source address Kamailio saw if it differs from the Contact (`fix_nated_register`
    /// style); `None` when `[not set]`.
    pub received: Option<String>,
    /// Kamailio's receiving socket, e.g. `udp:127.0.0.1:5060` or `tcp:127.0.0.1:5060`.
    pub socket: String,
    /// Call-ID of the REGISTER that created/refreshed the binding.
    pub call_id: String,
    /// CSeq number of that REGISTER.
    pub cseq: Option<u32>,
    /// User-Agent header of that REGISTER (empty if none).
    pub user_agent: String,
    /// `+sip.instance` of the Contact, if any.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626), 0 when not used.
    pub reg_id: u32,
    /// Every `Key: value` field of the contact, in output order.
    pub fields: Vec<(String, String)>,
}

impl Binding {
    /// Lower-case transport of Kamailio's receiving socket: "udp", "tcp", "tls", ...
    pub fn transport(&self) -> String {
        self.socket
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    }

    /// Host part of the contact URI (no user, port or parameters; IPv6 keeps brackets).
    pub fn contact_host(&self) -> Option<String> {
        let hostport = contact_hostport(&self.contact)?;
        if let Some(rest) = hostport.strip_prefix('[') {
            let end = rest.find(']')?;
            return Some(format!("[{}]", &rest[..end]));
        }
        Some(hostport.split(':').next().unwrap_or_default().to_owned())
    }

    /// Port of the contact URI, if explicit.
    pub fn contact_port(&self) -> Option<u16> {
        let hostport = contact_hostport(&self.contact)?;
        let after_host = match hostport.strip_prefix('[') {
            Some(rest) => &rest[rest.find(']')? + 1..],
            None => hostport.find(':').map_or("", |i| &hostport[i..]),
        };
        after_host.strip_prefix(':')?.parse().ok()
    }

    /// Value of a contact URI parameter (`transport`, `ob`, ...), case-insensitive name.
    pub fn contact_param(&self, name: &str) -> Option<String> {
        let uri = self.contact.trim_start_matches('<');
        let uri = uri.split('>').next().unwrap_or_default();
        let uri = uri.split('?').next().unwrap_or_default();
        uri.split(';').skip(1).find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }

    /// A field by its `kamcmd` name, e.g. "Last-Modified".
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `host[:port]` of a SIP URI like `sip:user@host:port;params`.
fn contact_hostport(contact: &str) -> Option<&str> {
    let uri = contact.trim().trim_start_matches('<');
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("SIP:"))?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let end = rest.find([';', '?', '>']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Parses the output of `kamcmd ul.lookup location s:USER` (or `ul.dump`): every
/// `Contact: { ... }` block becomes one [`Binding`].
pub fn parse_ul_output(text: &str) -> Vec<Binding> {
    let mut out = Vec::new();
    let mut current: Option<Binding> = None;
    for line in text.lines() {
        let line = line.trim();
        if line == "Contact: {" {
            current = Some(Binding::default());
            continue;
        }
        let Some(b) = current.as_mut() else { continue };
        if line == "}" {
            if let Some(done) = current.take() {
                out.push(done);
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim();
        let value = value.trim();
        let opt = |v: &str| (v != "[not set]" && !v.is_empty()).then(|| v.to_owned());
        match key {
            "Address" => b.contact = value.to_owned(),
            "Expires" => {
                b.expires_raw = value.to_owned();
                b.expires = value.parse().ok();
            }
            "Received" => b.received = opt(value),
            "Socket" => b.socket = value.to_owned(),
            "Call-ID" => b.call_id = value.to_owned(),
            "CSeq" => b.cseq = value.parse().ok(),
            "User-Agent" => b.user_agent = opt(value).unwrap_or_default(),
            "Instance" => b.instance = opt(value),
            "Reg-Id" => b.reg_id = value.parse().unwrap_or(0),
            _ => {}
        }
        b.fields.push((key.to_owned(), value.to_owned()));
    }
    out
}

/// A running Kamailio. Dropping it stops the process group and removes its temp dir;
/// if the current thread is panicking, the Kamailio log is printed first.
#[derive(Debug)]
pub struct Kamailio {
    child: Child,
    port: u16,
    tls_port: Option<u16>,
    dir: tempfile::TempDir,
    ctl_socket: PathBuf,
    log_path: PathBuf,
    kamcmd: PathBuf,
    options: KamailioOptions,
}

impl Kamailio {
    /// Starts a private Kamailio and waits until it answers on its ctl socket.
    ///
    /// Retries with a new port if the chosen one was taken meanwhile.
    pub fn start(options: KamailioOptions) -> io::Result<Kamailio> {
        let mut last_err = None;
        for _ in 0..3 {
            match Self::start_once(&options) {
                Ok(k) => return Ok(k),
                Err(StartError::PortTaken(e)) => last_err = Some(e),
                Err(StartError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| io::Error::other("kamailio did not start")))
    }

    fn start_once(options: &KamailioOptions) -> Result<Kamailio, StartError> {
        let kamailio = find_binary("kamailio")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "kamailio not found"))?;
        let kamcmd = find_binary("kamcmd")
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "kamcmd not found"))?;
        if !options.udp && !options.tcp && options.tls.is_none() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no transport").into());
        }

        let dir = temp_dir("ringside-kamailio-")?;
        let db_dir = dir.path().join("db");
        std::fs::create_dir(&db_dir)?;
        write_db_text(&db_dir, &options.users)?;

        let port = free_port();
        let tls_port = options.tls.as_ref().map(|_| free_port());
        let ctl_socket = dir.path().join("kamailio_ctl");
        let log_path = dir.path().join("kamailio.log");
        // O_APPEND: all Kamailio processes share this file.
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let log_err = log.try_clone()?;

        let mut cmd = Command::new(&kamailio);
        cmd.arg("-f")
            .arg(KAMAILIO_CFG)
            .args(["-DD", "-E", "-m", "16", "-M", "4"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-w")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"));
        if options.udp {
            cmd.arg("-l").arg(format!("udp:127.0.0.1:{port}"));
        }
        if options.tcp {
            cmd.arg("-l").arg(format!("tcp:127.0.0.1:{port}"));
        }
        if let (Some(tls), Some(tls_port)) = (&options.tls, tls_port) {
            cmd.arg("-l")
                .arg(format!("tls:127.0.0.1:{tls_port}"))
                .arg("-A")
                .arg("WITH_TLS")
                .arg("-A")
                .arg(format!("TLS_CERT=\"{}\"", tls.cert_file.display()))
                .arg("-A")
                .arg(format!("TLS_KEY=\"{}\"", tls.key_file.display()));
        }
        cmd.arg("-A")
            .arg(format!("DBURL=\"text://{}\"", db_dir.display()))
            .arg("-A")
            .arg(format!("CTLSOCK=\"unix:{}\"", ctl_socket.display()))
            .arg("-A")
            .arg(format!("MIN_EXPIRES={}", options.min_expires));
        for define in &options.defines {
            cmd.arg("-A").arg(define);
        }
        {
            use std::os::unix::process::CommandExt;
            // Own process group: Drop signals every Kamailio child at once.
            cmd.process_group(0);
        }
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .current_dir(dir.path());
        let child = cmd.spawn()?;

        let mut k = Kamailio {
            child,
            port,
            tls_port,
            dir,
            ctl_socket,
            log_path,
            kamcmd,
            options: options.clone(),
        };
        match k.wait_ready(options.start_timeout) {
            Ok(()) => Ok(k),
            Err(e) => {
                let log = read_lossy(&k.log_path);
                if log.contains("Address already in use") {
                    return Err(StartError::PortTaken(e));
                }
                dump_log("kamailio log (start failed)", &k.log_path, 200);
                Err(StartError::Other(e))
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "kamailio exited during start-up with {status}; log: {}",
                    self.log_path.display()
                )));
            }
            if self.ctl_socket.exists() && self.kamcmd(&["core.version"]).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "kamailio did not answer on {} in {timeout:?}",
                        self.ctl_socket.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The SIP port (UDP and TCP).
    pub fn sip_port(&self) -> u16 {
        self.port
    }

    /// `sip:127.0.0.1:PORT`
    pub fn udp_uri(&self) -> String {
        format!("sip:127.0.0.1:{}", self.port)
    }

    /// `sip:127.0.0.1:PORT;transport=tcp`
    pub fn tcp_uri(&self) -> String {
        format!("sip:127.0.0.1:{};transport=tcp", self.port)
    }

    /// The TLS port, if started with [`KamailioOptions::tls`].
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// `sip:127.0.0.1:TLSPORT;transport=tls` (panics without TLS).
    pub fn tls_uri(&self) -> String {
        let port = self.tls_port.expect("kamailio started without TLS");
        format!("sip:127.0.0.1:{port};transport=tls")
    }

    /// Realm / SIP domain of the subscribers.
    pub fn domain(&self) -> &'static str {
        DOMAIN
    }

    /// The options this instance was started with.
    pub fn options(&self) -> &KamailioOptions {
        &self.options
    }

    /// Kamailio's temp dir (db_text tables, pid file, ctl socket, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The ctl socket, for `kamcmd -s unix:PATH ...`.
    pub fn ctl_socket(&self) -> &Path {
        &self.ctl_socket
    }

    /// Kamailio's stdout+stderr log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Current log content (lossy UTF-8).
    pub fn log(&self) -> String {
        read_lossy(&self.log_path)
    }

    /// Log lines containing every one of `needles`.
    pub fn log_lines_with(&self, needles: &[&str]) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_owned)
            .collect()
    }

    /// REGISTER requests received from `user`: `(with_credentials, log line)` each, in
    /// arrival order (the cfg logs `RSTEST RECV ...` for every request).
    pub fn registers_from(&self, user: &str) -> Vec<(bool, String)> {
        let from = format!("from=sip:{user}@");
        self.log_lines_with(&["RSTEST RECV REGISTER ", &from])
            .into_iter()
            .map(|l| (l.contains(" auth=Digest "), l))
            .collect()
    }

    /// Runs `kamcmd -s unix:CTL ARGS...` and returns its stdout; Err if kamcmd fails or
    /// prints an error other than "AOR not found".
    pub fn kamcmd(&self, args: &[&str]) -> io::Result<String> {
        let out = Command::new(&self.kamcmd)
            .arg("-s")
            .arg(format!("unix:{}", self.ctl_socket.display()))
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "kamcmd {args:?} failed with {}: {stdout}{stderr}",
                out.status
            )));
        }
        Ok(stdout + &stderr)
    }

    /// Current bindings of `user` (empty if none).
    pub fn bindings(&self, user: &str) -> io::Result<Vec<Binding>> {
        let aor = format!("s:{user}");
        let out = self.kamcmd(&["ul.lookup", "location", &aor])?;
        if out.contains("AOR not found") {
            return Ok(Vec::new());
        }
        if out.trim_start().to_ascii_lowercase().starts_with("error") {
            return Err(io::Error::other(format!("ul.lookup {user}: {out}")));
        }
        Ok(parse_ul_output(&out))
    }

    /// Polls [`Self::bindings`] until `pred` holds. Err describes the last bindings seen.
    pub fn wait_for_bindings(
        &self,
        user: &str,
        pred: impl Fn(&[Binding]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<Binding>, String> {
        let mut last = String::from("(never queried)");
        poll_until(timeout, Duration::from_millis(100), || {
            match self.bindings(user) {
                Ok(b) if pred(&b) => Some(b),
                Ok(b) => {
                    last = format!("{b:#?}");
                    None
                }
                Err(e) => {
                    last = format!("error: {e}");
                    None
                }
            }
        })
        .ok_or_else(|| format!("bindings of {user} after {timeout:?}: {last}"))
    }

    /// Process id of the main Kamailio process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let Ok(pgid) = i32::try_from(self.child.id()) else {
            return;
        };
        send_signal(-pgid, libc::SIGTERM);
        let _ = poll_until(Duration::from_secs(3), Duration::from_millis(20), || {
            matches!(self.child.try_wait(), Ok(Some(_))).then_some(())
        });
        // Kills the main process if SIGTERM did not, and any child that outlived it.
        send_signal(-pgid, libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if std::thread::panicking() {
            dump_log("kamailio log", &self.log_path, 400);
        }
        self.stop();
    }
}

enum StartError {
    PortTaken(io::Error),
    Other(io::Error),
}

impl From<io::Error> for StartError {
    fn from(e: io::Error) -> Self {
        StartError::Other(e)
    }
}

/// Writes the db_text `version` and `subscriber` tables (Kamailio 5.6 formats:
/// subscriber table version 7, `ha1`/`ha1b` nullable and left empty because the cfg
/// computes HA1 from the plain-text `password` column).
fn write_db_text(db_dir: &Path, users: &[(String, String)]) -> io::Result<()> {
    use std::io::Write;
    let mut version = File::create(db_dir.join("version"))?;
    writeln!(
        version,
        "id(int,auto) table_name(string) table_version(int) "
    )?;
    writeln!(version, "0:version:1")?;
    writeln!(version, "0:subscriber:7")?;
    writeln!(version, "0:location:9")?;

    let mut sub = File::create(db_dir.join("subscriber"))?;
    writeln!(
        sub,
        "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null) "
    )?;
    for (i, (user, password)) in users.iter().enumerate() {
        writeln!(
            sub,
            "{}:{}:{}:{}::",
            i + 1,
            db_text_escape(user),
            DOMAIN,
            db_text_escape(password)
        )?;
    }
    Ok(())
}

/// db_text field escaping: `:` separates fields, `\` escapes, newlines end rows.
fn db_text_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ':' => out.push_str("\\:"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}
