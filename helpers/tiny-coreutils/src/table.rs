//! The project's hot table, mapped read-only as the shim maps it: the
//! daemon updates it in place while an applet runs (a mutation the applet
//! asked for is visible in the next lookup), and replaces it by a new
//! generation when it is full (hot table invariant 3), which the next
//! lookup follows.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use vrift_format::table::Table;

struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: a mapping we made, unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

/// The mapped table of one project (None until a table is published).
pub struct MappedTable {
    path: PathBuf,
    /// Every mapping made, newest last; the older ones stay mapped until
    /// the applet ends, so a `Table` handed out never dangles.
    maps: Vec<Mapping>,
}

impl MappedTable {
    pub fn new(path: &Path) -> MappedTable {
        let mut t = MappedTable {
            path: path.to_path_buf(),
            maps: Vec::new(),
        };
        t.map();
        t
    }

    /// Maps the current file (a no-op when it is missing or invalid).
    fn map(&mut self) -> bool {
        let Ok(c) = CString::new(self.path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: plain syscalls on a fd we own; the mapping is checked below.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return false;
            }
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 || st.st_size <= 0 {
                libc::close(fd);
                return false;
            }
            let len = st.st_size as usize;
            let ptr = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            libc::close(fd);
            if ptr == libc::MAP_FAILED {
                return false;
            }
            let m = Mapping { ptr, len };
            let bytes = std::slice::from_raw_parts(m.ptr as *const u8, m.len);
            if Table::new(bytes).is_err() {
                return false;
            }
            self.maps.push(m);
        }
        true
    }

    /// The current table, following a newer generation; None if there is none.
    pub fn get(&mut self) -> Option<Table<'_>> {
        let stale = match self.maps.last() {
            None => true,
            Some(m) => {
                // SAFETY: the mapping is live while self is.
                let bytes = unsafe { std::slice::from_raw_parts(m.ptr as *const u8, m.len) };
                Table::new(bytes).map_or(true, |t| t.superseded())
            }
        };
        if stale {
            self.map();
        }
        let m = self.maps.last()?;
        // SAFETY: as above; the borrow of self keeps the mapping alive.
        let bytes = unsafe { std::slice::from_raw_parts(m.ptr as *const u8, m.len) };
        Table::new(bytes).ok()
    }

    /// Drops the assumption that no table exists (after a daemon started).
    pub fn refresh(&mut self) {
        self.map();
    }
}
