//! `vrift daemon start|status|stop|run`.

use std::io::Write;

use anyhow::Result;

use super::{current_project, DaemonCommand, Outcome};
use crate::daemon;

pub fn daemon(cmd: DaemonCommand) -> Result<Outcome> {
    let project = current_project()?;
    match cmd {
        DaemonCommand::Run => daemon::run(project)?,
        DaemonCommand::Start => daemon::start(&project)?,
        DaemonCommand::Status => match daemon::client::status(&project)? {
            Some(text) => {
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = write!(
                    std::io::stdout(),
                    "running on {}\n{text}",
                    daemon::socket_path(&project).display()
                );
            }
            None => {
                let _ = writeln!(
                    std::io::stdout(),
                    "not running ({})",
                    project.root().display()
                );
                return Ok(Outcome::Partial);
            }
        },
        DaemonCommand::Stop => {
            if !daemon::client::stop(&project)? {
                println!("not running ({})", project.root().display());
            }
        }
    }
    Ok(Outcome::Ok)
}
