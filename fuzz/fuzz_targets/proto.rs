//! The daemon's and the library's frame decoders: any bytes decode or are
//! refused, and what decodes encodes back to the same frame.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vrift_format::proto::{self, MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let _ = proto::frame_len(data);
    let mut buf = vec![0u8; MAX_FRAME + 4];
    if let Ok(req) = proto::decode_request(data) {
        let n = proto::encode_request(&mut buf, &req).expect("a decoded request encodes");
        let again = proto::decode_request(&buf[..n]).expect("re-decodes");
        assert_eq!(again, req);
    }
    if let Ok(reply) = proto::decode_reply(data) {
        let n = proto::encode_reply(&mut buf, &reply).expect("a decoded reply encodes");
        let again = proto::decode_reply(&buf[..n]).expect("re-decodes");
        assert_eq!(again, reply);
    }
});
