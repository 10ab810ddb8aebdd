//! Socket plumbing shared by the daemon and its Rust clients: whole frames
//! in and out, the peer's credentials and groups, and passing a file descriptor.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use vrift_format::proto::{frame_len, FrameError, MAX_FRAME};

/// The uid and pid of the process at the other end.
pub fn peer_cred(sock: &UnixStream) -> io::Result<libc::ucred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket and a buffer of the advertised size.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred)
}

/// `SO_PEERGROUPS` (Linux ≥ 4.13; asm-generic/socket.h, not in `libc`).
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of the process at the other end when it
/// connected (`SO_PEERGROUPS`); empty if the kernel cannot say.
pub fn peer_groups(sock: &UnixStream) -> Vec<u32> {
    let mut groups = vec![0u32; 64];
    loop {
        let mut len = (groups.len() * 4) as libc::socklen_t;
        // SAFETY: a valid socket and a buffer of the advertised size.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr() as *mut libc::c_void,
                &mut len,
            )
        };
        if r == 0 {
            groups.truncate(len as usize / 4);
            return groups;
        }
        // ERANGE: `len` says how much room the list needs.
        let need = len as usize / 4;
        if io::Error::last_os_error().raw_os_error() != Some(libc::ERANGE) || need <= groups.len() {
            return Vec::new();
        }
        groups.resize(need, 0);
    }
}

/// Sends `frame`, with `fd` attached (SCM_RIGHTS) if given.
pub fn send_frame(sock: &UnixStream, frame: &[u8], fd: Option<RawFd>) -> io::Result<()> {
    let Some(fd) = fd else {
        return (&*sock).write_all(frame);
    };
    let n = sendmsg(sock, frame, Some(fd), libc::MSG_NOSIGNAL)?;
    if n < frame.len() {
        (&*sock).write_all(&frame[n..])?;
    }
    Ok(())
}

/// Sends what the socket takes now of `bytes` (never blocking), with `fd`
/// attached to the first byte if given: how many bytes went (WouldBlock:
/// none).
pub fn send_some(sock: &UnixStream, bytes: &[u8], fd: Option<RawFd>) -> io::Result<usize> {
    sendmsg(sock, bytes, fd, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
}

/// One `sendmsg` of `bytes` with `flags`, with `fd` attached to the first
/// byte (SCM_RIGHTS) if given: how many bytes went.
fn sendmsg(sock: &UnixStream, bytes: &[u8], fd: Option<RawFd>, flags: i32) -> io::Result<usize> {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: CMSG_SPACE is a pure computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: all-zero is a valid msghdr; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if let Some(fd) = fd {
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: the control buffer holds one cmsg with one fd.
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(c) as *mut RawFd, fd);
        }
    }
    // SAFETY: msg points at live buffers.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Reads one whole frame (blocking), with an attached fd if one came.
pub fn recv_frame(sock: &UnixStream) -> io::Result<(Vec<u8>, Option<OwnedFd>)> {
    let mut buf = vec![0u8; MAX_FRAME + 4];
    let mut have = 0usize;
    let mut fd = None;
    loop {
        let want = match frame_len(&buf[..have]) {
            Ok(n) => n,
            Err(FrameError::Incomplete) => 4,
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        };
        if have >= want && have >= 4 {
            buf.truncate(want);
            return Ok((buf, fd));
        }
        let mut iov = libc::iovec {
            iov_base: buf[have..].as_mut_ptr() as *mut libc::c_void,
            iov_len: want - have,
        };
        // SAFETY: CMSG_SPACE is a pure computation.
        let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
        let mut cbuf = vec![0u8; space];
        // SAFETY: all-zero is a valid msghdr.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr() as *mut libc::c_void;
        msg.msg_controllen = space;
        // SAFETY: msg points at live buffers.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        // SAFETY: walking the control messages the kernel wrote.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let raw = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const RawFd);
                    fd = Some(OwnedFd::from_raw_fd(raw));
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        have += n as usize;
    }
}

/// Reads what is available without blocking into `buf` (0: end of stream).
pub fn read_some(sock: &UnixStream, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 4096];
    match (&*sock).read(&mut chunk) {
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(n)
        }
        Err(e) => Err(e),
    }
}
